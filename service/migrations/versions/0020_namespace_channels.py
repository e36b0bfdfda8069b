"""namespace channels: the channel patterns a namespace narrows the service's
allow-list to (JSON list; None: the service's list as it is)

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('namespaces') as batch:
        batch.add_column(sa.Column('allowed_channels', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('namespaces') as batch:
        batch.drop_column('allowed_channels')

"""stopped in: the stage a failed or cancelled build stopped in (read, solve, check,
install, pack, publish, image), so its timeline need not guess from its timings

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('versions') as batch:
        batch.add_column(sa.Column('stopped_in', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('versions') as batch:
        batch.drop_column('stopped_in')

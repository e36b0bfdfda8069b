"""namespace system requirements: the system a namespace's environments target unless
their spec says otherwise (JSON {cuda, glibc, macos} -> version, "" for none; None: not set)

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('namespaces') as batch:
        batch.add_column(sa.Column('system_requirements', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('namespaces') as batch:
        batch.drop_column('system_requirements')

"""history: an environment's description, when it was deleted, and who submitted each
version and why

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('collect_through', sa.Integer(), nullable=True))
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('submitted_by', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_column('submitted_by')
        batch_op.drop_column('message')
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.drop_column('collect_through')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('description')

"""images: opt-in per namespace and environment, the image of each version

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('namespaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('images', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('images', sa.Boolean(), nullable=True))
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_column('image')
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.drop_column('images')
    with op.batch_alter_table('namespaces', schema=None) as batch_op:
        batch_op.drop_column('images')

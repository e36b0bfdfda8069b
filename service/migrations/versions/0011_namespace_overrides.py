"""namespace overrides: a namespace's Dask follow, Dask policy and images are overrides
(NULL: the service's default), so a policy can say where its value came from

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('namespaces', schema=None) as batch_op:
        batch_op.alter_column('dask_follow', existing_type=sa.Boolean(), nullable=True,
                              server_default=None)
        batch_op.alter_column('images', existing_type=sa.Boolean(), nullable=True,
                              server_default=None)
        batch_op.alter_column('dask_policy', existing_type=sa.String(length=8), nullable=True,
                              server_default=None)
    # the old defaults were indistinguishable from "not set": they become "not set"
    op.execute("UPDATE namespaces SET dask_follow = NULL WHERE dask_follow = false")
    op.execute("UPDATE namespaces SET images = NULL WHERE images = false")
    op.execute("UPDATE namespaces SET dask_policy = NULL WHERE dask_policy = 'warn'")


def downgrade() -> None:
    op.execute("UPDATE namespaces SET dask_follow = false WHERE dask_follow IS NULL")
    op.execute("UPDATE namespaces SET images = false WHERE images IS NULL")
    op.execute("UPDATE namespaces SET dask_policy = 'warn' WHERE dask_policy IS NULL")
    with op.batch_alter_table('namespaces', schema=None) as batch_op:
        batch_op.alter_column('dask_policy', existing_type=sa.String(length=8), nullable=False,
                              server_default='warn')
        batch_op.alter_column('images', existing_type=sa.Boolean(), nullable=False,
                              server_default=sa.false())
        batch_op.alter_column('dask_follow', existing_type=sa.Boolean(), nullable=False,
                              server_default=sa.false())

"""token owner: the person a token acts for (a hub user, or the token that made it), so a
self-service token can list and revoke its owner's tokens; existing tokens own themselves

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=300), nullable=True))
        batch_op.create_index('ix_tokens_owner', ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_tokens_owner')
        batch_op.drop_column('owner')

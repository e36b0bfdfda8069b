"""web sessions: a browser's token login keeps a session secret of its own in its
cookie, never the token (ended at logout, on expiry, or with its token)

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['token_id'], ['tokens.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_web_sessions_token', 'web_sessions', ['token_id'])
    op.create_index('ix_web_sessions_expires_at', 'web_sessions', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_web_sessions_expires_at', table_name='web_sessions')
    op.drop_index('ix_web_sessions_token', table_name='web_sessions')
    op.drop_table('web_sessions')

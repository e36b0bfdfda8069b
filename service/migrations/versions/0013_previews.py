"""previews: a solved spec kept for a while so the version built from it is exactly what
was shown; each version records how its spec was solved (minimal on a base, or full)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'previews',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('namespace', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('spec_text', sa.Text(), nullable=False),
        sa.Column('lock_text', sa.Text(), nullable=False),
        sa.Column('solve', sa.String(length=8), nullable=False),
        sa.Column('base_version', sa.Integer(), nullable=True),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_previews_expires_at', 'previews', ['expires_at'])
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('solve', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('base_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('preview', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_column('preview')
        batch_op.drop_column('base_version')
        batch_op.drop_column('solve')
    op.drop_index('ix_previews_expires_at', table_name='previews')
    op.drop_table('previews')

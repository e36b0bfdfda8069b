"""audit: who submitted, pushed, rolled back, held, deleted or changed a policy, and when

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        # AuditAction's values; no CHECK, so a new action needs no migration
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('namespace', sa.String(length=64), nullable=True),
        sa.Column('environment', sa.String(length=64), nullable=True),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_events_namespace', 'audit_events', ['namespace', 'id'])
    op.create_index('ix_audit_events_environment', 'audit_events',
                    ['namespace', 'environment', 'id'])
    op.create_index('ix_audit_events_namespace_action', 'audit_events',
                    ['namespace', 'action', 'id'])
    op.create_index('ix_audit_events_actor', 'audit_events', ['actor', 'id'])
    op.create_index('ix_audit_events_action', 'audit_events', ['action', 'id'])
    op.create_index('ix_audit_events_at', 'audit_events', ['at'])


def downgrade() -> None:
    op.drop_table('audit_events')

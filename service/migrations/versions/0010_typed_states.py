"""typed states: a version's state (and its state before GC) may only be one of State's values

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

STATES = ("queued", "solving", "installing", "packing", "ready", "failed", "cancelled",
          "deleting", "deleted")


def upgrade() -> None:
    allowed = ", ".join(f"'{s}'" for s in STATES)
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.create_check_constraint('version_state', f"state IN ({allowed})")
        batch_op.create_check_constraint('version_state_before_gc',
                                         f"state_before_gc IN ({allowed})")


def downgrade() -> None:
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_constraint('version_state_before_gc', type_='check')
        batch_op.drop_constraint('version_state', type_='check')

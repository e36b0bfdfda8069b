"""package index: the package names of every published version, indexed, so finding
the environments that have a package reads no lock; filled from ``versions.packages``

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from packaging.utils import canonicalize_name

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

#: versions read at a time while filling the index
BATCH = 500


def _key(name: str, manager: str) -> str:
    """As ``service.find.package_key`` (frozen here: a migration does not follow the code)."""
    return canonicalize_name(name) if manager == "pip" else name.lower()


def upgrade() -> None:
    op.create_table(
        'version_packages',
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['versions.id']),
        sa.PrimaryKeyConstraint('version_id', 'name'),
    )
    op.create_index('ix_version_packages_name', 'version_packages', ['name', 'version_id'])
    conn = op.get_bind()
    versions = sa.table('versions', sa.column('id', sa.Integer()),
                        sa.column('packages', sa.JSON()))
    index = sa.table('version_packages', sa.column('version_id', sa.Integer()),
                     sa.column('name', sa.String()))
    last = 0
    while True:
        rows = conn.execute(sa.select(versions.c.id, versions.c.packages)
                            .where(versions.c.id > last, versions.c.packages.is_not(None))
                            .order_by(versions.c.id).limit(BATCH)).all()
        if not rows:
            break
        last = rows[-1][0]
        found = [{"version_id": vid, "name": name} for vid, packages in rows
                 for name in sorted({_key(str(p["name"]), str(p.get("manager", "conda")))
                                     for p in packages or [] if isinstance(p, dict)
                                     and p.get("name") and len(str(p["name"])) <= 200})]
        if found:
            conn.execute(index.insert(), found)


def downgrade() -> None:
    op.drop_index('ix_version_packages_name', table_name='version_packages')
    op.drop_table('version_packages')

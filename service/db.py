"""Engine, sessions and migrations: one database, upgraded to the newest schema at start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


#: Seconds a request waits for a pooled connection before it is answered 503.
POOL_TIMEOUT = 10


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine whose pool holds ``pool_size`` connections (no overflow: the size is
    computed from the process's concurrency, ``Settings.db_pool_size``)."""
    pool = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            conn.isolation_level = None  # transactions begin explicitly, below

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            # writers take the write lock up front, so numbering never interleaves;
            # readers never block writers (WAL)
            write = conn.get_execution_options().get("envyard_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration, or to ``revision`` (Alembic, run
    in-process)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # a migration that rebuilds a table drops the old one: SQLite would
            # refuse (or cascade) while other tables refer to it; the keys are checked after
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys=OFF")
        try:
            with conn.execution_options(envyard_write=True).begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError("a migration left rows that refer to missing ones")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys=ON")


class Database:
    """Sessions bound to one engine."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        self.engine = make_engine(url, pool_size)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.engine.execution_options(envyard_write=True),
                                    expire_on_commit=False)

    def open_session(self) -> Session:
        """A read session the caller ends (commit or rollback, then close); it connects
        at its first query, not here."""
        return self._reads()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A unit of work, committed at the end, rolled back on error; ``write`` for one
        that changes rows (on SQLite it then holds the write lock from its start)."""
        with (self._writes if write else self._reads)() as session, session.begin():
            yield session

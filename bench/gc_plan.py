"""GC plan over 10,000 versions (1,000 environments x 10). Goal: < 1 s.

Baseline in the same run: the bare SELECT of the same rows, which any plan must read.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from common import exit_now
from sqlalchemy import select

from envyard.service.db import Database, migrate
from envyard.service.gc import make_plan
from envyard.service.models import Environment, Namespace, Version
from envyard.service.settings import Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(root=Path(tmp))
        db = Database(settings.db_url)
        migrate(db.engine)
        now = dt.datetime.now(dt.UTC)
        with db.session(write=True) as s:
            for n in range(10):
                ns = Namespace(name=f"ns{n}")
                s.add(ns)
                s.flush()
                for e in range(100):
                    env = Environment(namespace_id=ns.id, name=f"env{e}", version_counter=10,
                                      current_version=10)
                    s.add(env)
                    s.flush()
                    s.add_all(Version(environment_id=env.id, number=v, kind="spec",
                                      state="ready" if v % 4 else "failed", timings={},
                                      created_at=now - dt.timedelta(days=10 * (10 - v)))
                              for v in range(1, 11))
        start = time.perf_counter()
        with db.session() as s:
            rows = s.execute(select(Version.id, Version.number, Version.state,
                                    Version.created_at)).all()
        base = time.perf_counter() - start
        start = time.perf_counter()
        with db.session() as s:
            plan = make_plan(s, settings)
        seconds = time.perf_counter() - start
        deleted = sum(r.delete for r in plan)
        print(f"gc plan over {len(rows)} versions: {seconds:.3f} s (goal < 1 s), "
              f"{deleted} to delete; bare select {base:.3f} s, ratio {seconds / base:.1f}x")


if __name__ == "__main__":
    main()
    exit_now()

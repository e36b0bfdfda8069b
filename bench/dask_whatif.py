"""Upgrade what-if over 50 environments vs 50 sequential `envyard lock` runs of the same
specs with the same pins. Goal: < 0.5x (parallel solves, repodata loaded once per process).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import ENVYARD, REPO, channel, exit_now, run

from envyard.builder.dask import read_pins
from envyard.service.db import Database, migrate
from envyard.service.models import Environment, Namespace, Version
from envyard.service.settings import Settings
from envyard.service.upgrade import what_if

EXTRAS = ["toolz", "pyyaml", "lz4", "numpy", "pandas", "msgpack-python", "tblib", "zict",
          "locket", "cloudpickle"]
N = 50


def main() -> None:
    pins_file = REPO / "envs" / "cluster" / "dask-pins.yml"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        specs = [f"dependencies: [python=3.11, dask, distributed, {EXTRAS[i % 10]}"
                 + (", ipykernel" if i % 2 else "") + "]\n" for i in range(N)]
        settings = Settings(root=work / "volume", default_channels=[str(channel())])
        settings.root.mkdir()
        db = Database(settings.db_url)
        migrate(db.engine)
        lock_text = (work / "seed.yml")
        (work / "seed-env.yml").write_text(specs[0])
        run([ENVYARD, "lock", str(work / "seed-env.yml"), "-c", str(channel()), "-o",
             str(lock_text), "-q", "--home", str(work / "h")])
        with db.session(write=True) as s:
            ns = Namespace(name="bench")
            s.add(ns)
            s.flush()
            for i, spec in enumerate(specs):
                env = Environment(namespace_id=ns.id, name=f"env{i}", version_counter=1,
                                  current_version=1)
                s.add(env)
                s.flush()
                s.add(Version(environment_id=env.id, number=1, kind="spec", state="ready",
                              spec_text=spec, lock_text=lock_text.read_text(), timings={}))
        pins = read_pins(pins_file)
        what_if(db, settings, pins)  # warm the repodata cache, as a running service has
        start = time.perf_counter()
        rows = what_if(db, settings, pins)
        ours = time.perf_counter() - start
        assert len(rows) == N and all(r["solvable"] for r in rows)
        start = time.perf_counter()
        for i, spec in enumerate(specs):
            f = work / f"e{i}.yml"
            f.write_text(spec)
            run([ENVYARD, "lock", str(f), "-c", str(channel()), "-o", str(work / f"l{i}.yml"),
                 "-q", "--home", str(work / "h"), "--follow-pins", str(pins_file)])
        base = time.perf_counter() - start
        print(f"what-if over {N} environments: {ours:.2f} s; {N} sequential envyard lock "
              f"{base:.2f} s; ratio {ours / base:.2f}x (goal < 0.5x)")


if __name__ == "__main__":
    main()
    exit_now()

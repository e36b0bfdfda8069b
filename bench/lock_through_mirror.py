"""Locking through a mirror vs reading the channel directly (goal: <= 1.1x).

The 885-package pytorch-notebook-sized channel is served over HTTP on 127.0.0.1. Direct:
`envyard lock -c URL`. Through a mirror: the spec names a canonical URL nothing answers
and `--mirror CANONICAL=URL` sends every read to the same server, so the difference is
what the mirror costs (a probe, URLs given back their canonical form). A third column
puts a dead mirror first, as after a mirror outage. Whole processes, alternated, each
with a cold repodata cache (a fresh --home).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import ENVYARD, HOME, exit_now, median, report, run

from envyard.builder.lock import read_lock


def main() -> None:
    from tests.channel_servers import unreachable_url
    from tests.servers import serve_directory
    from tests.sized_channel import sized_channel, sized_spec

    rounds = 5
    with serve_directory(sized_channel(HOME / "sized-channel")) as (url, _), \
            tempfile.TemporaryDirectory(dir=HOME) as tmp:
        work = Path(tmp)
        canonical = "https://conda.example.invalid/sized"
        spec = work / "env.yml"
        spec.write_text(sized_spec())
        dead = unreachable_url()
        runs: dict[str, list[float]] = {"direct": [], "mirror": [], "fallback": []}
        for i in range(rounds):
            for kind, extra in (("direct", ["-c", url]),
                                ("mirror", ["-c", canonical, "--mirror",
                                            f"{canonical}={url}"]),
                                ("fallback", ["-c", canonical, "--mirror",
                                              f"{canonical}={dead}", "--mirror",
                                              f"{canonical}={url}"])):
                out = work / f"{kind}.yml"
                seconds, _ = run([ENVYARD, "lock", str(spec), *extra, "-p", "linux-64",
                                  "-o", str(out), "-q", "--home", str(work / f"{kind}{i}")])
                runs[kind].append(seconds)
        direct, mirror = read_lock(work / "direct.yml"), read_lock(work / "mirror.yml")
        assert len(direct.package) == len(mirror.package)
        assert all(p.url.startswith(canonical + "/") for p in mirror.package)
        print(f"environment: {len(direct.package)} packages (linux-64), cold repodata "
              f"cache, median of {rounds}")
        report("lock through a mirror", median(runs["mirror"]), median(runs["direct"]),
               "direct", "<= 1.1x")
        report("lock with the first mirror down", median(runs["fallback"]),
               median(runs["direct"]), "direct", "reported")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
    exit_now()

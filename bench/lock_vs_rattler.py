"""`envyard lock` vs a minimal rattler solve script, both as whole processes, alternated.

On conda-forge's own metadata (the channel rebuilt from the real corpus locks): the real
pangeo base-notebook spec for one platform and for its four (the script solves them one
after another on one gateway), and a pytorch-notebook-sized spec (every package name of
the real 885-package lock, on a CUDA 12.9 system). The demo notebook environment (52
packages) shows the fixed costs. Goals: one platform <= 1.15x, four <= 1.3x the script's
four and < 2x envyard's one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from common import ENVYARD, REPO, channel, exit_now, median, report, run

from envyard.builder.demo.synthetic import record_count, synthetic_channel
from envyard.builder.lock import read_lock
from tests.corpus_channel import CORPUS, corpus_channel

RUNS = 9
BASE = CORPUS / "pangeo-base-notebook" / "2026-01-31-2f5532bd"
PYTORCH = CORPUS / "pangeo-pytorch-notebook" / "2026-01-31-2f5532bd"
FOUR = ["linux-64", "linux-aarch64", "osx-64", "osx-arm64"]
CUDA = """subdirs:
  linux-64:
    packages: {__unix: "0", __linux: "5.10", __archspec: "1 x86_64", __glibc: "2.34",
               __cuda: "12.9"}
"""


def measure(env_file: Path, chan: Path, specs: list[str], platforms: list[str],
            work: Path, cuda: bool = False) -> tuple[float, float]:
    flags = [a for p in platforms for a in ("-p", p)]
    raw = [sys.executable, str(REPO / "bench" / "raw_solve.py"), chan.as_uri(),
           str(work / "raw-cache"), *flags, *specs]
    ours = [ENVYARD, "lock", str(env_file), "-c", str(chan), "-o", str(work / "lock.yml"),
            "-q", "--home", str(work / "home"), *flags]
    env = dict(os.environ)
    if cuda:
        (work / "cuda.yaml").write_text(CUDA)
        ours += ["--virtual-package-spec", str(work / "cuda.yaml")]
        env["ENVYARD_BENCH_CUDA"] = "1"
    run(raw, env=env), run(ours, env=env)  # warm the repodata caches and the OS file cache
    t_raw, t_ours = [], []
    for _ in range(RUNS):
        t_raw.append(run(raw, env=env)[0])
        t_ours.append(run(ours, env=env)[0])
    return median(t_ours), median(t_raw)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours, raw = measure(REPO / "envs" / "dask-notebook.yml", channel(),
                            ["python 3.11.*", "dask 2025.12.0.*", "distributed 2025.12.0.*",
                             "numpy", "pandas", "ipykernel"], ["linux-64"], work)
        report("lock demo env (52 pkgs)", ours, raw, "raw rattler script", "<= 1.15x")
        forge = corpus_channel(work / "corpus")
        print(f"conda-forge metadata from the corpus: {record_count(forge)} records")
        base_specs = ["python=3.12", "pangeo-notebook=2026.01.21", "pip"]
        one, raw_one = measure(BASE / "environment.yml", forge, base_specs, ["linux-64"], work)
        report("lock pangeo base, linux-64 (285 pkgs)", one, raw_one, "raw rattler script",
               "<= 1.15x")
        four, raw_four = measure(BASE / "environment.yml", forge, base_specs, FOUR, work)
        report("lock pangeo base, 4 platforms (1,127 pkgs)", four, raw_four,
               "raw script, 4 in turn", "<= 1.3x")
        print(f"  4 platforms / 1 platform (envyard): {four / one:.2f}x  (goal < 2x)")
        names = sorted({p.name for p in read_lock(PYTORCH / "conda-lock.yml").package})
        big = work / "pytorch-sized.yml"
        big.write_text("dependencies:\n" + "".join(f"  - {n}\n" for n in names))
        ours, raw = measure(big, forge, names, ["linux-64"], work, cuda=True)
        report(f"lock pytorch-notebook-sized, linux-64 ({len(names)} specs)", ours, raw,
               "raw rattler script", "<= 1.15x")
        synthetic = synthetic_channel(work / "synthetic", records=50_000)
        specs = ["python 3.11.*", "pkg01500", "pkg02000", "pkg01999", "pkg00900", "pkg02050"]
        env = work / "synthetic.yml"
        env.write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in specs))
        ours, raw = measure(env, synthetic, specs, ["linux-64"], work)
        report(f"lock synthetic ({record_count(synthetic)} records; the solve "
               "dominates)", ours, raw, "raw rattler script", "<= 1.15x")


if __name__ == "__main__":
    main()
    exit_now()

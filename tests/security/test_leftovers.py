"""What killed processes leave on the volume is counted, and removed once no one owns it
(before: packs/*.part, prefixes/.*.gc-* and failed installs' staging stayed for ever)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tests.servers import Service
from tests.service.conftest import api


def _litter(root: Path) -> dict[str, Path]:
    """One leftover of each kind, 1 MB each, as killed processes leave them."""
    fp = "f" * 64
    made = {
        "staging": root / "prefixes" / f".{fp}.envyard-staging-0123abcd" / "lib" / "x.so",
        "gc": root / "prefixes" / f".{fp}.envyard-gc-0123abcd" / "bin" / "python",
        "legacy-gc": root / "prefixes" / f".{'e' * 64}.gc-89abcdef" / "lib" / "y.so",
        "part": root / "packs" / f".{fp}.tar.zst.envyard-part-0123abcd",
        "fetch": root / "pkgs" / ".numpy-2.0-py311_0.conda.k2j3h4g5",
        "owned": root / "prefixes" / f".{'d' * 64}.envyard-staging-fedcba98" / "a",
        "young": root / "prefixes" / f".{'c' * 64}.envyard-staging-76543210" / "b",
    }
    old = time.time() - 3 * 3600  # older than any build may take (the watchdog's limit)
    for kind, path in made.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * (1 << 20))
        if kind != "young":  # young: perhaps a live build on another node
            top = root.joinpath(*path.relative_to(root).parts[:2])  # the leftover itself
            os.utime(top, (old, old))
    return made


def test_leftovers_are_counted_and_swept_when_unowned(channel: Path, tmp_path: Path) -> None:
    root = tmp_path / "volume"
    made = _litter(root)
    owner = (root / "prefixes" / f".{'d' * 64}.envyard-lock").open("a")
    fcntl.flock(owner, fcntl.LOCK_EX)  # a build of that prefix is still running
    svc = Service(root, channel)
    svc.start()  # the start sweeps what nobody owns
    try:
        assert [k for k, p in made.items() if p.exists()] == ["owned", "young"]
        admin = svc.token("*=admin")
        with api(svc, admin) as c:
            left = c.get("/api/v1/usage/leftovers").json()
            assert left["bytes"] == 2 << 20
            assert [f["kind"] for f in left["files"]] == ["staging", "staging"]
            owner.close()  # the build ended (or died): its staging is now unowned
            result = c.post("/api/v1/gc").json()
            assert [f["path"] for f in result["removed_leftovers"]] == [
                str(made["owned"].parent.relative_to(root))]
            assert len(c.get("/api/v1/usage/leftovers").json()["files"]) == 1  # the young
        assert not made["owned"].exists() and made["young"].exists()
        with api(svc, svc.token("team=developer")) as c:  # the volume's business
            assert c.get("/api/v1/usage/leftovers").status_code == 403
    finally:
        owner.close()
        svc.stop()

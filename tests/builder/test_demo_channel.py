"""The demo channel: real packages, markers evaluated, two dask releases, cached."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

from envyard.builder.demo.channel import demo_channel
from envyard.builder.demo.from_wheel import Target, convert_wheel
from envyard.builder.demo.synthetic import record_count, synthetic_channel
from envyard.builder.demo.wheels import read_pins
from tests.conftest import HOME


def _repodata(channel: Path) -> dict[str, dict[str, object]]:
    records: dict[str, dict[str, object]] = {}
    for sub in ("linux-64", "noarch"):
        data = json.loads((channel / sub / "repodata.json").read_text())
        records.update(data["packages.conda"])
    return records


def test_channel_holds_python_and_two_dask_releases(channel: Path) -> None:
    records = _repodata(channel)
    names = [(r["name"], r["version"]) for r in records.values()]
    assert ("dask", "2025.12.0") in names and ("dask", "2026.1.2") in names
    assert ("distributed", "2025.12.0") in names and ("distributed", "2026.1.2") in names
    assert any(n == "python" for n, _ in names) and any(n == "python_abi" for n, _ in names)
    pip_only = {p.name for p in read_pins() if p.pip_only}
    assert not pip_only & {n for n, _ in names}


def test_markers_are_evaluated_not_dropped(channel: Path) -> None:
    records = _repodata(channel)
    dask = next(r for r in records.values() if r["name"] == "dask")
    deps = " ".join(dask["depends"])  # type: ignore[arg-type]
    assert "importlib-metadata" in deps  # python_version < "3.12" holds for 3.11
    distributed = next(r for r in records.values() if r["name"] == "distributed"
                       and r["version"] == "2026.1.2")
    assert "dask <2026.1.3,>=2026.1.2" in distributed["depends"]  # type: ignore[operator]


def test_binary_packages_pin_python_abi(channel: Path) -> None:
    records = _repodata(channel)
    for name in ("msgpack-python", "tornado", "psutil", "pyyaml", "markupsafe", "numpy"):
        rec = next(r for r in records.values() if r["name"] == name)
        assert rec["subdir"] == "linux-64"
        assert "python_abi 3.11.* *_cp311" in rec["depends"]  # type: ignore[operator]


def test_marker_for_other_python_is_dropped(tmp_path: Path) -> None:
    wheel = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo_pkg/__init__.py", "")
        zf.writestr("demo_pkg-1.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n"
                    "Requires-Dist: toolz>=1\n"
                    "Requires-Dist: tomli; python_version < '3.11'\n"
                    "Requires-Dist: zipp; python_version >= '3.11'\n"
                    "Requires-Dist: numpy; extra == 'array'\n")
    spec = convert_wheel(wheel, Target())
    assert spec.noarch == "python"
    assert spec.depends == ["python", "toolz >=1", "zipp"]


def test_rebuild_is_cached(channel: Path) -> None:
    start = time.monotonic()
    assert demo_channel(HOME, offline=True) == channel
    assert time.monotonic() - start < 2


def test_synthetic_channel_size(tmp_path: Path) -> None:
    ch = synthetic_channel(tmp_path / "big", records=50_000)
    assert record_count(ch) >= 50_000


def test_rebuilt_channel_is_byte_identical(tmp_path: Path) -> None:
    """Locks pin sha256, so a channel rebuilt from the same pins must not change a byte."""
    import hashlib

    from envyard.builder.demo.channel import build_channel
    from envyard.builder.demo.wheels import ensure_wheels

    wheels = {p: w for p, w in ensure_wheels(HOME / "wheels", offline=True).items()
              if p.name in ("toolz", "msgpack", "pyyaml")}
    digests = []
    for name in ("a", "b"):
        ch = build_channel(tmp_path / name, wheels, target=Target())
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in ch.rglob("*.conda")})
    assert len(digests[0]) == 5 and digests[0] == digests[1]

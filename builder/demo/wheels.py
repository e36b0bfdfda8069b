"""The pinned wheels behind the demo channel: read the pins, download once, verify hashes.

Downloading is the only step that needs a package index; it runs in the set-up command and
the files stay in a cache, so tests and benchmarks work with no network.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from envyard.builder.errors import ChannelError
from envyard.builder.fetch import sha256_file

PINS = Path(__file__).with_name("pins.txt")
_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
              "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64")


@dataclass(frozen=True)
class Pin:
    """One pinned wheel: name, version, sha256, and whether it stays out of the conda channel."""

    name: str
    version: str
    sha256: str
    pip_only: bool = False

    @property
    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def read_pins(path: Path = PINS) -> list[Pin]:
    """Parse ``name==version --hash=sha256:HEX  # pip-only`` lines."""
    pins = []
    for raw in path.read_text().splitlines():
        line, _, comment = raw.partition("#")
        if not line.strip():
            continue
        req, _, digest = line.partition("--hash=sha256:")
        name, _, version = req.strip().partition("==")
        pins.append(Pin(canonicalize_name(name), version, digest.strip(),
                        "pip-only" in comment))
    return pins


def _find(cache: Path, pin: Pin) -> Path | None:
    for path in cache.glob("*.whl"):
        name, version, *_ = parse_wheel_filename(path.name)
        if name == pin.name and str(version) == pin.version:
            return path if sha256_file(path) == pin.sha256 else None
    return None


def _download(pins: list[Pin], cache: Path, python: str) -> None:
    # pip refuses two pins of one name in one call: split the second releases off.
    batches: list[list[Pin]] = [[], []]
    seen: set[str] = set()
    for pin in pins:
        batches[pin.name in seen].append(pin)
        seen.add(pin.name)
    for batch in batches:
        if not batch:
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
            req.write("\n".join(p.line for p in batch) + "\n")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--require-hashes", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", python, "--abi", "cp" + python.replace(".", ""),
               "-d", str(cache), "-r", req.name]
        for plat in _PLATFORMS:
            cmd += ["--platform", plat]
        done = subprocess.run(cmd, capture_output=True, text=True)
        Path(req.name).unlink()
        if done.returncode != 0:
            raise ChannelError("could not download the demo channel's wheels "
                               f"(is a package index reachable?):\n{done.stderr[-2000:]}")


def ensure_wheels(cache: Path, *, pins: list[Pin] | None = None, python: str = "3.11",
                  offline: bool = False) -> dict[Pin, Path]:
    """Return every pin's wheel from ``cache``, downloading the missing ones unless offline."""
    pins = read_pins() if pins is None else pins
    cache.mkdir(parents=True, exist_ok=True)
    found = {p: _find(cache, p) for p in pins}
    missing = [p for p, path in found.items() if path is None]
    if missing and offline:
        names = ", ".join(f"{p.name}=={p.version}" for p in missing[:5])
        raise ChannelError(f"{len(missing)} pinned wheel(s) not in {cache} ({names} …) and "
                           "downloads are off; run `envyard demo-channel` once with a "
                           "package index reachable")
    if missing:
        _download(missing, cache, python)
        found = {p: _find(cache, p) for p in pins}
    bad = [p.name + "==" + p.version for p, path in found.items() if path is None]
    if bad:
        raise ChannelError(f"wheels missing or failing their sha256 after download: {bad}")
    return {p: path for p, path in found.items() if path is not None}

"""The type checker and the linter as tests, so every test run (and so CI) enforces them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.mark.timeout(660)
def test_mypy_passes(tmp_path: Path) -> None:
    """mypy, as configured in pyproject.toml (envyard.builder strictly), finds no errors.
    mypy cannot follow setuptools' editable finder, so it reads the folders through a
    tree that spells the installed names (envyard/builder, envyard/service)."""
    (tmp_path / "envyard").mkdir()
    for folder in ("builder", "service"):
        (tmp_path / "envyard" / folder).symlink_to(REPO / folder)
    done = _run("mypy", "--config-file", "pyproject.toml", "-p", "envyard.builder",
                "-p", "envyard.service", env={**os.environ, "MYPYPATH": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues found in" in done.stdout


@pytest.mark.timeout(660)
def test_ruff_passes() -> None:
    """ruff finds nothing in the code, its tests and the benchmarks."""
    done = _run("ruff", "check", "builder", "service", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr

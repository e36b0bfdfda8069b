"""The type checker and the linter as tests, so every test run (and so CI) enforces them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.timeout(660)
def test_mypy_passes() -> None:
    """mypy, as configured in pyproject.toml (builder/ strictly), finds no errors."""
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(660)
def test_ruff_passes() -> None:
    """ruff finds nothing in the code, its tests and the benchmarks."""
    done = _run("ruff", "check", "builder", "service", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr

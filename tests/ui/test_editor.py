"""The spec editor's own edits (service/ui/assets/editor.js, run by node): the package
picker adds a conda dependency where conda reads it, and a solver's message marks the
dependency lines it names. Every edited file is read back by PyYAML."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).parent
EDITOR = HERE.parent.parent / "service" / "ui" / "assets" / "editor.js"


def run(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node is missing: run tests/setup.sh"
    done = subprocess.run([node, str(HERE / "editor_harness.mjs"), EDITOR.as_uri()],
                          input=json.dumps(cases), capture_output=True, text=True, timeout=60,
                          check=True)
    return list(json.loads(done.stdout))


SPECS = [
    "dependencies:\n  - python=3.11\n  - pip:\n    - requests\nchannels:\n  - conda-forge\n",
    "name: x\ndependencies:\n- python\n- toolz\nchannels: [conda-forge]\n",
    "dependencies: [python, toolz]  # flow\n",
    "dependencies: []\n",
    "channels:\n  - conda-forge\n",
    "dependencies:\n  - pip:\n    - numpy\n",
    "dependencies:\n  # the basics\n  - python\n\n  - 'toolz >=1'\nvariables:\n  A: b\n",
]


@pytest.mark.parametrize("text", SPECS)
def test_an_added_package_is_a_conda_dependency_and_nothing_else_moves(text: str) -> None:
    [done] = run([{"text": text, "add": "numpy"}])
    assert done["result"] == "added"
    before, after = yaml.safe_load(text), yaml.safe_load(done["text"])
    conda = [d for d in after["dependencies"] if isinstance(d, str)]
    assert "numpy" in conda
    old = (before.get("dependencies") or [])
    assert [d for d in after["dependencies"] if d != "numpy"] == old
    assert {k: v for k, v in after.items() if k != "dependencies"} == \
        {k: v for k, v in before.items() if k != "dependencies"}


def test_present_and_unsupported_lists_are_left_alone() -> None:
    cases = [{"text": "dependencies:\n  - conda-forge::numpy>=1\n", "add": "numpy"},
             {"text": "dependencies: [python, NumPy]\n", "add": "numpy"},
             {"text": "dependencies: [\n  python]\n", "add": "numpy"}]
    results = run(cases)
    assert [r["result"] for r in results] == ["present", "present", "unsupported"]
    assert [r["text"] for r in results] == [c["text"] for c in cases]


def test_a_solver_message_marks_dependency_lines_not_channels() -> None:
    text = ("channels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - nosuch\n"
            "  - numpy\n  - pip:\n    - requests\n")
    [done] = run([{"text": text, "message": "linux-64: the specs cannot be satisfied: No "
                   "candidates were found for nosuch * in conda-forge/linux-64"}])
    assert done["lines"] == [5]

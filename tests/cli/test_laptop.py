"""A laptop install: ``pip install envyard`` locks, builds, packs, renders, submits and
pushes without the service's web stack or database (those are ``envyard[service]``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement

from envyard.service.cli import SERVICE_STACK
from tests.conftest import HOME, REPO

SERVICE_ONLY = sorted(SERVICE_STACK)

#: Runs the envyard CLI in a process where the service-only packages cannot be imported,
#: as on a laptop that installed envyard without its ``service`` extra.
WITHOUT_SERVICE = f"""
import sys
from importlib.abc import MetaPathFinder

class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVICE_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
sys.argv[0] = "envyard"
from envyard.service.cli import main
main()
"""


def laptop(*args: str, service: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", WITHOUT_SERVICE, *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "ENVYARD_HOME": str(HOME)})
    if not service:
        assert "No module named" not in done.stderr and "envyard[service]" not in done.stderr, \
            done.stderr
    return done


def test_the_core_install_does_not_require_the_service_stack() -> None:
    core = [Requirement(r) for r in requires("envyard") or []]
    core_names = {r.name.replace("-", "_").lower() for r in core if r.marker is None}
    assert core_names and not core_names & set(SERVICE_ONLY), core_names & set(SERVICE_ONLY)
    service = {r.name.replace("-", "_").lower() for r in core
               if r.marker is not None and r.marker.evaluate({"extra": "service"})}
    assert {"fastapi", "sqlalchemy", "alembic", "uvicorn"} <= service


def test_lock_build_pack_render_run_without_the_service_stack(channel: Path,
                                                             tmp_path: Path) -> None:
    lock, prefix, pack = tmp_path / "conda-lock.yml", tmp_path / "env", tmp_path / "env.tar.zst"
    done = laptop("lock", str(REPO / "envs" / "dask-notebook.yml"), "-c", str(channel),
                  "-o", str(lock), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["platforms"]["linux-64"] > 40
    done = laptop("build", str(lock), "--prefix", str(prefix), "--pack", str(pack), "--json")
    assert done.returncode == 0, done.stderr
    assert (prefix / "bin" / "python").exists() and pack.stat().st_size > 0
    done = laptop("render", str(lock))
    assert done.returncode == 0 and "@EXPLICIT" in done.stdout, done.stderr


def test_submit_and_push_run_without_the_service_stack(channel: Path, tmp_path: Path) -> None:
    """With nothing listening, both get as far as the network and say so (exit 20)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    spec = REPO / "envs" / "dask-notebook.yml"
    for command in ("submit", "push"):
        done = laptop(command, str(spec), "--env", "me/x", "--server",
                      f"http://127.0.0.1:{port}", "--token", "t")
        assert done.returncode == 20, done.stderr
        assert f"127.0.0.1:{port}" in done.stderr and "internal error" not in done.stderr
    assert laptop("--help").returncode == 0


def test_a_service_command_on_a_laptop_says_which_extra_it_needs() -> None:
    for command in (["serve", "--port", "0"], ["demo", "--exit"],
                    ["token", "create", "--name", "me", "--role", "me=developer"]):
        done = laptop(*command, service=True)
        assert done.returncode == 3, done.stderr
        assert "pip install 'envyard[service]'" in done.stderr, done.stderr
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_token_new_list_revoke_run_without_the_service_stack() -> None:
    """They talk to the service; only `token create` needs the database."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    remote = ["--server", f"http://127.0.0.1:{port}", "--token", "t"]
    for command in (["new", "ci", "--role", "me=viewer"], ["list"], ["revoke", "3"]):
        done = laptop("token", *command, *remote)
        assert done.returncode == 20, done.stderr
        assert f"127.0.0.1:{port}" in done.stderr and "internal error" not in done.stderr

"""The envyard command as a user runs it: results, JSON, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envyard.builder.lock import read_lock, write_lock
from envyard.builder.render import render_explicit
from tests.conftest import HOME, REPO

ENVYARD = str(Path(sys.executable).with_name("envyard"))


def run(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENVYARD_HOME": str(HOME)}
    done = subprocess.run([ENVYARD, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)
    assert done.returncode >= 0, f"killed by signal {-done.returncode}: {done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def cli_lock(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "conda-lock.yml"
    done = run("lock", str(REPO / "envs" / "dask-notebook.yml"), "-c", str(channel),
               "-o", str(out), "--json", check=True)
    result = json.loads(done.stdout)
    assert result["platforms"]["linux-64"] > 40
    return out


def test_lock_writes_a_conda_lock_file(cli_lock: Path) -> None:
    lock = read_lock(cli_lock)
    assert {"python", "dask", "distributed", "numpy"} <= {p.name for p in lock.package}


def test_build_and_pack(cli_lock: Path, tmp_path: Path) -> None:
    prefix, pack = tmp_path / "env", tmp_path / "env.tar.zst"
    done = run("build", str(cli_lock), "--prefix", str(prefix), "--pack", str(pack), "--json",
               check=True)
    result = json.loads(done.stdout)
    assert result["reused"] is False and result["pack"]["bytes"] == pack.stat().st_size
    assert (prefix / "bin" / "python").exists()
    again = json.loads(run("build", str(cli_lock), "--prefix", str(prefix), "--json",
                           check=True).stdout)
    assert again["reused"] is True


def test_render_matches_library(cli_lock: Path) -> None:
    done = run("render", str(cli_lock), check=True)
    assert done.stdout == render_explicit(read_lock(cli_lock), "linux-64")


def test_bad_yaml_exit_code_and_location(tmp_path: Path) -> None:
    bad = tmp_path / "env.yml"
    bad.write_text("name: x\ndependencies: [python\n")
    done = run("lock", str(bad), "-o", str(tmp_path / "out.yml"))
    assert done.returncode == 10
    assert f"{bad}:3" in done.stderr or f"{bad}:2" in done.stderr
    assert not (tmp_path / "out.yml").exists()


def test_deeply_nested_spec_is_a_spec_error(tmp_path: Path) -> None:
    """Before: 500 levels exited 1 with an internal error; 100,000 killed the process."""
    for depth in (500, 100_000):
        deep = tmp_path / f"deep{depth}.yml"
        deep.write_text("dependencies: " + "[" * depth + "]" * depth + "\n")
        done = run("lock", str(deep), "-o", str(tmp_path / "out.yml"))
        assert done.returncode == 10, done.stderr
        assert "nested more than 32 levels deep" in done.stderr
        assert "internal error" not in done.stderr


def test_unsatisfiable_exit_code(channel: Path, tmp_path: Path) -> None:
    env = tmp_path / "env.yml"
    env.write_text("dependencies: [python 3.11.*, dask ==2025.12.0, distributed ==2026.1.2]\n")
    done = run("lock", str(env), "-c", str(channel), "-o", str(tmp_path / "out.yml"))
    assert done.returncode == 11 and "cannot be satisfied" in done.stderr
    assert not (tmp_path / "out.yml").exists()


def test_tampered_lock_exit_code_and_nothing_built(cli_lock: Path, tmp_path: Path) -> None:
    lock = read_lock(cli_lock)
    next(p for p in lock.package if p.name == "dask").hash.sha256 = "f" * 64
    bad = tmp_path / "conda-lock.yml"
    write_lock(lock, bad)
    done = run("build", str(bad), "--prefix", str(tmp_path / "env"))
    assert done.returncode == 13 and "sha256 mismatch" in done.stderr
    assert not (tmp_path / "env").exists()


def test_disallowed_channel(tmp_path: Path) -> None:
    env = tmp_path / "env.yml"
    env.write_text("channels: [evil]\ndependencies: [python]\n")
    done = run("lock", str(env), "--allow-channel", "conda-forge")
    assert done.returncode == 10 and "not allowed" in done.stderr


def test_missing_files(tmp_path: Path) -> None:
    assert run("lock", str(tmp_path / "nope.yml")).returncode == 10
    assert run("build", str(tmp_path / "nope.yml"), "--prefix", str(tmp_path / "e")
               ).returncode == 12


def test_usage_error_and_help() -> None:
    assert run("lock", "--no-such-flag", "x").returncode == 2
    for cmd in ("lock", "build", "render", "pack", "demo", "demo-channel", "pypi-names"):
        done = run(cmd, "--help", check=True)
        assert "usage: envyard" in done.stdout


def test_each_command_has_its_parser_and_help_lists_them_all() -> None:
    """A run builds only its own command's parser: the table that says which module
    registers which command must name every command, and `envyard --help` all of them."""
    from envyard.service.cli import COMMANDS, build_parser

    every = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(every) == sorted(c for names in COMMANDS.values() for c in names)
    for names in COMMANDS.values():
        for command in names:
            assert command in build_parser(command)._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    listed = run("--help", check=True).stdout
    assert all(c in listed for names in COMMANDS.values() for c in names)
    assert run("no-such-command").returncode == 2


def test_one_exit_code_table_in_help_readme_and_architecture() -> None:
    """The codes come from the error classes; the docs must print the same table."""
    from envyard.service.errors import exit_code_table, exit_codes

    table = exit_code_table()
    for doc in (REPO / "README.md", REPO / "docs" / "architecture.md"):
        text = "\n".join(line.strip() for line in doc.read_text().splitlines())
        assert table in text, f"{doc.name} does not show the exit code table"
    listed = run("--help", check=True).stdout
    assert all(f"{code:>3}  {meaning}" in listed for code, meaning in exit_codes().items())
    assert {2, 3, 10, 11, 13, 20, 22} <= set(exit_codes())


def test_repeated_runs_never_end_by_a_signal(cli_lock: Path) -> None:
    for _ in range(8):
        run("render", str(cli_lock), check=True)


def test_demo_builds_every_env_file_through_the_service(channel: Path, tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "small.yml").write_text("name: small\ndependencies: [python=3.11, toolz]\n"
                                    "variables:\n  GREETING: hello\n")
    (envs / "other.yml").write_text("dependencies: [python=3.11, pyyaml]\n")
    done = run("demo", "--envs", str(envs), "--volume", str(tmp_path / "volume"), "--exit",
               "--json", "--port", "0", check=True)
    result = json.loads(done.stdout)
    assert result["server"].startswith("http://127.0.0.1:") and result["token"]
    envs_built = {e["name"]: e for e in result["environments"]}
    assert set(envs_built) == {"small", "other"}
    small = envs_built["small"]
    assert small["state"] == "ready" and small["lock"].startswith(result["server"])
    prefix = Path(small["prefix"])
    assert prefix == tmp_path / "volume" / "envs" / "demo" / "small" / "current"
    state = json.loads((prefix / "conda-meta" / "state").read_text())
    assert state == {"env_vars": {"GREETING": "hello"}}
    assert list((tmp_path / "volume" / "packs").glob("*.tar.zst"))
    assert (tmp_path / "volume" / "envyard.db").exists()

    (envs / "other.yml").write_text("dependencies: [python=3.11, pyyaml, toolz]\n")
    again = run("demo", "--envs", str(envs), "--volume", str(tmp_path / "volume"), "--exit",
                "--port", "0", check=True)  # before: every run added a version of each file
    assert "demo/small version 1: ready (unchanged)" in again.stdout
    assert "demo/other version 2: ready," in again.stdout
    assert "The service is at" not in again.stdout and "has stopped" in again.stdout


def test_demo_keeps_its_port_after_a_run_and_says_when_it_moves(tmp_path: Path) -> None:
    """Before: a port in TIME_WAIT from the last run counted as taken, silently."""
    import socket

    from envyard.service.demo import _free_port

    with socket.socket() as listener:  # the last run's service (uvicorn sets SO_REUSEADDR)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", taken)) as client:
            served, _ = listener.accept()
            served.close()  # the server closes first: its side waits in TIME_WAIT
            client.recv(1)
    assert _free_port(taken) == taken
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert _free_port(busy.getsockname()[1]) != busy.getsockname()[1]


def test_demo_without_env_files(tmp_path: Path) -> None:
    done = run("demo", "--envs", str(tmp_path), "--volume", str(tmp_path / "v"), "--exit")
    assert done.returncode == 10 and "no environment files" in done.stderr


PINS = REPO / "envs" / "cluster" / "dask-pins.yml"


def test_dask_check_and_follow_pins(channel: Path, tmp_path: Path) -> None:
    latest = tmp_path / "latest.yml"
    run("lock", str(REPO / "envs" / "dask-latest.yml"), "-c", str(channel), "-o", str(latest),
        "-q", check=True)
    done = run("dask", "check", str(latest), "--pins", str(PINS), "-p", "linux-64")
    assert done.returncode == 17
    assert "dask         mismatch  env 2026.1.2       cluster 2025.12.0" in done.stdout
    assert "does not match the cluster's pins: dask, distributed" in done.stderr
    warn = run("dask", "check", str(latest), "--pins", str(PINS), "--policy", "warn", "--json",
               check=True)
    assert json.loads(warn.stdout)["ok"] is False
    followed = tmp_path / "followed.yml"
    run("lock", str(REPO / "envs" / "dask-latest.yml"), "-c", str(channel), "-o",
        str(followed), "--follow-pins", str(PINS), "-q", check=True)
    ok = run("dask", "check", str(followed), "--pins", str(PINS), "--json", check=True)
    report = json.loads(ok.stdout)
    assert report["ok"] is True
    assert {v["package"]: v["env"] for v in report["verdicts"]}["dask"] == "2025.12.0"
    assert run("dask", "check", str(followed), "--pins-lock", str(latest)).returncode == 17


def test_follow_pins_conflict_names_the_package(channel: Path, tmp_path: Path) -> None:
    env = tmp_path / "env.yml"
    env.write_text("dependencies: [python=3.11, dask=2026.1.2, distributed]\n")
    done = run("lock", str(env), "-c", str(channel), "-o", str(tmp_path / "l.yml"),
               "--follow-pins", str(PINS))
    assert done.returncode == 11 and "dask" in done.stderr
    assert not (tmp_path / "l.yml").exists()


def test_pypi_names_refreshes_the_map_from_a_url(tmp_path: Path) -> None:
    """`envyard pypi-names --url` writes the map a pip: section then reads; a URL that does
    not hold one is a clear fetch error (13) and leaves nothing behind."""
    from tests.servers import serve_directory

    (tmp_path / "map.json").write_text('{"dask-core": "dask", "libfoo": null}')
    (tmp_path / "page.html").write_text("<html>not a map</html>")
    env = {**os.environ, "ENVYARD_HOME": str(tmp_path / "home")}
    with serve_directory(tmp_path) as (url, _):
        bad = subprocess.run([ENVYARD, "pypi-names", "--url", f"{url}/page.html"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 13 and "cannot refresh the PyPI name map" in bad.stderr
        assert not (tmp_path / "home" / "pypi-names.json").exists()
        good = subprocess.run([ENVYARD, "pypi-names", "--url", f"{url}/map.json"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert good.returncode == 0, good.stderr
        written = json.loads((tmp_path / "home" / "pypi-names.json").read_text())
        assert written["pypi_names"] == {"dask-core": "dask"}
        assert written["not_python"] == ["libfoo"]

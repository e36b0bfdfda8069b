"""Real servers on 127.0.0.1 for tests and benchmarks: PostgreSQL and `envyard serve`."""

from __future__ import annotations

import functools
import glob
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.waiting import wait_until

ENVYARD = str(Path(sys.executable).with_name("envyard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """Terminate a child server, killing it if it does not exit within ``timeout``."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(
        f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (tests/setup.sh installs it)")
    return found


class Postgres:
    """A throwaway cluster in a temp dir, on a loopback port, trusting local connections."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="envyard-pg-"))
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        data = str(self.dir / "data")
        self._run(_pg_bin("initdb"), "-D", data, "-U", "envyard", "--auth=trust", "-E", "UTF8")
        self._run(_pg_bin("pg_ctl"), "-D", data, "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c max_connections=200 -c fsync=off", "start")
        return self

    def pause(self) -> None:
        """Stop the server (connections drop), keeping its data: a database outage."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
                  "-w", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c max_connections=200 -c fsync=off", "start")

    def new_database(self) -> str:
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=envyard dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://envyard@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self._as_user, _pg_bin("pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Service:
    """`envyard serve` as a child process with its own volume and database."""

    root: Path
    channel: Path
    database_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _channel_url(self) -> str:
        """The channel as a URL (a test may give one already)."""
        return self.channel.as_uri() if isinstance(self.channel, Path) else str(self.channel)

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "ENVYARD_ROOT": str(self.root),
               "ENVYARD_DEFAULT_CHANNELS": f'["{self.channel}"]',
               # the demo channel stands in for conda-forge, as a site's mirror does
               "ENVYARD_MIRRORS": json.dumps({"conda-forge": [self._channel_url]}),
               "ENVYARD_ALLOWED_CHANNELS": json.dumps([str(self.channel), "conda-forge"]),
               "ENVYARD_PORT": str(self.port),
               "ENVYARD_DATABASE_URL": self.database_url, **self.extra_env}
        env.pop("ENVYARD_CONFIG", None)
        return env

    @property
    def log(self) -> Path:
        """What the service wrote to stderr."""
        return self.root.parent / f"serve-{self.port}.log"

    def start(self) -> Service:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([ENVYARD, "serve", *self.args], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=log)
        proc = self.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"envyard serve exited with {proc.returncode}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        wait_until(healthy, timeout=60, what="envyard serve to answer /healthz",
                   ignoring=(httpx.TransportError,))
        return self

    def token(self, *roles: str, expires_in_days: float | None = None,
              name: str = "test") -> str:
        cmd = [ENVYARD, "token", "create", "--name", name]
        for r in roles:
            cmd += ["--role", r]
        if expires_in_days is not None:
            cmd += ["--expires-in-days", str(expires_in_days)]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60,
                              check=True)
        return done.stdout.strip()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 15)


class _Recording(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requested.append(self.path)  # type: ignore[attr-defined]
        if self.server.before is not None:  # type: ignore[attr-defined]
            self.server.before(self.path)  # type: ignore[attr-defined]
        super().do_GET()


class _StaticServer(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # rattler opens up to 100 connections at once (default: 5)


@contextmanager
def serve_directory(directory: Path, before: Callable[[str], None] | None = None
                    ) -> Iterator[tuple[str, list[str]]]:
    """``directory`` over HTTP on 127.0.0.1 (a channel, a package index, a file to
    download): its URL and the paths requested so far. ``before(path)`` runs ahead of
    each answer (a test holds a download there)."""
    handler = functools.partial(_Recording, directory=str(directory))
    server = _StaticServer(("127.0.0.1", 0), handler)
    server.requested = []  # type: ignore[attr-defined]
    server.before = before  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", \
            server.requested  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()

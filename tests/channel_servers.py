"""Channels as sites serve them, on 127.0.0.1: behind HTTP basic auth, a bearer token or a
conda token (``/t/<token>/…``), and down. Each records what it was asked and with what."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Seen:
    """One request: its path (a conda token taken out), the Authorization it carried
    and the status it was answered with."""

    path: str
    authorization: str | None
    status: int


@dataclass
class Guard:
    """What a request must carry: ``basic`` (user, password), ``bearer`` token or
    ``conda_token`` (in the path); none: an open channel."""

    basic: tuple[str, str] | None = None
    bearer: str | None = None
    conda_token: str | None = None
    seen: list[Seen] = field(default_factory=list)

    def admits(self, path: str, authorization: str | None) -> tuple[bool, str]:
        """Whether the request may be answered, and its path without a conda token."""
        if self.conda_token is not None:
            prefix = f"/t/{self.conda_token}/"
            return path.startswith(prefix), "/" + path[len(prefix):] \
                if path.startswith(prefix) else path
        if self.basic is not None:
            pair = base64.b64encode(":".join(self.basic).encode()).decode()
            return authorization == f"Basic {pair}", path
        if self.bearer is not None:
            return authorization == f"Bearer {self.bearer}", path
        return True, path


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _guarded(self, send: bool) -> None:
        guard = self.server.guard
        auth = self.headers.get("Authorization")
        ok, self.path = guard.admits(self.path, auth)
        if not ok:
            guard.seen.append(Seen(self.path, auth, 401))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private channel"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        exists = Path(self.translate_path(self.path)).is_file()
        guard.seen.append(Seen(self.path, auth, 200 if exists else 404))
        super().do_GET() if send else super().do_HEAD()

    def do_GET(self) -> None:
        self._guarded(True)

    def do_HEAD(self) -> None:
        self._guarded(False)


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # rattler opens many connections at once
    daemon_threads = True
    guard: Guard


@contextmanager
def channel_server(directory: Path, guard: Guard | None = None) -> Iterator[tuple[str, Guard]]:
    """``directory`` served on 127.0.0.1 behind ``guard``: its base URL and the guard
    (whose ``seen`` lists the requests)."""
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(directory)))
    server.guard = guard or Guard()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.guard
    finally:
        server.shutdown()
        server.server_close()


def unreachable_url() -> str:
    """A loopback URL nothing listens on (a port taken and closed again)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"

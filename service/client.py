"""A small HTTP client for the envyard API, used by the CLI's remote commands.

Server URL and token come from flags, else ``ENVYARD_SERVER`` / ``ENVYARD_TOKEN``, else
``~/.config/envyard/client.yml`` (``server:`` and ``token:``); in a JupyterHub user server
the server's ``JUPYTERHUB_API_TOKEN`` is the last resort.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envyard.service.console import info
from envyard.service.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RemoteError,
    TooLarge,
    Unauthorized,
)

CONFIG = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "envyard" / \
    "client.yml"
_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge}


def client_config(server: str | None, token: str | None) -> tuple[str, str | None]:
    file: dict[str, Any] = {}
    if CONFIG.exists():
        import yaml

        file = yaml.safe_load(CONFIG.read_text()) or {}
    server = server or os.environ.get("ENVYARD_SERVER") or file.get("server") \
        or "http://127.0.0.1:8765"
    # inside a hub user server the server's own hub token works too
    token = token or os.environ.get("ENVYARD_TOKEN") or file.get("token") \
        or os.environ.get("JUPYTERHUB_API_TOKEN")
    return server.rstrip("/"), token


class Client:
    def __init__(self, server: str, token: str | None, timeout: float = 60) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=server, headers=headers, timeout=timeout,
                                  follow_redirects=True)  # downloads from object storage
        self.server = server

    def _check(self, resp: Any) -> Any:
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            if not isinstance(detail, str):
                detail = json.dumps(detail)
            cls = _BY_STATUS.get(resp.status_code, RemoteError)
            err = cls(f"{resp.status_code}: {detail}")
            err.exit_code = 20 + (resp.status_code // 100 == 5)
            raise err
        return resp

    def request(self, method: str, path: str, *, retries: int = 0, **kw: Any) -> Any:
        """One request; with ``retries``, a timeout, a lost connection or a 503 is tried
        again (after the server's ``Retry-After``). Only for requests that are safe to
        repeat: reads, and submissions that carry an ``Idempotency-Key``."""
        import httpx

        for attempt in range(retries + 1):
            try:
                resp = self.http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt == retries:
                    raise RemoteError(f"cannot reach {self.server}: {exc}") from None
                delay = min(2.0 ** attempt, 10.0)
            else:
                if resp.status_code != 503 or attempt == retries:
                    return self._check(resp)
                hint = resp.headers.get("retry-after", "")
                delay = min(float(hint), 30.0) if hint.isdigit() else min(2.0 ** attempt, 10.0)
            info(f"{self.server} is busy or unreachable; retrying in {delay:.0f} s")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def follow_log(self, env: str, number: int | str) -> Iterator[tuple[str, str]]:
        """(event, data) pairs of the log stream until the build ends."""
        import httpx

        url = f"/api/v1/environments/{env}/versions/{number}/log"
        try:
            with self.http.stream("GET", url, params={"follow": "true"},
                                  timeout=httpx.Timeout(60, read=None)) as resp:
                self._check(resp)
                event = "message"
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        yield event, line[6:]
        except httpx.TransportError as exc:
            raise RemoteError(f"lost {self.server}: {exc}") from None


#: A latest version in one of these states stands for its unchanged file; one that failed,
#: was cancelled or collected is submitted again.
KEPT = ("ready", "queued", "solving", "installing", "packing")


@dataclass(frozen=True)
class SyncItem:
    """One environment file of a folder being synced, and whether it changed."""

    path: Path
    name: str
    body: bytes
    unchanged_version: int | None  # the version it already is; None: submit it


def plan_sync(client: Client, namespace: str, files: list[Path]) -> list[SyncItem]:
    """What syncing ``files`` into ``namespace`` would do: a file whose bytes are the
    environment's latest version (ready or still building) is unchanged; any other is
    submitted. ``sync`` and ``demo`` both decide this way."""
    from envyard.builder.spec import read_spec

    try:
        known = {r["name"]: r for r in client.get(
            f"/api/v1/namespaces/{namespace}")["environments"]}
    except NotFound:  # a namespace nothing was submitted to yet
        known = {}
    items = []
    for f in files:
        name = read_spec(f).name or f.stem
        body = f.read_bytes()
        row = known.get(name)
        same = row is not None and row["latest_spec_sha256"] == hashlib.sha256(
            body).hexdigest() and row["latest_state"] in KEPT
        items.append(SyncItem(f, name, body, row["latest_version"] if same and row else None))
    return items

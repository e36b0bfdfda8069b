"""Taking on work only when it can be done: overload is a quick 503, never a hang or a 500.

These bounds are answered with ``503`` and ``Retry-After`` when reached, and the
volume's free space (``min_free_bytes``) with ``507``:
- requests in flight (``max_requests``; ``/healthz`` is always answered, so an
  orchestrator does not kill a replica for being busy), and log followers apart
  (``max_log_followers``), since a follow lasts as long as its build;
- request bodies are read whole before anything else, within a deadline (``BODY_IDLE``
  seconds without a byte, or less than ``BODY_RATE`` on average: 408) and a size (413),
  so a client trickling a body holds no turn, no thread and no connection;
- requests being processed: ``request_threads`` at a time; the others wait their turn
  without a thread or a connection, for up to ``QUEUE_WAIT`` seconds. A request holds its
  session's connection from its route's thread to its teardown's, so without this bound
  250 requests held every pooled connection while waiting for a thread, and the threads
  waited for connections (each one then timed out: 30 s and a 500). Uploads and log
  streams are not processed this way: their database work is done within one thread;
- heavy parsing (a pushed lock of tens of megabytes): ``HEAVY_SLOTS`` at a time, off the
  event loop, each with its budget (``builder.lock.parse_lock``);
- the database: a request that cannot get a connection within the pool's timeout, or
  finds SQLite locked, is answered 503 by the app's error handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool

from envyard.service.errors import InsufficientStorage, RequestTimeout, TooLarge, Unavailable
from envyard.service.settings import Settings

logger = logging.getLogger("envyard")

T = TypeVar("T")

HEAVY_SLOTS = 2
HEAVY_WAIT = 5.0  # seconds a request waits for a heavy slot before 503
QUEUE_WAIT = 8.0  # seconds a request waits for its turn to be processed before 503
BODY_IDLE = 10.0  # seconds a request body may pause
BODY_RATE = 64 << 10  # bytes/s a body must average (after BODY_IDLE seconds of grace)
JSON_BODY_BYTES = 1 << 20  # the largest body of the routes that are not uploads


def _is_follow(scope: dict[str, Any]) -> bool:
    return scope["path"].endswith("/log") and b"follow=true" in scope.get("query_string", b"")


def _is_upload(scope: dict[str, Any]) -> bool:
    return scope["method"] == "POST" and scope["path"].endswith(("/versions", "/locks"))


class Admission:
    """ASGI middleware: counts requests in flight and turns the excess away at once; lets
    ``processing`` of them be processed at a time, the rest waiting their turn."""

    def __init__(self, app: Any, *, max_requests: int, max_followers: int,
                 processing: int, max_spec_bytes: int, max_lock_bytes: int) -> None:
        self.app = app
        self.limits = {"requests": max_requests, "followers": max_followers}
        self.in_flight = {"requests": 0, "followers": 0}
        self.processing = processing
        self.upload_bytes = {"/versions": max_spec_bytes, "/locks": max_lock_bytes}
        self._turns: asyncio.Semaphore | None = None  # made on the server's event loop

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == scope.get("root_path", "") + "/healthz":
            await self.app(scope, receive, send)
            return
        kind = "followers" if _is_follow(scope) else "requests"
        if self.in_flight[kind] >= self.limits[kind]:
            await _refuse(send, f"the service is busy ({self.in_flight[kind]} {kind} in "
                          "flight); retry shortly", retry_after=1)
            return
        self.in_flight[kind] += 1  # one event loop: no lock needed
        try:
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                limit = next((n for end, n in self.upload_bytes.items()
                              if _is_upload(scope) and scope["path"].endswith(end)),
                             JSON_BODY_BYTES)
                try:
                    receive = await _buffered(receive, limit)
                except (RequestTimeout, TooLarge) as refused:
                    await _refuse(send, str(refused), status=refused.status)
                    return
                except _Gone:
                    return
            if kind == "followers" or _is_upload(scope):
                await self.app(scope, receive, send)
                return
            if self._turns is None:
                self._turns = asyncio.Semaphore(self.processing)
            try:
                await asyncio.wait_for(self._turns.acquire(), QUEUE_WAIT)
            except TimeoutError:
                await _refuse(send, f"the service is busy (waited {QUEUE_WAIT:.0f} s for a "
                              "turn); retry shortly", retry_after=2)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self._turns.release()
        finally:
            self.in_flight[kind] -= 1


class _Gone(Exception):
    """The client went away while sending its body: there is no one to answer."""


async def _buffered(receive: Any, limit: int) -> Any:
    """Read the whole body within its deadline and size; return a ``receive`` that hands
    it to the app in one message, then passes on what the client sends next (a
    disconnect)."""
    loop = asyncio.get_running_loop()
    start, chunks, size = loop.time(), [], 0
    while True:
        left = min(BODY_IDLE, start + BODY_IDLE + size / BODY_RATE + BODY_IDLE
                   - loop.time())
        try:
            message = await asyncio.wait_for(receive(), max(left, 0.001))
        except TimeoutError:
            raise RequestTimeout("the request body came too slowly") from None
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body larger than the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body, given = b"".join(chunks), False

    async def replay() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Any, detail: str, *, retry_after: int = 0, status: int = 503) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_space(settings: Settings) -> None:
    """Refuse new work while the volume has less than ``min_free_bytes`` free."""
    try:
        free = shutil.disk_usage(settings.root).free
    except OSError:
        return  # not mounted yet, say: the write itself will tell
    if free < settings.min_free_bytes:
        logger.error("the volume %s has %d bytes free (min_free_bytes: %d)", settings.root,
                     free, settings.min_free_bytes)
        raise InsufficientStorage(f"the service's shared volume is full ({free >> 20} MB "
                                  "free); an operator must free space (`envyard gc`) before "
                                  "it accepts more")


_heavy = anyio.CapacityLimiter(HEAVY_SLOTS)


async def heavy(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a worker thread, at most ``HEAVY_SLOTS`` at once; a request
    that waits longer than ``HEAVY_WAIT`` for a slot is answered 503."""
    try:
        with anyio.fail_after(HEAVY_WAIT):
            await _heavy.acquire()
    except TimeoutError:
        raise Unavailable("busy checking other large uploads; retry shortly",
                          retry_after=5) from None
    try:
        return await run_in_threadpool(fn, *args)
    finally:
        _heavy.release()

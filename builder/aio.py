"""Run rattler's coroutines from synchronous code, with a hard time limit.

The coroutine runs on its own event loop in a daemon thread; the caller waits at most
``timeout`` seconds and then gets ``on_timeout`` raised, whatever the coroutine is doing
(a stalled download, a solver stuck in a huge search). Work that overruns is abandoned,
never waited for; processes end through ``builder.exit.exit_now`` so it cannot block exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

T = TypeVar("T")


def run_with_timeout(make: Callable[[], Coroutine[Any, Any, T]], *, timeout: float | None,
                     on_timeout: Callable[[], Exception]) -> T:
    """Run ``make()`` to completion on a fresh loop, or raise ``on_timeout()`` after ``timeout``."""
    return call_with_timeout(lambda: asyncio.run(make()), timeout=timeout,
                             on_timeout=on_timeout)


def call_with_timeout(work: Callable[[], T], *, timeout: float | None,
                      on_timeout: Callable[[], Exception]) -> T:
    """Call ``work()`` in a daemon thread; raise ``on_timeout()`` if it overruns ``timeout``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="envyard-limited", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise on_timeout()
    if "error" in box:
        raise box["error"]
    return cast(T, box["result"])

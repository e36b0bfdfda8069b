"""One way for a test to wait: ``wait_until`` polls a check until it holds, then hands
back what the check found, or fails saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float, what: str, every: float = 0.1,
               ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``check()`` every ``every`` seconds until it returns something truthy and
    return that; an exception in ``ignoring`` counts as "not yet" (a server still
    starting), any other propagates (a server that exited). After ``timeout`` seconds,
    ``AssertionError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except ignoring:
            found = None  # type: ignore[assignment]
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)

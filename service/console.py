"""Terminal output for the CLI: progress on stderr, results on stdout, JSON when asked.

Rich is imported only when a progress display is actually drawn, so scripted runs
(``--json``, no TTY) pay nothing for it.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def size(n: int) -> str:
    """Bytes as a person reads them: 1.2 GB, 340 MB, 12 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def timings(stages: dict[str, float]) -> str:
    """A build's stage times: ``solve 0.41 s, install 2.3 s, pack 0.62 s``."""
    return ", ".join(f"{stage} {seconds:.2g} s" for stage, seconds in stages.items())


def info(message: str) -> None:
    sys.stderr.write(message + "\n")


class Progress:
    """Stage and count display: a rich bar on a terminal, one line per stage elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: str | None = None
        self._lock = threading.Lock()  # steps arrive from download and link threads

    def stage(self, message: str) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.console.print(f"[bold]•[/bold] {message}")
        else:
            info(f"• {message}")

    def step(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._step(stage, done, total)

    def _step(self, stage: str, done: int, total: int) -> None:
        if self._rich is None:
            if stage != self._last:
                info(f"• {stage} ({total})")
                self._last = stage
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._rich.add_task(stage, total=total)
        self._rich.update(self._tasks[stage], completed=done, total=total)


@contextmanager
def progress(enabled: bool) -> Iterator[Progress]:
    show = Progress(enabled)
    if enabled and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        with Bar(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), console=Console(stderr=True), transient=False) as bar:
            show._rich = bar
            yield show
        return
    yield show

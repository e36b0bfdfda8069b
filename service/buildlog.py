"""A version's build log: timestamped lines in a file on the shared volume.

Readers (the log endpoint, ``envyard logs -f``) follow the file by offset; progress from
the pipeline is thinned to a line per tenth of a stage so logs stay readable.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path


class BuildLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self.stage = "queued"

    def line(self, text: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        with self._lock, self.path.open("a") as f:
            f.write(f"{stamp} [{self.stage}] {text}\n")

    def progress(self, step: str, done: int, total: int) -> None:
        """Log ``step done/total`` when it crosses a tenth, and at the end."""
        tenth = done * 10 // max(total, 1)
        if done == total or tenth > self._last.get(step, -1):
            self._last[step] = tenth
            self.line(f"{step} {done}/{total}")

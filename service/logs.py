"""The service's own log records: on stderr, each naming the version it is about.

A build sets ``building`` (namespace/name/number) for its thread, and every record logged
while it runs carries it, so a line is found by version in any log collector. ``text``
lines are for people; ``json`` (one object a line: time, level, logger, message, version)
for collectors such as a cluster's (``ENVYARD_LOG_FORMAT=json``).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from typing import Literal

#: The version a build thread is working on, as ``namespace/name/number``.
building: contextvars.ContextVar[str | None] = contextvars.ContextVar("building",
                                                                      default=None)


class _WithVersion(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.version = building.get()
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        version = getattr(record, "version", None)
        line = (f"{_time(record)} {record.levelname} {record.name}"
                + (f" [{version}]" if version else "") + f": {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _time(record), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage(),
                 "version": getattr(record, "version", None)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _time(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


def configure(form: Literal["text", "json"], level: str = "info") -> None:
    """Send the ``envyard`` logger's records to stderr in ``form``, from ``level`` up."""
    handler = logging.StreamHandler()
    handler.addFilter(_WithVersion())
    handler.setFormatter(_Json() if form == "json" else _Text())
    logger = logging.getLogger("envyard")
    for old in [h for h in logger.handlers if getattr(h, "envyard", False)]:
        logger.removeHandler(old)
    handler.envyard = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


__all__ = ["building", "configure"]

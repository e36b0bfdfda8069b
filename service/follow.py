"""Following build logs cheaply: one database query per tick for every follower.

A follower (``GET …/log?follow=true``) used to run its own query every 0.2 s on the event
loop, so 100 followers tripled the latency of everything else. Here one task asks the
database, in a worker thread, for the states of every version someone follows, once per
``TICK``, and wakes the followers; each follower only reads what its log file gained. A
stream ends when its version can no longer change (a terminal state, or gone).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from envyard.service.db import Database
from envyard.service.models import Version
from envyard.service.transitions import State

logger = logging.getLogger("envyard")

TICK = 0.5  # seconds between looks at the followed versions' states
GONE = "gone"  # the version no longer exists


class LogFollowers:
    """The states of followed versions, refreshed by one task for all followers."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.watched: dict[int, int] = {}  # version id -> followers
        self.states: dict[int, str] = {}
        self._tick: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def _query(self, ids: list[int]) -> dict[int, str]:
        with self.db.session() as s:
            found = dict(s.execute(select(Version.id, Version.state)
                                   .where(Version.id.in_(ids))).tuples().all())
        return {i: found.get(i, GONE) for i in ids}

    async def _run(self) -> None:
        while self.watched:
            try:
                self.states.update(await run_in_threadpool(self._query, list(self.watched)))
            except Exception as exc:  # the database may be briefly away: keep following
                logger.warning("log followers: state lookup failed: %s", exc)
            tick, self._tick = self._tick, asyncio.Event()
            if tick is not None:
                tick.set()
            await asyncio.sleep(TICK)
        self._task = None

    async def next_state(self, version_id: int) -> str:
        """The version's state after the next tick whose query included it (a follower
        that joins while a query runs waits for the one after)."""
        while True:
            if self._tick is None:
                self._tick = asyncio.Event()
            tick = self._tick
            if self._task is None:
                self._task = asyncio.create_task(self._run())
            await tick.wait()
            if version_id in self.states:
                return self.states[version_id]

    async def follow(self, version_id: int, log: Path) -> AsyncIterator[str]:
        """Server-sent events: the log's lines as they come and each new state, until the
        version is finished (or deleted)."""
        self.watched[version_id] = self.watched.get(version_id, 0) + 1
        offset, state = 0, ""
        try:
            while True:
                new_state = await self.next_state(version_id)
                offset, lines = await run_in_threadpool(_read_from, log, offset)
                for line in lines:
                    yield f"event: log\ndata: {line}\n\n"
                if new_state == GONE:
                    return
                if new_state != state:
                    state = new_state
                    yield f"event: state\ndata: {json.dumps({'state': state})}\n\n"
                if State(state).terminal:
                    return
        finally:
            left = self.watched.get(version_id, 1) - 1
            if left > 0:
                self.watched[version_id] = left
            else:  # (close() may have cleared everything already)
                self.watched.pop(version_id, None)
                self.states.pop(version_id, None)

    def close(self) -> None:
        self.watched.clear()
        if self._task is not None:
            self._task.cancel()


def _read_from(path: Path, offset: int) -> tuple[int, list[str]]:
    """Whole lines of ``path`` after ``offset``; a partial last line waits for its end."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return offset, []
    end = chunk.rfind(b"\n") + 1
    return offset + end, chunk[:end].decode("utf-8", "replace").splitlines()

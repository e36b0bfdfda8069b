"""The demo channel before and after its newer dask/distributed release (2026.1.2): a
hardlinked copy without it, and the step that publishes it there, as a channel changes."""

from __future__ import annotations

import os
from pathlib import Path

from envyard.builder.demo.channel import index_channel

NEWER = "2026.1.2"
OLDER = "2025.12.0"


def channel_before_release(channel: Path, dest: Path) -> Path:
    for sub in ("linux-64", "noarch"):
        (dest / sub).mkdir(parents=True)
        for f in (channel / sub).glob("*.conda"):
            if NEWER not in f.name:
                os.link(f, dest / sub / f.name)
    index_channel(dest)
    return dest


def publish_release(channel: Path, dest: Path) -> None:
    for f in (channel / "noarch").glob(f"*-{NEWER}-*.conda"):
        if not (dest / "noarch" / f.name).exists():
            os.link(f, dest / "noarch" / f.name)
    index_channel(dest)

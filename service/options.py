"""Options several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from envyard.builder.layout import envyard_home

DEFAULT_HOME = envyard_home()


def common(p: argparse.ArgumentParser, *, home: bool = True, quiet: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    if home:
        p.add_argument("--home", type=Path, default=DEFAULT_HOME,
                       help="where envyard keeps its package and repodata caches and the "
                       "demo channel (env ENVYARD_HOME; default %(default)s)")

"""Path parameters shared by the routers, with the constraints the schema documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from envyard.builder.spec import NAME_RE

Name = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=64)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]

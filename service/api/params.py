"""Path parameters shared by the routers, with the constraints the schema documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from envyard.builder.spec import NAME_RE
from envyard.service.api.deps import version_number

Name = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=64)]
#: ``{number}`` in a path: a version number or ``current``, resolved before the route runs
VersionNumber = Annotated[int, Depends(version_number)]

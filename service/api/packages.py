"""Package search over the configured channels' repodata, for a package picker."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from envyard.builder.channel_index import is_platform
from envyard.service.api.deps import PrincipalDep, SettingsDep
from envyard.service.api.schemas import PackageSearch
from envyard.service.errors import Invalid

router = APIRouter(prefix="/api/v1/packages", tags=["packages"])


@router.get("", response_model=PackageSearch,
            responses={503: {"description": "a channel's index is being read (retry after "
                             "Retry-After) or cannot be read"}})
async def search_packages(request: Request, who: PrincipalDep, settings: SettingsDep,
                          search: str = Query(min_length=1, max_length=100,
                                              description="Part of a package name."),
                          platform: str | None = Query(None, max_length=32,
                                                       description="Default: the "
                                                       "service's build platform."),
                          limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    """Package names in the service's channels (for the platform, and noarch) that start
    with or contain ``search``, each with its newest versions; any signed-in caller."""
    chosen = platform or settings.build_platform()
    if not is_platform(chosen):
        raise Invalid(f"platform {chosen!r}: not a conda platform (e.g. linux-64, osx-arm64)")
    found = await request.app.state.package_search.search(search, chosen, limit)
    return {"platform": chosen, "packages": found}

"""Dask clusters on an envyard environment, through dask-gateway: its per-user options.

Imported inside a dask-gateway-server config file (as ``service.hub.configure`` is inside
``jupyterhub_config.py``)::

    from envyard.service.gateway import cluster_options
    c.Backend.cluster_options = cluster_options("http://envyard:8080", token)

The gateway then offers, to each of its users, an ``environment`` option listing the
environments envyard says that user may read whose current version has ``distributed``
and ``dask-gateway`` and passes envyard's Dask pin check (``GET /api/v1/dask/environments``
with the user's name and hub groups: envyard decides by the same grants and shares as for
the user's own requests, so the token must hold admin on ``*``). Choosing one runs the
scheduler and workers in it: ``<prefix>/bin/dask scheduler|worker`` for process backends
(the volume mounted at the same path), its image for Kubernetes. envyard is asked again
when a cluster is created, so the prefix is that of the environment's *current* version
then: a rollback changes what the next cluster runs, never a running one.

A cluster asked for an environment envyard refuses (a pin mismatch, no dask-gateway in
it) is refused with envyard's reason; one the user may not read, or that does not exist,
with one message for both, so the refusal does not tell which.

Only the standard library, aiohttp and dask-gateway-server are imported here (what a
gateway's image has), never envyard's service stack.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from dask_gateway_server.options import Options, Select  # type: ignore[import-untyped]

logger = logging.getLogger("envyard.gateway")

Backend = Literal["process", "kubernetes"]
#: The option's value for the gateway's own environment (its configured commands/image).
GATEWAY_DEFAULT = "default"


class EnvironmentSelect(Select):
    """The ``environment`` option: a ``Select`` whose refusals say envyard's reason."""

    def __init__(self, offered: list[tuple[str, Any]], refused: Mapping[str, str],
                 default: str, unreachable: str | None = None) -> None:
        super().__init__("environment", offered, default=default,
                         label="Environment (envyard)")
        self.refused = dict(refused)
        self.unreachable = unreachable

    def validate(self, x: Any) -> Any:
        if isinstance(x, str) and x not in self.options:
            if x in self.refused:
                raise ValueError(f"environment {x!r} refused: {self.refused[x]}")
            if self.unreachable:
                raise ValueError(f"environment {x!r}: {self.unreachable}")
            offered = ", ".join(k for k in self.options if k != GATEWAY_DEFAULT) or "none"
            raise ValueError(f"environment {x!r} is not one you may run a cluster on "
                             f"(yours: {offered})")
        return super().validate(x)


def overrides(env: Mapping[str, Any] | None, backend: Backend) -> dict[str, Any]:
    """The cluster configuration that runs ``env`` (an answer row of envyard's
    ``/dask/environments``); nothing for the gateway's own environment."""
    if env is None:
        return {}
    if backend == "kubernetes":
        # the image's PATH starts with the environment's bin; distributed 2026 has no
        # dask-scheduler script, so name `dask` and its subcommands
        return {"image": env["image"], "scheduler_cmd": ["dask", "scheduler"],
                "worker_cmd": ["dask", "worker"]}
    dask = f"{env['prefix'].rstrip('/')}/bin/dask"
    return {"scheduler_cmd": [dask, "scheduler"], "worker_cmd": [dask, "worker"]}


async def environments_of(url: str, token: str, user: Any, *,
                          timeout: float = 10.0) -> list[dict[str, Any]]:
    """envyard's answer for gateway ``user`` (its name, hub groups, admin flag)."""
    import aiohttp

    params: list[tuple[str, str]] = [("user", str(user.name))]
    params += [("group", str(g)) for g in sorted(getattr(user, "groups", None) or ())]
    if getattr(user, "admin", False):
        params.append(("admin", "true"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
            s.get(f"{url.rstrip('/')}/api/v1/dask/environments", params=params,
                  headers={"Authorization": f"Bearer {token}"}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"envyard answered {resp.status}: {(await resp.text())[:300]}")
        body = await resp.json()
    rows: list[dict[str, Any]] = body["environments"]
    return rows


def build_options(rows: list[dict[str, Any]], backend: Backend, *,
                  offer_default: bool = True, unreachable: str | None = None) -> Options:
    """The ``Options`` of one user: ``rows`` offered or refused as envyard says (on a
    Kubernetes backend only those with an image are offered)."""
    offered: list[tuple[str, Any]] = []
    refused: dict[str, str] = {}
    for row in rows:
        problem = row.get("problem")
        if problem is None and backend == "kubernetes" and not row.get("image"):
            problem = (f"{row['environment']} has no image (envyard builds images for "
                       "namespaces or environments that turn them on)")
        if row.get("offered") and problem is None:
            offered.append((row["environment"], row))
        else:
            refused[row["environment"]] = problem or "refused by envyard"
    if offer_default or not offered:  # (a Select needs one option)
        offered.insert(0, (GATEWAY_DEFAULT, None))
    field = EnvironmentSelect(offered, refused, offered[0][0], unreachable)

    def handler(options: Any, user: Any) -> dict[str, Any]:
        env = options.environment
        if env is None and not offer_default:
            raise ValueError("name an environment: none of yours has distributed and "
                             "dask-gateway and passes envyard's Dask pin check")
        return overrides(env, backend)

    return Options(field, handler=handler)


def cluster_options(url: str, token: str, *, backend: Backend = "process",
                    offer_default: bool = True, timeout: float = 10.0
                    ) -> Callable[[Any], Awaitable[Options]]:
    """The callable for ``c.Backend.cluster_options``: each user's ``environment``
    option, asked of envyard at ``url`` with ``token`` (admin on ``*``) whenever the
    gateway asks (listing options, creating a cluster). ``offer_default`` also offers
    the gateway's own environment, as ``default``, the choice when none is named."""

    async def options_for(user: Any) -> Options:
        try:
            rows = await environments_of(url, token, user, timeout=timeout)
        except Exception as exc:  # the gateway still answers, with its own environment
            logger.warning("envyard at %s did not say what %s may run: %s", url,
                           getattr(user, "name", user), exc)
            return build_options([], backend, offer_default=offer_default, unreachable=(
                f"envyard did not answer ({type(exc).__name__}); try again shortly"))
        return build_options(rows, backend, offer_default=offer_default)

    return options_for


__all__ = ["GATEWAY_DEFAULT", "EnvironmentSelect", "build_options", "cluster_options",
           "environments_of", "overrides"]

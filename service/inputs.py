"""What the service accepts from users: submitted specs and pushed locks, checked at the
door (the routers, before anything is stored) and again where they are used (the build),
because a row in the database is only as trustworthy as the request that wrote it.
"""

from __future__ import annotations

from builder.errors import LockError, SpecError
from builder.install import check_installable
from builder.lock import Lockfile, parse_lock
from builder.spec import EnvSpec, parse_spec
from service.settings import Settings


def checked_spec(text: str, settings: Settings, *, source: str) -> EnvSpec:
    """A submitted environment.yml: the channel policy, the size limit, and no
    ``pip-repositories`` (pip installs only from the service's own index)."""
    spec = parse_spec(text, source=source, policy=settings.channel_policy(),
                      max_bytes=settings.max_spec_bytes)
    if spec.pip_repositories:
        raise SpecError("'pip-repositories' is not accepted by this service: pip packages "
                        "come only from its package index (setting pip_index)", source=source)
    return spec


def checked_lock(text: str | bytes, settings: Settings, *, source: str) -> Lockfile:
    """A pushed conda-lock.yml: it must give a verified environment for the service's
    platform from the service's own channels or package index (``check_installable``),
    and name only channels the allow-list admits."""
    lock = parse_lock(text, source=source, max_bytes=settings.max_lock_bytes)
    policy = settings.channel_policy()
    for channel in lock.metadata.channels:
        if not policy.check(channel.url):
            raise LockError(f"{source}: it names channel '{channel.url}', which is not "
                            "allowed here")
    check_installable(lock, settings.build_platform(), settings.package_sources())
    return lock

"""A client for the OCI distribution API: pull and push blobs and manifests, no daemon.

Blobs are checked with ``HEAD`` before upload, mounted from another repository of the same
registry when it has them, else uploaded in chunks (``POST``, ``PATCH`` with
``Content-Range``, ``PUT ?digest=``). Authentication answers the registry's challenge:
``Basic`` with the configured credentials, or ``Bearer`` with a token fetched from the
challenge's realm (credentials, if any, sent there). Plain HTTP only for loopback
registries unless explicitly allowed; TLS is verified against the system's CAs or a given
bundle. ``bytes_sent`` counts blob bytes uploaded.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx

from envyard.builder.errors import ImageError
from envyard.builder.oci import INDEX_TYPES, MANIFEST_TYPES, BlobStore, Descriptor, digest_of

CHUNK = 8 << 20
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Registry:
    """One registry (``https://host[:port]`` or loopback ``http://…``)."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 insecure: bool = False, ca_bundle: str | None = None,
                 timeout: float = 120.0) -> None:
        if "://" not in url:
            url = ("http://" if _loopback(url.split(":")[0]) else "https://") + url
        parsed = urlparse(url)
        if parsed.scheme == "http" and not (insecure or _loopback(parsed.hostname or "")):
            raise ImageError(f"{url}: plain HTTP is only used for loopback registries "
                             "(allow it with the service's image.registry_insecure or "
                             "the CLI's --insecure)")
        self.base = f"{parsed.scheme}://{parsed.netloc}"
        self.host = parsed.netloc
        # no password is an empty one, for Basic and token requests alike (httpx cannot send None)
        self.auth = (username, password or "") if username else None
        verify = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self.http = httpx.Client(timeout=timeout, follow_redirects=True, verify=verify)
        self._tokens: dict[str, str] = {}
        self.bytes_sent = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- auth -----------------------------------------------------------------------------
    def _headers(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        return {"Authorization": token} if token else {}

    def _answer(self, challenge: str, scope: str) -> None:
        kind, _, rest = challenge.partition(" ")
        params = dict(_CHALLENGE.findall(rest))
        if kind.lower() == "basic":
            if not self.auth:
                raise ImageError(f"{self.host} wants a user name and password")
            user, password = self.auth
            pair = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._tokens[scope] = f"Basic {pair}"
            return
        if kind.lower() != "bearer" or "realm" not in params:
            raise ImageError(f"{self.host}: unsupported authentication {challenge!r}")
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        resp = self.http.get(params["realm"], params=query, auth=self.auth)
        if resp.status_code != 200:
            raise ImageError(f"{self.host}: token service refused ({resp.status_code})")
        body = resp.json()
        self._tokens[scope] = f"Bearer {body.get('token') or body.get('access_token')}"

    def _request(self, method: str, url: str, scope: str, **kw: Any) -> httpx.Response:
        url = urljoin(self.base, url)
        headers = kw.pop("headers", {})
        for _ in range(2):
            try:
                resp = self.http.request(method, url, headers={**headers,
                                                               **self._headers(scope)}, **kw)
            except httpx.TransportError as exc:
                raise ImageError(f"cannot reach {self.host}: {exc}") from None
            if resp.status_code != 401 or "www-authenticate" not in resp.headers:
                return resp
            self._answer(resp.headers["www-authenticate"], scope)
        raise ImageError(f"{self.host} refused the credentials for {scope}")

    @staticmethod
    def _scope(repo: str, push: bool) -> str:
        return f"repository:{repo}:{'pull,push' if push else 'pull'}"

    def _check(self, resp: httpx.Response, what: str) -> httpx.Response:
        if resp.status_code >= 400:
            raise ImageError(f"{self.host}: {what} failed ({resp.status_code}: "
                             f"{resp.text[:300]})")
        return resp

    # --- blobs ----------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        resp = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", self._scope(repo, True))
        return resp.status_code == 200

    def pull_blob(self, repo: str, digest: str, store: BlobStore) -> None:
        if store.has(digest):
            return
        scope = self._scope(repo, False)
        url = urljoin(self.base, f"/v2/{repo}/blobs/{digest}")
        tmp = store.temp()
        try:
            h = hashlib.sha256()
            with self.http.stream("GET", url, headers=self._headers(scope)) as resp:
                if resp.status_code == 401:
                    self._answer(resp.headers.get("www-authenticate", ""), scope)
                    return self.pull_blob(repo, digest, store)
                self._check(resp, f"download of {digest[:19]}")
                with tmp.open("wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
            if "sha256:" + h.hexdigest() != digest:
                raise ImageError(f"{self.host}: blob {digest[:19]} does not match its digest")
            store.commit(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount within this registry; True when the registry did it."""
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/", self._scope(repo, True),
                             params={"mount": digest, "from": from_repo})
        if resp.status_code == 202 and "location" in resp.headers:  # declined: drop upload
            self._request("DELETE", resp.headers["location"], self._scope(repo, True))
        return resp.status_code == 201

    def push_blob(self, repo: str, desc: Descriptor, store: BlobStore) -> bool:
        """Upload ``desc`` unless the repository has it; True when bytes were sent."""
        scope = self._scope(repo, True)
        if self.has_blob(repo, desc.digest):
            return False
        resp = self._check(self._request("POST", f"/v2/{repo}/blobs/uploads/", scope),
                           "starting an upload")
        location = resp.headers["location"]
        offset = 0
        for chunk in _chunks(store.path(desc.digest)):
            resp = self._check(self._request(
                "PATCH", location, scope, content=chunk, headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}),
                f"uploading {desc.digest[:19]}")
            offset += len(chunk)
            self.bytes_sent += len(chunk)
            location = resp.headers["location"]
        sep = "&" if "?" in location else "?"
        self._check(self._request("PUT", f"{location}{sep}digest={desc.digest}", scope),
                    f"finishing {desc.digest[:19]}")
        return True

    # --- manifests ------------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """(bytes, media type) of a manifest or index; the bytes are checked by digest."""
        resp = self._check(self._request("GET", f"/v2/{repo}/manifests/{reference}",
                                         self._scope(repo, False), headers={"Accept": ACCEPT}),
                           f"reading {repo}:{reference}")
        data = resp.content
        if reference.startswith("sha256:") and digest_of(data) != reference:
            raise ImageError(f"{self.host}: manifest {reference[:19]} does not match")
        media = resp.headers.get("content-type", "").split(";")[0]
        return data, media

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        resp = self._request("HEAD", f"/v2/{repo}/manifests/{reference}",
                             self._scope(repo, False), headers={"Accept": ACCEPT})
        if resp.status_code == 404:
            return None
        self._check(resp, f"reading {repo}:{reference}")
        digest: str | None = resp.headers.get("docker-content-digest")
        return digest

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        resp = self._check(self._request("PUT", f"/v2/{repo}/manifests/{reference}",
                                         self._scope(repo, True), content=data,
                                         headers={"Content-Type": media_type}),
                           f"tagging {repo}:{reference}")
        return resp.headers.get("docker-content-digest") or digest_of(data)

    def delete_manifest(self, repo: str, digest: str) -> bool:
        """Delete by digest (every tag on it goes); False when it was not there."""
        resp = self._request("DELETE", f"/v2/{repo}/manifests/{digest}",
                             self._scope(repo, True))
        if resp.status_code == 404:
            return False
        self._check(resp, f"deleting {repo}@{digest[:19]}")
        return True

    def tags(self, repo: str) -> list[str]:
        resp = self._request("GET", f"/v2/{repo}/tags/list", self._scope(repo, False))
        if resp.status_code == 404:
            return []
        return self._check(resp, f"listing {repo}").json().get("tags") or []


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk

"""The Docker engine path: hand a built image to a Docker-compatible engine (``DOCKER_HOST``,
e.g. Docker or podman's API service) through the ``docker`` SDK, for sites that want the
engine to hold the image.

No Dockerfile and no build context: the engine receives a ``docker save``-style archive
generated from the blob store (config, the same gzip layers, ``manifest.json`` naming the
tags), loads it, and the image it reports is checked against the config digest.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from typing import Any

from envyard.builder.errors import ImageError
from envyard.builder.image import BuiltImage
from envyard.builder.oci import BlobStore
from envyard.builder.registry import Registry


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None,
         path: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    if path is not None:
        with open(path, "rb") as f:
            f.seek(0, 2)
            info.size = f.tell()
            f.seek(0)
            tar.addfile(info, f)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def write_archive(image: BuiltImage, store: BlobStore, tags: list[str], out: Any) -> None:
    """A docker-archive of ``image`` (layers stay gzip; engines detect that)."""
    layers = [*image.base_layers, *(layer.descriptor for layer in image.layers)]
    names = [f"{d.digest.split(':')[1]}.tar.gz" for d in layers]
    config_name = f"{image.config.digest.split(':')[1]}.json"
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, config_name, path=str(store.path(image.config.digest)))
        for desc, name in zip(layers, names, strict=True):
            _add(tar, name, path=str(store.path(desc.digest)))
        manifest = [{"Config": config_name, "RepoTags": tags, "Layers": names}]
        _add(tar, "manifest.json", json.dumps(manifest).encode())


def load_into_engine(image: BuiltImage, store: BlobStore, base_registry: Registry,
                     tags: list[str], docker_host: str, timeout: float = 600) -> str:
    """Load the image into the engine at ``docker_host`` under ``tags``; its image id."""
    try:
        import docker
        import docker.errors
    except ImportError:
        raise ImageError("the Docker engine path needs the docker SDK: "
                         "pip install 'envyard[docker]'") from None
    for desc in image.base_layers:  # the engine needs every layer's bytes
        base_registry.pull_blob(image.base.repository, desc.digest, store)
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot reach the engine at {docker_host}: {exc}") from None
    try:
        with tempfile.TemporaryFile(dir=store.root) as archive:
            write_archive(image, store, tags, archive)
            archive.seek(0)
            loaded = client.images.load(archive)
        if not loaded:
            raise ImageError(f"the engine at {docker_host} loaded nothing")
        got = loaded[0]
        for tag in tags:
            repo, _, name = tag.rpartition(":")
            got.tag(repo, name)
        if got.id != image.config.digest:
            raise ImageError(f"the engine reports image {got.id}, expected "
                             f"{image.config.digest}")
        return str(got.id)
    except docker.errors.DockerException as exc:
        raise ImageError(f"the engine at {docker_host} refused the image: {exc}") from None
    finally:
        client.close()

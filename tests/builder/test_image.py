"""OCI images against a real registry on 127.0.0.1: pushed, inspected by skopeo, run by
podman, loaded through the docker SDK; reproducible; a one-package change uploads only the
changed layers; authentication and bad references refused clearly."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from envyard.builder.errors import ImageError
from envyard.builder.image import ImageSpec, build_image, push_image
from envyard.builder.install import install_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.oci import BlobStore, ImageRef
from envyard.builder.registry import Registry
from envyard.builder.spec import parse_spec
from tests.images import Podman, RegistryServer, make_base_image

pytestmark = pytest.mark.timeout(900)

A = "dependencies: [python 3.11.*, dask=2025.12.0, distributed=2025.12.0]\n"
B = "dependencies: [python 3.11.*, dask=2025.12.0, distributed=2025.12.0, lz4]\n"
DEST = "/opt/envyard/envs/demo/nb"
CREATED = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _env(text: str, where: Path, channel: Path, cache_dir: Path, pkgs_dir: Path) -> Path:
    lock = lock_env(parse_spec(text), LockOptions(channels=[str(channel)],
                                                  platforms=["linux-64"], cache_dir=cache_dir))
    install_lock(lock, prefix=where, platform="linux-64", pkgs_dir=pkgs_dir)
    return where


@pytest.fixture(scope="module")
def envs(channel: Path, cache_dir: Path, pkgs_dir: Path,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imgenvs")
    return {"a": _env(A, root / "a", channel, cache_dir, pkgs_dir),
            "a2": _env(A, root / "elsewhere" / "a", channel, cache_dir, pkgs_dir),
            "b": _env(B, root / "b", channel, cache_dir, pkgs_dir)}


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer().start()
    yield server
    server.stop()


@pytest.fixture
def client(registry: RegistryServer) -> Iterator[Registry]:
    with Registry(registry.host) as c:
        yield c


@pytest.fixture(scope="module")
def base(registry: RegistryServer, envs: dict[str, Path]) -> str:
    with Registry(registry.host) as c:
        return make_base_image(c, "base", "1", envs["b"])


def spec(base: str, lock: str = "0" * 64) -> ImageSpec:
    return ImageSpec(base=base, dest=DEST, title="demo/nb", lock_sha256=lock, created=CREATED)


def test_push_inspect_and_run(registry: RegistryServer, client: Registry, base: str,
                              envs: dict[str, Path], tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    image = build_image(envs["a"], spec(base, "ab" * 32), store, client)
    push_image(image, store, client, "demo-nb", ["v1", "current"])
    ref = f"{registry.host}/demo-nb:v1"
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{ref}"], capture_output=True, text=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    annotations = json.loads(raw.stdout)["annotations"]
    assert annotations["dev.envyard.lock.sha256"] == "ab" * 32
    assert annotations["org.opencontainers.image.created"] == "2026-11-01T00:00:00Z"
    assert annotations["dev.envyard.version"]
    info = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                      f"docker://{ref}"], capture_output=True, text=True,
                                     timeout=60).stdout)
    assert info["Digest"] == image.manifest.digest
    assert f"CONDA_PREFIX={DEST}" in info["Env"]
    assert sorted(client.tags("demo-nb")) == ["current", "v1"]
    podman = Podman()
    try:
        done = podman.run("run", "--rm", "--tls-verify=false", ref, "python", "-c",
                          "import dask, sys; print(dask.__version__, sys.prefix)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["2025.12.0", DEST]
    finally:
        podman.stop()


def test_same_lock_same_digest(client: Registry, base: str, envs: dict[str, Path],
                               tmp_path: Path) -> None:
    first = build_image(envs["a"], spec(base), BlobStore(tmp_path / "s1"), client)
    again = build_image(envs["a"], spec(base), BlobStore(tmp_path / "s2"), client)
    # the same lock installed at another path: every path is rewritten to DEST
    moved = build_image(envs["a2"], spec(base), BlobStore(tmp_path / "s3"), client)
    assert first.manifest.digest == again.manifest.digest == moved.manifest.digest
    assert len(first.layers) <= 64


def test_one_package_change_uploads_only_changed_layers(client: Registry, base: str,
                                                         envs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    a = build_image(envs["a"], spec(base), store, client)
    first = push_image(a, store, client, "onechange", ["v1"])
    b = build_image(envs["b"], spec(base), store, client)
    second = push_image(b, store, client, "onechange", ["v2"])
    old = {d.digest for d in a.blobs}
    changed = [d for d in b.blobs if d.digest not in old]
    assert second == sum(d.size for d in changed)
    changed_layers = [layer for layer in b.layers if layer.descriptor.digest not in old]
    assert any("lz4" in layer.packages for layer in changed_layers)
    assert len(changed_layers) <= 2  # pyyaml's bucket and the layer of unowned files
    assert second < 0.15 * first


def test_basic_auth(base: str, envs: dict[str, Path], tmp_path: Path) -> None:
    private = RegistryServer(users={"ci": "s3cret"}).start()
    try:
        store = BlobStore(tmp_path / "store")
        with Registry(base.split("/")[0]) as public, Registry(private.host) as anonymous, \
                Registry(private.host, username="ci", password="nope") as wrong, \
                Registry(private.host, username="ci", password="s3cret") as good:
            image = build_image(envs["a"], spec(base), store, public)
            with pytest.raises(ImageError, match="user name and password"):
                push_image(image, store, anonymous, "x", ["v1"], public)
            with pytest.raises(ImageError, match="refused the credentials"):
                push_image(image, store, wrong, "x", ["v1"], public)
            assert push_image(image, store, good, "x", ["v1"], public) > 0
            assert good.manifest_digest("x", "v1") == image.manifest.digest
    finally:
        private.stop()


def test_token_auth(base: str, envs: dict[str, Path], tmp_path: Path) -> None:
    """Docker's token auth: the registry sends us to its token service with the scope."""
    private = RegistryServer(users={"ci": "s3cret"}, tokens=True).start()
    try:
        store = BlobStore(tmp_path / "store")
        with Registry(base.split("/")[0]) as public, \
                Registry(private.host, username="ci", password="nope") as wrong, \
                Registry(private.host, username="ci", password="s3cret") as good:
            image = build_image(envs["a"], spec(base), store, public)
            with pytest.raises(ImageError, match="token service refused"):
                push_image(image, store, wrong, "x", ["v1"], public)
            assert push_image(image, store, good, "x", ["v1"], public) > 0
            assert good.manifest_digest("x", "v1") == image.manifest.digest
            assert private.tokens is not None and private.tokens.issued >= 1
    finally:
        private.stop()


def test_tls_registry(base: str, envs: dict[str, Path], tmp_path: Path) -> None:
    """HTTPS, verified against a CA bundle; without it the certificate is refused."""
    secure = RegistryServer(tls=True).start()
    try:
        assert secure.ca is not None
        store = BlobStore(tmp_path / "store")
        url = f"https://{secure.host}"
        with Registry(base.split("/")[0]) as public, Registry(url) as unverified, \
                Registry(url, ca_bundle=str(secure.ca)) as verified:
            image = build_image(envs["a"], spec(base), store, public)
            with pytest.raises(ImageError, match="cannot reach"):
                push_image(image, store, unverified, "x", ["v1"], public)
            assert push_image(image, store, verified, "x", ["v1"], public) > 0
            assert verified.manifest_digest("x", "v1") == image.manifest.digest
    finally:
        secure.stop()


def test_gc_deletes_manifest(client: Registry, base: str, envs: dict[str, Path],
                             tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    image = build_image(envs["a"], spec(base), store, client)
    push_image(image, store, client, "gone", ["v1"])
    assert client.delete_manifest("gone", image.manifest.digest)
    assert client.manifest_digest("gone", "v1") is None
    assert "v1" not in client.tags("gone")
    assert not client.delete_manifest("gone", image.manifest.digest)


@pytest.mark.parametrize("ref, message", [
    ("UPPER/Case:tag", "not an image reference"),
    ("base:1 ; rm -rf /", "not an image reference"),
])
def test_bad_references(ref: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        ImageRef.parse(ref)


def test_missing_base_and_plain_http(registry: RegistryServer, client: Registry,
                                     envs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="404"):
        build_image(envs["a"], spec(f"{registry.host}/nothing:here"),
                    BlobStore(tmp_path / "s"), client)
    with pytest.raises(ImageError, match="only used for loopback"):
        Registry("http://registry.example.org")


def test_docker_sdk_path(client: Registry, base: str, envs: dict[str, Path],
                         tmp_path: Path) -> None:
    from envyard.builder.docker_engine import load_into_engine

    store = BlobStore(tmp_path / "store")
    image = build_image(envs["a"], spec(base), store, client)
    podman = Podman()
    try:
        host = podman.start_service()
        image_id = load_into_engine(image, store, client, ["localhost/demo-nb:v1"], host)
        assert image_id == image.config.digest
        done = podman.run("run", "--rm", "localhost/demo-nb:v1", "python", "-c",
                          "import dask; print(dask.__version__)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "2025.12.0"
    finally:
        podman.stop()

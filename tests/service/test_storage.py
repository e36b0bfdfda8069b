"""Every artifact operation against the volume, fake-gcs-server and moto's S3 server:
conditional checksummed puts (small and multi-part), conflicts, reads, signed URLs, GC's
deletes, and bad keys."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envyard.service.settings import Settings
from envyard.service.storage import ArtifactConflict, ArtifactStore, StorageError, open_store
from tests import objectstores

BIG = 40 << 20  # above every backend's one-request limit: parts / multipart / composite


@pytest.fixture(scope="module", params=["local", "gcs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ArtifactStore]:
    work = tmp_path_factory.mktemp(f"store-{request.param}")
    if request.param == "local":
        yield open_store(Settings(root=work / "volume"))
        return
    server = objectstores.start(request.param, work)
    try:
        yield open_store(Settings(root=work / "volume", storage=server.storage()))
    finally:
        server.stop()


def _file(tmp_path: Path, name: str, size: int, seed: bytes = b"a") -> Path:
    path = tmp_path / name
    block = hashlib.sha256(seed).digest() * (1 << 15)  # 1 MiB of seed-dependent bytes
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
    return path


def test_put_stat_read_delete(store: ArtifactStore, tmp_path: Path) -> None:
    src = _file(tmp_path, "lock.yml", 12_345)
    stored = store.put("builds/ns/env/1/conda-lock.yml", src)
    assert stored.size == 12_345
    there = store.stat("builds/ns/env/1/conda-lock.yml")
    assert there is not None and there.size == 12_345
    if not store.local:  # the sha256 travels with the object
        assert there.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert b"".join(store.iter_bytes("builds/ns/env/1/conda-lock.yml")) == src.read_bytes()
    assert "builds/ns/env/1/conda-lock.yml" in list(store.list_keys("builds/ns/"))
    assert store.delete("builds/ns/env/1/conda-lock.yml")
    assert store.stat("builds/ns/env/1/conda-lock.yml") is None
    assert not store.delete("builds/ns/env/1/conda-lock.yml")


def test_large_upload_round_trips_and_verifies(store: ArtifactStore, tmp_path: Path) -> None:
    src = _file(tmp_path, "pack.tar.zst", BIG + 7)
    store.put("packs/big.tar.zst", src)
    out = tmp_path / "out.tar.zst"
    store.download("packs/big.tar.zst", out)
    assert out.read_bytes() == src.read_bytes()
    assert not [k for k in store.list_keys() if ".uploads/" in k]  # no parts left behind
    store.delete("packs/big.tar.zst")


def test_same_bytes_again_is_a_no_op_and_different_bytes_conflict(
        store: ArtifactStore, tmp_path: Path) -> None:
    first = _file(tmp_path, "a", 5000, b"first")
    store.put("packs/c.tar.zst", first)
    store.put("packs/c.tar.zst", _file(tmp_path, "a2", 5000, b"first"))  # same bytes: fine
    with pytest.raises(ArtifactConflict, match="different bytes"):
        store.put("packs/c.tar.zst", _file(tmp_path, "b", 5000, b"second"))
    assert b"".join(store.iter_bytes("packs/c.tar.zst")) == first.read_bytes()  # untouched
    store.put("packs/c.tar.zst", _file(tmp_path, "b2", 4000, b"second"), overwrite=True)
    assert store.stat("packs/c.tar.zst").size == 4000  # type: ignore[union-attr]
    store.delete("packs/c.tar.zst")


def test_large_conflict_is_found_before_uploading(store: ArtifactStore,
                                                  tmp_path: Path) -> None:
    first = _file(tmp_path, "a", BIG, b"first")
    store.put("packs/l.tar.zst", first)
    with pytest.raises(ArtifactConflict):
        store.put("packs/l.tar.zst", _file(tmp_path, "b", BIG, b"second"))
    out = tmp_path / "out"
    store.download("packs/l.tar.zst", out)
    assert out.read_bytes() == first.read_bytes()
    store.delete("packs/l.tar.zst")


def test_racing_writers_one_wins_whole(store: ArtifactStore, tmp_path: Path) -> None:
    _race(store, tmp_path, 6000)


@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_racing_large_writers_one_wins_whole(store: ArtifactStore, tmp_path: Path) -> None:
    """Above every backend's one-request limit, on the volume only: the emulators do not
    serialise racing composes (fake-gcs-server) or multipart completions (moto), which
    GCS and S3 do; the next test covers large writes to them one at a time."""
    _race(store, tmp_path, BIG)


def _race(store: ArtifactStore, tmp_path: Path, size: int) -> None:
    files = [_file(tmp_path, f"w{i}", size, bytes([i])) for i in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(files))

    def write(path: Path) -> None:
        barrier.wait()
        try:
            store.put(f"packs/race-{size}.tar.zst", path)
            outcomes.append("won")
        except ArtifactConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["won"]
    got = b"".join(store.iter_bytes(f"packs/race-{size}.tar.zst"))
    assert got in [f.read_bytes() for f in files]  # exactly one writer's bytes, whole
    store.delete(f"packs/race-{size}.tar.zst")


def test_signed_url_reads_without_envyard(store: ArtifactStore, tmp_path: Path) -> None:
    src = _file(tmp_path, "p", 70_000)
    store.put("packs/s.tar.zst", src)
    url = store.signed_url("packs/s.tar.zst", "demo-nb-1.tar.zst", 60)
    if store.local:
        assert url is None  # the service sends the file itself
    else:
        assert url is not None and "Signature" in url
        assert httpx.get(url, timeout=10).content == src.read_bytes()  # no token needed
    store.delete("packs/s.tar.zst")


@pytest.mark.parametrize("store", ["gcs", "s3"], indirect=True)  # a file has no recorded sha256
def test_corrupted_download_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    src = _file(tmp_path, "p", 3000)
    store.put("packs/t.tar.zst", src)
    # another tool overwrote the bytes but left our recorded sha256 claim behind
    other = _file(tmp_path, "q", 3000, b"other")
    store._create("packs/t.tar.zst", other, hashlib.sha256(src.read_bytes()).hexdigest(),
                  overwrite=True)
    with pytest.raises(StorageError, match="does not match its sha256"):
        store.download("packs/t.tar.zst", tmp_path / "got")
    assert not (tmp_path / "got").exists()
    store.delete("packs/t.tar.zst")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "packs/../../x", ""])
def test_bad_keys_are_refused(store: ArtifactStore, tmp_path: Path, key: str) -> None:
    src = _file(tmp_path, "x", 10)
    with pytest.raises(StorageError, match="bad artifact key"):
        store.put(key, src)
    assert not os.path.exists(tmp_path.parent / "escape")


@pytest.mark.parametrize("backend", ["gcs", "s3"])
def test_a_missing_bucket_is_a_clear_error(backend: str, tmp_path: Path) -> None:
    server = objectstores.start(backend, tmp_path)
    try:
        store = open_store(Settings(root=tmp_path / "v", storage={
            **server.storage(), "bucket": "no-such-bucket"}))
        with pytest.raises(StorageError, match=r"cannot upload to .*no-such-bucket"):
            store.put("packs/x.tar.zst", _file(tmp_path, "x", 100))
    finally:
        server.stop()


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    from tests.servers import free_port

    store = open_store(Settings(root=tmp_path, storage={
        "backend": "s3", "bucket": "envyard-test", "endpoint": f"http://127.0.0.1:{free_port()}",
        "access_key_id": "x", "secret_access_key": "y", "region": "us-east-1"}))
    with pytest.raises(StorageError, match="cannot read s3://envyard-test/packs/x"):
        store.stat("packs/x.tar.zst")
    with pytest.raises(StorageError, match="cannot list"):
        list(store.list_keys("packs/"))


def test_object_storage_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"needs storage\.bucket"):
        Settings(root=tmp_path, storage={"backend": "s3"})

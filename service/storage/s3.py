"""Amazon S3 and compatible stores (``boto3``).

Creates are conditional with ``If-None-Match: *`` on the single PUT or on completing a
multipart upload, so the object appears whole, once. Each PUT and part carries its
SHA-256 (S3 verifies it); the whole file's sha256 goes into the object's metadata.
Downloads are presigned GET URLs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from envyard.service.storage.base import (
    CHUNK,
    BucketStore,
    StorageError,
    StoredObject,
    backend_errors,
)

SINGLE_MAX = 32 << 20
PART_MIN = 16 << 20
MAX_PARTS = 10_000
THREADS = 4
TAKEN = {"PreconditionFailed", "ConditionalRequestConflict"}


def _errors() -> tuple[type[BaseException], ...]:
    """What boto3 raises when S3 fails, refuses or cannot be reached."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class S3Store(BucketStore):
    scheme = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        super().__init__(bucket, prefix)
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=region,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=Config(signature_version="s3v4", max_pool_connections=THREADS * 2,
                          retries={"max_attempts": 3}))

    def _create(self, key: str, path: Path, sha256: str, overwrite: bool) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        size = path.stat().st_size
        cond = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            if size <= SINGLE_MAX:
                data = path.read_bytes()
                self.client.put_object(Bucket=self.bucket_name, Key=self._name(key), Body=data,
                                       ChecksumSHA256=_b64sha(data),
                                       Metadata={"sha256": sha256}, **cond)
            else:
                self._multipart(self._name(key), path, size, sha256, cond)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in TAKEN:
                return False
            raise StorageError(f"cannot upload to {self.uri(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot upload to {self.uri(key)}: {exc}") from exc
        return True

    def _multipart(self, name: str, path: Path, size: int, sha256: str,
                   cond: dict[str, str]) -> None:
        part = max(PART_MIN, math.ceil(size / MAX_PARTS))
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket_name, Key=name, ChecksumAlgorithm="SHA256",
            Metadata={"sha256": sha256})["UploadId"]

        def send(i: int) -> dict[str, Any]:
            with path.open("rb") as f:
                f.seek(i * part)
                data = f.read(part)
            digest = _b64sha(data)
            r = self.client.upload_part(Bucket=self.bucket_name, Key=name, UploadId=upload,
                                        PartNumber=i + 1, Body=data, ChecksumSHA256=digest)
            return {"PartNumber": i + 1, "ETag": r["ETag"], "ChecksumSHA256": digest}

        try:
            with ThreadPoolExecutor(THREADS) as pool:
                parts = list(pool.map(send, range(math.ceil(size / part))))
            self.client.complete_multipart_upload(
                Bucket=self.bucket_name, Key=name, UploadId=upload,
                MultipartUpload={"Parts": parts}, **cond)
        except BaseException:
            with contextlib.suppress(Exception):  # the original failure is what matters
                self.client.abort_multipart_upload(Bucket=self.bucket_name, Key=name,
                                                   UploadId=upload)
            raise

    def stat(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        with backend_errors(self.uri(key), "read", _errors()):
            try:
                head = self.client.head_object(Bucket=self.bucket_name, Key=self._name(key))
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return None
                raise
        return StoredObject(key, int(head["ContentLength"]), head["Metadata"].get("sha256"))

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with backend_errors(self.uri(key), "read", _errors()):
            body = self.client.get_object(Bucket=self.bucket_name, Key=self._name(key))["Body"]
            yield from body.iter_chunks(CHUNK)

    def delete(self, key: str) -> bool:
        if self.stat(key) is None:
            return False
        with backend_errors(self.uri(key), "delete", _errors()):
            self.client.delete_object(Bucket=self.bucket_name, Key=self._name(key))
        return True

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        with backend_errors(self._url(self.prefix + prefix), "list", _errors()):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=self.prefix + prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix):]

    def signed_url(self, key: str, filename: str, seconds: int) -> str | None:
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=seconds, Params={
                "Bucket": self.bucket_name, "Key": self._name(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"'})

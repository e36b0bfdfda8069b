"""A schemathesis run against the live service's OpenAPI schema finds no server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers import Service


def test_schemathesis_finds_no_5xx(service: Service, tmp_path: Path) -> None:
    """Every route with an admin token; revoking a token last, on its own: it revokes
    the fuzzer's own token (id 1), and every route after that would see only 401s."""
    import httpx

    token = service.token("*=admin")
    cli = str(Path(sys.executable).with_name("schemathesis"))
    revoke = "/api/v1/tokens/{token_id}"
    for which in ("--exclude-path", "--include-path"):
        done = subprocess.run(
            [cli, "run", f"{service.url}/openapi.json", "--checks", "not_a_server_error",
             "--header", f"Authorization: Bearer {token}", "--max-examples", "25",
             "--request-timeout", "30", "--no-color", "--workers", "1",
             "--seed", "1", which, revoke],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert "No issues found" in done.stdout or "passed" in done.stdout.lower()
        if which == "--exclude-path":
            assert "Authentication failed" not in done.stdout, done.stdout[-4000:]
            assert httpx.get(f"{service.url}/api/v1/whoami", timeout=10,
                             headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_every_json_answer_has_a_documented_shape(tmp_path: Path) -> None:
    """Each route that answers JSON declares its model, so ``/docs`` shows the fields a
    client gets (FastAPI checks each answer against it); only file, text and stream
    routes answer without one."""
    from envyard.service.app import create_app
    from envyard.service.settings import Settings

    schema = create_app(Settings(root=tmp_path / "volume")).openapi()
    untyped = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            for answer in ok.values():
                json_answer = answer.get("content", {}).get("application/json")
                if json_answer is not None and json_answer.get("schema") in ({}, None):
                    untyped.append(f"{method.upper()} {path}")
    assert untyped == [], untyped
    version = schema["components"]["schemas"]["VersionDetail"]["properties"]
    assert {"state", "packages", "timings", "artifacts", "current"} <= set(version)
    # times are written as before the models: ISO 8601 with the offset, not pydantic's "Z"
    import datetime as dt

    from envyard.service.api.schemas import VersionSummary

    shown = VersionSummary(namespace="n", name="e", number=1, kind="spec", state="ready",
                           created_at=dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
                           started_at=None, finished_at=None, spec_sha256=None, error=None,
                           message=None, submitted_by=None, held=False, prefix_bytes=None,
                           dask_verdict="unchecked")
    assert shown.model_dump(mode="json")["created_at"] == "2026-12-02T00:00:00+00:00"

"""A schemathesis run against the live service's OpenAPI schema finds no server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers import Service


def test_schemathesis_finds_no_5xx(service: Service, tmp_path: Path) -> None:
    token = service.token("*=admin")
    cli = str(Path(sys.executable).with_name("schemathesis"))
    done = subprocess.run(
        [cli, "run", f"{service.url}/openapi.json", "--checks", "not_a_server_error",
         "--header", f"Authorization: Bearer {token}", "--max-examples", "25",
         "--request-timeout", "30", "--no-color", "--workers", "1",
         "--seed", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout or "passed" in done.stdout.lower()

"""schemathesis against the live /openapi.json: no 5xx for any generated request, responses match the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from api_support import TOKEN, Server

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.slow
def test_generated_requests_get_no_5xx_and_match_the_schema(api_workspace: Path, server: Server,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("schemathesis")
    spec = server.get("/openapi.json").json()
    assert {"/api/games", "/api/games/{game_id}", "/health", "/ready", "/api/operations"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # bounded: a few examples per operation, coverage and fuzzing phases, deterministic, < 30 s
    run = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
                          "--max-examples", "6", "--phases", "coverage,fuzzing", "--checks", CHECKS,
                          "--header", f"Authorization: Bearer {TOKEN}", "--generation-deterministic", "--no-color",
                          "--report", "junit", "--report-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    assert "generated" in summary and "passed" in summary
    assert TOKEN not in server.output()

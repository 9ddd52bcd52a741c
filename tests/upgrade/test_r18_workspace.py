"""A workspace made by an earlier release (stop 18, commit 9118616) works after installing this one.

The fixture (made by make_r18_workspace.sh with that release) holds its archives, sidecars and logs, a
media migration journal, a migrate-plan record, a deploy release of a second environment, goldens in the
first golden format, a rendered preview and the database. Its records hold absolute paths, so it is
unpacked at the path it was made at; one test owns that path at a time (a lock file).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURE = Path(__file__).with_name("r18-workspace.tar.zst")
WORKSPACE = Path("/tmp/mobius-upgrade-r18")


@pytest.fixture
def old_workspace() -> Iterator[Path]:
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed (.ci/run installs it)")
    with open("/tmp/mobius-upgrade-r18.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(WORKSPACE, ignore_errors=True)
        subprocess.run(f"zstd -dc '{FIXTURE}' | tar -C /tmp -xf -", shell=True, check=True)
        try:
            yield WORKSPACE
        finally:
            shutil.rmtree(WORKSPACE, ignore_errors=True)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_new_release_reads_verifies_and_restores_an_r18_workspace(mobius, old_workspace: Path) -> None:
    ws = str(old_workspace)
    code, history = mobius.json("history", "-w", ws)
    assert code == 0
    types = {op["type"] for op in history["operations"]}
    assert {"backup.create", "golden.approve", "migrate.run", "env.deploy"} <= types
    assert all(op["steps"] for op in history["operations"] if op["type"] == "migrate.run")

    code, listed = mobius.json("backup", "list", "-w", ws)
    assert code == 0 and len(listed["backups"]) == 2
    for backup in listed["backups"]:
        code, verified = mobius.json("backup", "verify", backup["path"], "--deep", "-w", ws)
        assert code == 0, verified
    library = old_workspace / "media-v2"
    before = digest(library)
    code, restored = mobius.json("backup", "test-restore", "latest", "-w", ws)
    assert code == 0, restored

    code, migrations = mobius.json("media", "migrations", "-w", ws)
    assert code == 0 and [m["status"] for m in migrations["migrations"]] == ["completed"]
    manifest = Path(migrations["migrations"][0]["target_manifest"])
    code, verified = mobius.json("media", "verify", str(library), "--against", str(manifest), "-w", ws)
    assert code == 0, verified
    code, status = mobius.json("migrate", "status", "latest", "-w", ws)
    assert code == 0 and status["migration"]["status"] == "completed"

    preview = str(old_workspace / "out/sushi-go/preview.mp4")
    code, old_golden = mobius.json("golden", "check", "--game", "sushi-go", "--in", preview, "-w", ws)
    assert code == 0, old_golden
    assert "frames.content" in json.dumps(old_golden)  # named as a check the old format cannot run
    code, upgraded = mobius.json("golden", "upgrade", "sushi-go", "-w", ws)
    assert code == 0, upgraded
    code, checked = mobius.json("golden", "check", "--game", "sushi-go", "--in", preview, "-w", ws)
    assert code == 0, checked

    code, releases = mobius.json("releases", "--env", "production", "-w", ws)
    assert code == 0 and releases["releases"][0]["kind"] == "deploy"
    deploy = releases["releases"][0]["id"]  # recorded before deploys ran on the migration runner: no undo handle
    code, refused = mobius.json("migrate", "rollback", deploy, "--yes", "-w", ws)
    assert code == 1 and "earlier release" in refused["error"]
    assert "mobius rollback --env production" in refused["error"]
    code, rolled = mobius.json("rollback", "--env", "production", "--yes", "-w", ws)
    assert code == 0, rolled
    code, snapshot = mobius.json("backup", "create", "--snapshot", "-w", ws)
    assert code == 0, snapshot
    code, verified = mobius.json("backup", "verify", "latest", "--read-data", "-w", ws)
    assert code == 0, verified
    assert digest(library) == before

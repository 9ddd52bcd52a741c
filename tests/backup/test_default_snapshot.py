"""Snapshots are what `backup create` makes by default; archives (`--archive`, or made by an earlier release)
stay listed, verifiable and restorable, and readiness and preflight see both kinds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from backup_support import snapshot
from repository_support import age

from mobius.config import load_workspace


def test_create_makes_a_snapshot_by_default_and_an_archive_with_archive(sample_workspace: Path, mobius) -> None:
    ws = str(sample_workspace)
    library = sample_workspace / "uploads"
    age(library)
    before = snapshot(library)
    code, made = mobius.json("backup", "create", "-w", ws)
    assert code == 0 and made["kind"] == "snapshot" and made["verified"] and made["new_files"] == made["files"]
    code, archived = mobius.json("backup", "create", "--archive", "-w", ws)
    assert code == 0 and Path(archived["path"]).is_file() and archived["path"].endswith((".tar", ".tar.zst"))
    code, again = mobius.json("backup", "create", "--keep", "1", "-w", ws)
    assert code == 0 and again["parent"] == made["id"] and again["pruned"]["removed"] == [made["id"]]

    code, listed = mobius.json("backup", "list", "-w", ws)
    assert [s["id"] for s in listed["snapshots"]] == [again["id"]]
    assert [b["path"] for b in listed["backups"]] == [archived["path"]]  # snapshot retention leaves archives alone
    code, verified = mobius.json("backup", "verify", archived["path"], "--deep", "-w", ws)
    assert code == 0 and verified["files"] == archived["files"]
    (library / "sushi-go" / "stray.txt").write_text("after the backups")
    for name in (archived["path"], again["id"]):
        proc = mobius("backup", "restore", name, "--to", str(library), "--yes", "-w", ws)
        assert proc.returncode == 0, proc.stderr
        assert snapshot(library) == before

    proc = mobius("backup", "create", "--snapshot", "--archive", "-w", ws)
    assert proc.returncode != 0 and "exclude each other" in proc.stderr and "Traceback" not in proc.stderr
    proc = mobius("backup", "create", "--archive", "--force-read", "-w", ws)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_readiness_and_preflight_see_a_snapshot(sample_workspace: Path, mobius) -> None:
    from mobius.api.readiness import backup_age_check
    from mobius.ops.plan import Plan
    from mobius.ops.preflight import backup_check

    ws = load_workspace(sample_workspace)
    assert backup_age_check(ws).failed  # nothing yet
    code, made = mobius.json("backup", "create", "--no-database", "-w", str(sample_workspace))
    assert code == 0
    age_check = backup_age_check(ws)
    assert not age_check.failed and age_check.observed < 1 and made["id"] in age_check.detail
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=ws.settings.backup_max_age_hours + 1)
    assert backup_age_check(ws, now=later).failed

    plan = Plan.model_validate({"name": "t", "type": "database", "risk": "high", "steps": [{"db.migrate": {}}]})
    checks = {c.name: c for c in backup_check(ws, plan)}
    assert set(checks) == {"backup.recent", "backup.verified", "backup.test_restore"}
    assert not any(c.failed for c in checks.values()), [c.detail for c in checks.values()]
    assert checks["backup.recent"].source == made["id"] and checks["backup.test_restore"].observed > 0

    pack = next((sample_workspace / "backups" / "packs").rglob("*.tar.zst"))
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    checks = {c.name: c for c in backup_check(ws, plan)}
    assert checks["backup.verified"].failed and checks["backup.test_restore"].failed

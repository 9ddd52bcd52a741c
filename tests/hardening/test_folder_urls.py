"""Issue 26 item 4: a URL where a folder is expected is refused with one line, never made a relative path."""

from __future__ import annotations

from pathlib import Path


def _stray_folders(ws: Path) -> list[Path]:
    return [p for p in ws.rglob("*") if p.name.rstrip(":").lower() in ("s3", "gs", "file", "http", "https")]


def test_a_url_as_the_backups_folder_is_refused(mobius, ws: Path) -> None:
    (ws / ".env").write_text("MOBIUS_BACKUP_DIR=ftp://bucket/prefix\n")  # s3:// is a repository (backup.md)
    proc = mobius("backup", "create", "-w", str(ws))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MOBIUS_BACKUP_DIR" in lines[0] and "ftp://bucket/prefix" in lines[0]
    assert _stray_folders(ws) == []
    code, out = mobius.json("backup", "create", "-w", str(ws), env={"MOBIUS_BACKUP_DIR": "gs://b/p"})
    assert code == 1 and "MOBIUS_BACKUP_DIR" in out["error"]
    assert _stray_folders(ws) == []


def test_a_url_as_the_workspace_is_refused_and_the_library_may_be_one(mobius, ws: Path) -> None:
    proc = mobius("config", "show", env={"MOBIUS_WORKSPACE": "s3://bucket/ws"}, cwd=ws)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "s3://bucket/ws" in proc.stderr
    init = mobius("init", "s3://bucket/new", cwd=ws)
    assert init.returncode == 1 and "s3://bucket/new" in init.stderr
    assert _stray_folders(ws) == []
    code, shown = mobius.json("config", "show", "-w", str(ws), env={"MOBIUS_LIBRARY_DIR": "s3://bucket/lib"})
    assert code == 0 and {"name": "MOBIUS_LIBRARY_DIR", "value": "s3://bucket/lib",
                          "source": "environment"} in shown["settings"]

"""`mobius backup restore SNAPSHOT --to s3://bucket/prefix` as a command, on the suite's moto server: a round trip
restored exactly (keys and bytes) with every object outside the prefix untouched, a dry run that changes
nothing, a kill -9 between uploads finished by running it again, bad URLs and overlapping prefixes refused with
one line and exit 1, and the live library restored only when confirmed, its previous content kept and put back
by the undo."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

pytestmark = pytest.mark.slow


def _fs(endpoint: str):  # noqa: ANN202 - an s3fs filesystem
    import fsspec

    return fsspec.filesystem("s3", endpoint_url=endpoint, use_listings_cache=False, skip_instance_cache=True)


def _objects(fs, base: str) -> dict[str, str]:  # noqa: ANN001
    """Every object below `base` (bucket/prefix): key below it -> sha256 of its bytes."""
    try:
        keys = fs.find(base)
    except FileNotFoundError:
        return {}
    return {k[len(base) + 1:]: hashlib.sha256(fs.cat_file(k)).hexdigest() for k in keys if k.startswith(base + "/")}


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _snapshot(mobius, ws: Path, env: dict[str, str] | None = None) -> str:  # noqa: ANN001
    code, made = mobius.json("backup", "create", "--no-database", "-w", str(ws), env=env)
    assert code == 0, made
    return made["id"]


@pytest.fixture
def base() -> str:
    """bucket/prefix of this test's own (moto keeps one S3 for every test of a worker)."""
    return f"media/restore-{secrets.token_hex(6)}"


def test_round_trip_exact_and_nothing_outside_the_prefix_touched(sample_workspace: Path, s3_server: str,  # noqa: F811
                                                                 mobius, base: str) -> None:
    fs, env = _fs(s3_server), {"MOBIUS_S3_ENDPOINT_URL": s3_server}
    snapshot = _snapshot(mobius, sample_workspace)
    expected = _tree(sample_workspace / "uploads")
    target = f"{base}/lib"
    outside = {f"{base}/lib2/a.png": b"sibling", f"{base}/li": b"shorter", f"{base}/other/x": b"x",
               f"{base}/lib": b"an object named as the prefix"}
    for key, data in {**outside, f"{target}/stale.png": b"stale", f"{target}/love-letter/cards/1-guard.png": b"old"
                      }.items():
        fs.pipe_file(key, data)

    code, planned = mobius.json("backup", "restore", snapshot, "--to", f"s3://{target}/", "--dry-run",
                                "-w", str(sample_workspace), env=env)
    assert code == 0 and planned["dry_run"] and planned["delete"] == ["stale.png"], planned
    assert planned["overwrite"] == ["love-letter/cards/1-guard.png"] and len(planned["write"]) == len(expected)
    assert _objects(fs, target)["stale.png"] == hashlib.sha256(b"stale").hexdigest()  # the dry run changed nothing

    code, done = mobius.json("backup", "restore", snapshot, "--to", f"s3://{target}", "--yes",
                             "-w", str(sample_workspace), env=env)
    assert code == 0, done
    assert _objects(fs, target) == expected
    assert (done["files"], done["written"], done["deleted"], done["previous"]) == (len(expected), len(expected), 1,
                                                                                   None)
    assert {key: fs.cat_file(key) for key in outside} == outside
    code, again = mobius.json("backup", "restore", snapshot, "--to", f"s3://{target}", "--yes",
                              "-w", str(sample_workspace), env=env)
    assert code == 0 and (again["written"], again["unchanged"], again["deleted"]) == (0, len(expected), 0)


def test_killed_between_uploads_then_run_again_ends_exact(sample_workspace: Path, s3_server: str,  # noqa: F811
                                                          mobius, base: str) -> None:
    fs, env = _fs(s3_server), {"MOBIUS_S3_ENDPOINT_URL": s3_server}
    snapshot = _snapshot(mobius, sample_workspace)
    expected = _tree(sample_workspace / "uploads")
    target = f"{base}/lib"
    fs.pipe_file(f"{target}/extra.bin", b"extra")
    args = ("backup", "restore", snapshot, "--to", f"s3://{target}", "--yes", "-w", str(sample_workspace))
    proc = mobius(*args, env={**env, "MOBIUS_FAULT": "kill@object-restore:written"})
    assert proc.returncode == -9, proc.stderr
    left = _objects(fs, target)
    assert len(left) == 2 and "extra.bin" in left  # one object written, whole; the deletions not reached
    code, done = mobius.json(*args, env=env)
    assert code == 0, done
    assert _objects(fs, target) == expected and (done["written"], done["deleted"]) == (len(expected) - 1, 1)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://Bad_Bucket!/x", "s3://media/a/../b", "s3://media//b",
                                 "s3://media/a?versionId=1", "gs://media/x", "s3:/media/x", "s3://media",
                                 "s3://user:hunter2@media/x", "s3://media/a\nb"])
def test_bad_urls_are_one_line_exit_1(sample_workspace: Path, mobius, url: str) -> None:
    proc = mobius("backup", "restore", "latest", "--to", url, "--yes", "-w", str(sample_workspace))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr + proc.stdout
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) <= 2, proc.stderr  # the error + hint


def test_prefixes_overlapping_the_repository_or_nested_with_the_library_are_refused(
        sample_workspace: Path, s3_server: str, mobius, base: str) -> None:  # noqa: F811
    fs = _fs(s3_server)
    env = {"MOBIUS_S3_ENDPOINT_URL": s3_server, "MOBIUS_BACKUP_DIR": f"s3://{base}/repo",
           "MOBIUS_LIBRARY_DIR": f"s3://{base}/library"}
    fs.pipe_file(f"{base}/library/a.png", b"a")
    snapshot = _snapshot(mobius, sample_workspace, env)
    before = _objects(fs, base)
    for to in (f"s3://{base}/repo", f"s3://{base}/repo/sub", f"s3://{base}", f"s3://{base}/library/sub"):
        proc = mobius("backup", "restore", snapshot, "--to", to, "--yes", "-w", str(sample_workspace), env=env)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (to, proc.stderr)
        assert "refusing" in proc.stderr, proc.stderr
    assert _objects(fs, base) == before
    code, done = mobius.json("backup", "restore", snapshot, "--to", f"s3://{base}/apart", "--yes",
                             "-w", str(sample_workspace), env=env)  # from the repository in the bucket
    assert code == 0 and done["files"] == 1, done
    assert _objects(fs, f"{base}/apart") == {"a.png": hashlib.sha256(b"a").hexdigest()}


def test_live_library_needs_confirmation_keeps_its_content_and_is_undone(sample_workspace: Path,
                                                                         s3_server: str, mobius,  # noqa: F811
                                                                         base: str) -> None:
    fs = _fs(s3_server)
    library = f"{base}/library"
    env = {"MOBIUS_S3_ENDPOINT_URL": s3_server, "MOBIUS_LIBRARY_DIR": f"s3://{library}"}
    ws = str(sample_workspace)
    fs.pipe_file(f"{library}/a.png", b"first")
    fs.pipe_file(f"{library}/b.png", b"b")
    snapshot = _snapshot(mobius, sample_workspace, env)
    fs.pipe_file(f"{library}/a.png", b"second")
    fs.pipe_file(f"{library}/c.png", b"added later")
    later = _objects(fs, library)

    proc = mobius("backup", "restore", snapshot, "--to", f"s3://{library}", "-w", ws, env=env)
    assert proc.returncode == 1 and "--yes" in proc.stderr and _objects(fs, library) == later
    code, done = mobius.json("backup", "restore", snapshot, "--to", f"s3://{library}", "--yes", "-w", ws, env=env)
    assert code == 0 and done["previous"], done
    assert _objects(fs, library) == {"a.png": hashlib.sha256(b"first").hexdigest(),
                                     "b.png": hashlib.sha256(b"b").hexdigest()}
    code, history = mobius.json("history", "-w", ws, env=env)
    operation = next(op for op in history["operations"] if op["type"] == "backup.restore")
    proc = mobius("migrate", "rollback", operation["id"], "--yes", "-w", ws, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _objects(fs, library) == later


@pytest.mark.parametrize(("to", "verdict"), [
    ("s3://media/x/lib", "apart"), ("s3://media/x/libs", "apart"), ("s3://media/x/li", "apart"),
    ("s3://media/x/library", "library"), ("s3://media/x/library/", "library"),
    ("s3://media/x/library/sub", "refused"), ("s3://media/x", "refused"), ("s3://media/x/repo", "refused"),
    ("s3://media/x/repo/a/b", "refused"), ("s3://media/x/repository", "apart"), ("s3://other/x/library", "apart")])
def test_overlap_is_decided_by_whole_key_parts(sample_workspace: Path, monkeypatch: pytest.MonkeyPatch, to: str,
                                               verdict: str) -> None:
    from mobius.backup.object_target import check_object_target
    from mobius.config import load_workspace
    from mobius.errors import InputError

    monkeypatch.setenv("MOBIUS_LIBRARY_DIR", "s3://media/x/library")
    monkeypatch.setenv("MOBIUS_BACKUP_DIR", "s3://media/x/repo")
    ws = load_workspace(sample_workspace)
    if verdict == "refused":
        with pytest.raises(InputError, match="refusing"):
            check_object_target(ws, to)
    else:
        target = check_object_target(ws, to)
        assert target.is_library == (verdict == "library") and not target.url.endswith("/")


def test_live_library_restore_killed_mid_upload_is_undone_from_its_record(sample_workspace: Path,
                                                                          s3_server: str, mobius,  # noqa: F811
                                                                          base: str) -> None:
    fs = _fs(s3_server)
    library = f"{base}/library"
    env = {"MOBIUS_S3_ENDPOINT_URL": s3_server, "MOBIUS_LIBRARY_DIR": f"s3://{library}"}
    ws = str(sample_workspace)
    for i in range(4):
        fs.pipe_file(f"{library}/f{i}.bin", f"first {i}".encode())
    snapshot = _snapshot(mobius, sample_workspace, env)
    for i in range(4):
        fs.pipe_file(f"{library}/f{i}.bin", f"second {i}".encode())
    fs.pipe_file(f"{library}/added.bin", b"added later")
    later = _objects(fs, library)
    proc = mobius("backup", "restore", snapshot, "--to", f"s3://{library}", "--yes", "-w", ws,
                  env={**env, "MOBIUS_FAULT": "kill@object-restore:written"})
    assert proc.returncode == -9, proc.stderr
    assert _objects(fs, library) != later  # one object already rewritten
    code, history = mobius.json("history", "-w", ws, env=env)
    killed = next(op for op in history["operations"] if op["type"] == "backup.restore")
    proc = mobius("migrate", "rollback", killed["id"], "--yes", "-w", ws, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _objects(fs, library) == later

"""The snapshot repository itself on S3 (MOBIUS_BACKUP_DIR=s3://..., the suite's moto server): every command,
packs published before anything references them, kills while publishing, prune beside a running create."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backup_support import snapshot
from repository_support import age
from tests.media.conftest import s3_server  # noqa: F401 - the suite's moto S3 server fixture

# moto keeps one in-memory S3 per process (each test's server sees what an earlier test on the worker left):
# every test works under a prefix of its own (the `url` fixture)


def _fs(endpoint: str):  # noqa: ANN202 - an s3fs filesystem
    import fsspec

    return fsspec.filesystem("s3", endpoint_url=endpoint, use_listings_cache=False, skip_instance_cache=True)


@pytest.fixture
def url() -> str:
    """The repository's URL, a prefix no other test uses."""
    return f"s3://media/repo-{secrets.token_hex(6)}"


def _env(endpoint: str, url: str) -> dict[str, str]:
    return {"MOBIUS_BACKUP_DIR": url, "MOBIUS_S3_ENDPOINT_URL": endpoint}


class BucketStates:
    """Repository states (a workspace and its bucket prefix) built once per worker and restored for each test.

    Each state is built and restored at one workspace path and one bucket prefix (the worker's moto server
    keeps its buckets for the whole run), so what the workspace records (operation rows, the repository cache)
    names the same places in every copy. A restore empties the prefix first: nothing a test wrote survives.
    """

    def __init__(self, root: Path, template: Path):
        self.root, self.template = root, template
        self.home = root / "home"
        self.url = f"s3://media/states-{secrets.token_hex(6)}"
        self.built: dict[str, object] = {}

    def restore(self, name: str, endpoint: str, build) -> tuple[Path, str, object]:  # noqa: ANN001
        """(workspace, repository URL, what `build(workspace, env)` returned) with state `name` in place."""
        fs, prefix = _fs(endpoint), self.url.removeprefix("s3://")
        shutil.rmtree(self.home, ignore_errors=True)
        for key in fs.find(prefix):
            fs.rm_file(key)
        if name in self.built:
            shutil.copytree(self.root / f"saved-{name}", self.home, symlinks=True)
            saved = f"{prefix}-saved-{name}"
            for key in fs.find(saved):
                fs.copy(key, prefix + key.removeprefix(saved))
            return self.home / "ws", self.url, self.built[name]
        shutil.copytree(self.template, self.home / "ws", symlinks=True)
        value = build(self.home / "ws", _env(endpoint, self.url))
        shutil.copytree(self.home, self.root / f"saved-{name}", symlinks=True)
        for key in fs.find(prefix):
            fs.copy(key, f"{prefix}-saved-{name}" + key.removeprefix(prefix))
        self.built[name] = value
        return self.home / "ws", self.url, value


@pytest.fixture(scope="module")
def bucket_states(_sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> BucketStates:
    return BucketStates(tmp_path_factory.mktemp("s3-states"), _sample_template)


def _keys(fs, url: str, folder: str) -> list[str]:  # noqa: ANN001
    try:
        return sorted(fs.find(f"{url.removeprefix('s3://')}/{folder}"))
    except FileNotFoundError:
        return []


def test_every_command_on_an_s3_repository(sample_workspace: Path, s3_server: str, mobius,  # noqa: F811
                                           url: str) -> None:
    ws, env, fs = str(sample_workspace), _env(s3_server, url), _fs(s3_server)
    library = sample_workspace / "uploads"
    age(library)
    before = snapshot(library)
    code, first = mobius.json("backup", "create", "-w", ws, env=env)
    assert code == 0, first
    assert first["path"] == f"{url}/snapshots/{first['id']}.jsonl" and first["new_files"] == first["files"]
    assert len(_keys(fs, url, "snapshots")) == 1 and len(_keys(fs, url, "index")) == len(_keys(fs, url, "packs")) >= 1
    assert _keys(fs, url, "locks") == []
    assert not (sample_workspace / "backups" / "snapshots").exists()  # nothing of the repository in the folder
    (library / "sushi-go" / "new.txt").write_text("added")
    code, second = mobius.json("backup", "create", "-w", ws, env=env)
    assert code == 0 and second["parent"] == first["id"] and second["new_files"] <= 1 + len(second["extras"])
    assert second["read_files"] <= 1 + len(second["extras"])

    code, listed = mobius.json("backup", "list", "-w", ws, env=env)
    assert [s["id"] for s in listed["snapshots"]] == [second["id"], first["id"]]
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and checked["packs_read"] >= 1 and len(checked["snapshots"]) == 2
    assert checked["repository"] == url
    code, tested = mobius.json("backup", "test-restore", "latest", "-w", ws, env=env)
    assert code == 0 and tested["ok"], tested
    proc = mobius("backup", "restore", first["id"], "--to", str(library), "--yes", "-w", ws, env=env)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(library) == before
    out = sample_workspace / "one.tar.zst"
    code, exported = mobius.json("backup", "export", first["id"], "--out", str(out), "-w", ws, env=env)
    assert code == 0 and subprocess.run(["sha256sum", "-c", "one.tar.zst.sha256"], cwd=out.parent).returncode == 0

    code, pruned = mobius.json("backup", "prune", "--keep-last", "1", "-w", ws, env=env)
    assert code == 0 and pruned["removed"] == [first["id"]], pruned
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and checked["snapshots"] == [second["id"]]
    assert not list((sample_workspace / "state").rglob("*.tar.zst")), "the cache keeps no pack"
    assert _keys(fs, url, "locks") == []

    pack = _keys(fs, url, "packs")[0]
    data = bytearray(fs.cat_file(pack))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(pack, bytes(data))
    proc = mobius("backup", "verify", "--read-data", "-w", ws, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("point", [pytest.param("copy:pack-put", marks=pytest.mark.slow), "copy:pack-checked",
                                   "copy:index-put", pytest.param("copy:snapshot-put", marks=pytest.mark.slow)])
def test_a_create_killed_while_publishing_leaves_the_bucket_valid(bucket_states: BucketStates, s3_server: str,  # noqa: F811
                                                                 mobius, point: str) -> None:
    def first_create(workspace: Path, env: dict[str, str]) -> None:
        code, first = mobius.json("backup", "create", "--no-database", "-w", str(workspace), env=env)
        assert code == 0, first

    sample_workspace, url, _ = bucket_states.restore("one-snapshot", s3_server, first_create)
    ws, env, fs = str(sample_workspace), _env(s3_server, url), _fs(s3_server)
    (sample_workspace / "uploads" / "more.bin").write_bytes(os.urandom(5000))
    proc = mobius("backup", "create", "--no-database", "-w", ws, env={**env, "MOBIUS_FAULT": f"kill@{point}"})
    assert proc.returncode == -9
    index = {Path(k).name.removesuffix(".json") for k in _keys(fs, url, "index")}
    packs = {Path(k).name.removesuffix(".tar.zst") for k in _keys(fs, url, "packs")}
    assert index <= packs, "an index object never names a pack the bucket lacks"
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0, checked.get("problems", checked)[:5] if isinstance(checked, dict) else checked
    code, again = mobius.json("backup", "create", "--no-database", "-w", ws, env=env)
    assert code == 0, again
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and again["id"] in checked["snapshots"]
    code, pruned = mobius.json("backup", "prune", "--keep-last", "1", "-w", ws, env=env)
    assert code == 0
    index = {Path(k).name.removesuffix(".json") for k in _keys(fs, url, "index")}
    packs = {Path(k).name.removesuffix(".tar.zst") for k in _keys(fs, url, "packs")}
    assert index == packs, "prune removed the unindexed pack of the killed run"
    code, tested = mobius.json("backup", "test-restore", again["id"], "-w", ws, env=env)
    assert code == 0 and tested["ok"], tested


def test_prune_waits_for_a_running_create_and_two_creates_run_at_once(
        sample_workspace: Path, s3_server: str, mobius, url: str) -> None:  # noqa: F811
    ws, env = str(sample_workspace), _env(s3_server, url)
    code, first = mobius.json("backup", "create", "--no-database", "-w", ws, env=env)
    assert code == 0
    (sample_workspace / "uploads" / "late.bin").write_bytes(os.urandom(7000))
    base = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    slow = {**base, **env, "MOBIUS_FAULT": "slow@backup:before-snapshot=4"}
    cmd = [sys.executable, "-m", "mobius", "--json", "-w", ws]
    creates = [subprocess.Popen([*cmd, "backup", "create", "--no-database"], env=slow, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    # the creates hold their shared locks (reusing the first snapshot's packs) while prune asks for an exclusive one
    prune = subprocess.Popen([*cmd, "backup", "prune", "--keep-last", "1"], env={**base, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in [*creates, prune]:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    code, listed = mobius.json("backup", "list", "-w", ws, env=env)
    kept = [s["id"] for s in listed["snapshots"]]
    assert kept, "prune ran before, between or after the creates (each waits for the others), never beside one"
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0, checked.get("problems", checked)[:5] if isinstance(checked, dict) else checked
    for snapshot_id in kept:
        code, tested = mobius.json("backup", "test-restore", snapshot_id, "-w", ws, env=env)
        assert code == 0 and tested["ok"], tested


def test_only_s3_urls_are_taken_as_the_backups_folder(sample_workspace: Path, mobius) -> None:
    for value in ("gs://b/p", "s3://", "s3://b/p?x=1"):
        proc = mobius("backup", "create", "-w", str(sample_workspace), env={"MOBIUS_BACKUP_DIR": value})
        assert proc.returncode == 1 and "MOBIUS_BACKUP_DIR" in proc.stderr and "Traceback" not in proc.stderr


def test_lock_objects_keep_prune_away_and_a_dead_process_lock_expires(tmp_path: Path, s3_server: str,  # noqa: F811
                                                                       url: str) -> None:
    from mobius.backup.remote import RemoteRepository
    from mobius.backup.store import ObjectStore
    from mobius.errors import InputError

    remote = RemoteRepository(ObjectStore(url, {"endpoint_url": s3_server, "use_listings_cache": False,
                                                "skip_instance_cache": True}), tmp_path / "cache")
    with remote.lock(exclusive=False, what="create"), remote.lock(exclusive=False, what="a second create"), \
            pytest.raises(InputError, match="locked by"), remote.lock(exclusive=True, what="prune", timeout=0.5):
        pass
    with remote.lock(exclusive=True, what="prune"), pytest.raises(InputError, match="an exclusive lock"), \
            remote.lock(exclusive=False, what="create", timeout=0.5):
        pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    remote.store.put_bytes("locks/20260101T000000Z-dead00-exclusive.json", json.dumps(
        {"host": socket.gethostname(), "pid": int(dead.stdout), "created_s": time.time(), "exclusive": True}).encode())
    with remote.lock(exclusive=True, what="prune", timeout=0.5):
        pass  # the dead process's lock was removed
    assert remote.store.names("locks") == set()


@pytest.mark.skipif(shutil.which("age-keygen") is None, reason="Debian's age package is not installed")
def test_an_encrypted_s3_repository_and_a_prune_killed_between_index_and_pack(
        sample_workspace: Path, s3_server: str, mobius, url: str) -> None:  # noqa: F811
    pytest.importorskip("pyrage")
    key = sample_workspace.parent / "backup-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    text = key.read_text()
    public = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# public key: "))
    secret = next(line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    ws, fs = str(sample_workspace), _fs(s3_server)
    env = {**_env(s3_server, url), "MOBIUS_BACKUP_RECIPIENTS": public, "MOBIUS_BACKUP_IDENTITY_FILE": str(key)}
    library = sample_workspace / "uploads"
    code, first = mobius.json("backup", "create", "--no-database", "-w", ws, env=env)
    assert code == 0, first
    for object_key in _keys(fs, url, "snapshots") + _keys(fs, url, "index") + _keys(fs, url, "packs"):
        assert fs.cat_file(object_key).startswith(b"age-encryption.org/v1"), object_key
    for _ in range(2):  # the middle snapshot's pack holds only library files, all rewritten since
        for path in library.rglob("*"):
            if path.is_file():
                path.write_bytes(os.urandom(100))
        code, second = mobius.json("backup", "create", "--no-database", "-w", ws, env=env)
        assert code == 0
    proc = mobius("backup", "prune", "--keep-last", "1", "-w", ws,
                  env={**env, "MOBIUS_FAULT": "kill@prune:index-removed"})
    assert proc.returncode == -9
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and checked["snapshots"] == [second["id"]], checked
    code, pruned = mobius.json("backup", "prune", "--keep-last", "1", "-w", ws, env=env)
    assert code == 0 and pruned["packs_removed"] + pruned["leftovers_removed"] >= 1, pruned
    index = {Path(k).name.removesuffix(".json") for k in _keys(fs, url, "index")}
    assert index == {Path(k).name.removesuffix(".tar.zst") for k in _keys(fs, url, "packs")}
    code, tested = mobius.json("backup", "test-restore", second["id"], "-w", ws, env=env)
    assert code == 0 and tested["ok"], tested
    listed = mobius("backup", "list", "-w", ws, env=env)
    assert listed.returncode == 0 and secret not in listed.stdout + listed.stderr


def _build_partly_used_pack(sample_workspace: Path, mobius, env: dict[str, str]) -> tuple[dict, dict]:  # noqa: ANN001
    """Two snapshots; the first one's pack is two thirds unneeded once the first is forgotten."""
    library = sample_workspace / "uploads" / "cards"
    library.mkdir(parents=True, exist_ok=True)
    for n in range(30):
        (library / f"card-{n:02d}.webp").write_bytes(os.urandom(20_000))
    age(sample_workspace / "uploads")
    code, first = mobius.json("backup", "create", "--no-database", "-w", str(sample_workspace), env=env)
    assert code == 0, first
    for n in range(20):
        (library / f"card-{n:02d}.webp").unlink()
    code, second = mobius.json("backup", "create", "--no-database", "-w", str(sample_workspace), env=env)
    assert code == 0, second
    return first, second


def _partly_used_pack(bucket_states: BucketStates, endpoint: str, mobius) -> tuple[Path, str, dict, dict]:  # noqa: ANN001
    """(workspace, URL, first, second) of `_build_partly_used_pack`, built once per worker."""
    ws, url, (first, second) = bucket_states.restore(
        "partly-used-pack", endpoint, lambda workspace, env: _build_partly_used_pack(workspace, mobius, env))
    return ws, url, first, second


def test_prune_repacks_a_partly_used_pack_in_the_bucket(bucket_states: BucketStates, s3_server: str,  # noqa: F811
                                                        mobius) -> None:
    sample_workspace, url, first, second = _partly_used_pack(bucket_states, s3_server, mobius)
    ws, env, fs = str(sample_workspace), _env(s3_server, url), _fs(s3_server)
    expected = snapshot(sample_workspace / "uploads")
    before = sum(fs.size(k) for k in _keys(fs, url, "packs"))
    code, pruned = mobius.json("backup", "prune", "--keep-last", "1", "-w", ws, env=env)
    assert code == 0 and pruned["removed"] == [first["id"]] and pruned["packs_repacked"] >= 1, pruned
    assert pruned["packs_written"] >= 1 and pruned["bytes_freed"] > 0
    assert sum(fs.size(k) for k in _keys(fs, url, "packs")) < before * 0.6  # the unneeded two thirds are gone
    index = {Path(k).name.removesuffix(".json") for k in _keys(fs, url, "index")}
    assert index == {Path(k).name.removesuffix(".tar.zst") for k in _keys(fs, url, "packs")}
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and checked["snapshots"] == [second["id"]], checked
    proc = mobius("backup", "restore", second["id"], "--to", str(sample_workspace / "uploads"), "--yes", "-w", ws,
                  env=env)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(sample_workspace / "uploads") == expected
    assert not list((sample_workspace / "state").rglob("*.tar.zst")), "the cache keeps no pack"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["copy:pack-put", "prune:repack-written", "copy:pack-checked", "prune:repacked",
                                   "prune:index-removed", "prune:pack-removed"])
def test_a_repacking_prune_killed_leaves_every_kept_snapshot_restorable(bucket_states: BucketStates,
                                                                        s3_server: str,  # noqa: F811
                                                                        mobius, point: str) -> None:
    sample_workspace, url, _, second = _partly_used_pack(bucket_states, s3_server, mobius)
    ws, env, fs = str(sample_workspace), _env(s3_server, url), _fs(s3_server)
    proc = mobius("backup", "prune", "--keep-last", "1", "-w", ws, env={**env, "MOBIUS_FAULT": f"kill@{point}"})
    assert proc.returncode == -9, proc.stderr
    index = {Path(k).name.removesuffix(".json") for k in _keys(fs, url, "index")}
    packs = {Path(k).name.removesuffix(".tar.zst") for k in _keys(fs, url, "packs")}
    assert index <= packs, "an index object never names a pack the bucket lacks"
    code, tested = mobius.json("backup", "test-restore", second["id"], "-w", ws, env=env)
    assert code == 0 and tested["ok"], tested
    code, pruned = mobius.json("backup", "prune", "--keep-last", "1", "-w", ws, env=env)
    assert code == 0, pruned
    index = {Path(k).name.removesuffix(".json") for k in _keys(fs, url, "index")}
    assert index == {Path(k).name.removesuffix(".tar.zst") for k in _keys(fs, url, "packs")}
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and checked["snapshots"] == [second["id"]], checked
    code, tested = mobius.json("backup", "test-restore", second["id"], "-w", ws, env=env)
    assert code == 0 and tested["ok"], tested


def test_a_create_on_s3_undone_from_its_record_forgets_only_its_snapshot(sample_workspace: Path,
                                                                         s3_server: str,  # noqa: F811
                                                                         mobius, url: str) -> None:
    """Can fail: `backup create` was not a plan, so `migrate rollback` refused its record; the bucket's snapshot
    object must go (and the cache's copy), the other snapshot and every pack stay."""
    ws, env, fs = str(sample_workspace), _env(s3_server, url), _fs(s3_server)
    code, first = mobius.json("backup", "create", "--no-database", "-w", ws, env=env)
    assert code == 0, first
    (sample_workspace / "uploads" / "more.bin").write_bytes(os.urandom(5000))
    code, second = mobius.json("backup", "create", "--no-database", "-w", ws, env=env)
    assert code == 0, second
    packs = _keys(fs, url, "packs")
    code, listed = mobius.json("history", "--limit", "10", "-w", ws, env=env)
    op = next(o for o in listed["operations"] if not o["parent"])
    assert (op["type"], op["ref"]) == ("backup.snapshot", second["id"]), op
    proc = mobius("migrate", "rollback", op["id"], "--yes", "-w", ws, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [Path(k).name.split(".")[0] for k in _keys(fs, url, "snapshots")] == [first["id"]]
    assert _keys(fs, url, "packs") == packs  # content stays until a prune
    code, checked = mobius.json("backup", "verify", "--read-data", "-w", ws, env=env)
    assert code == 0 and checked["snapshots"] == [first["id"]], checked

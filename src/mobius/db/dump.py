"""Database dumps that are checked readable before anyone relies on them, and restores that are all or nothing.

SQLite: the online backup API (`sqlite3.Connection.backup`) gives a consistent copy while others
read and write; the copy must pass `PRAGMA quick_check`. PostgreSQL: `pg_dump -Fc`, checked with
`pg_restore --list`. Each dump is written under a temp name and renamed, with a `.sha256` sidecar.

Restore replaces the whole database in one transaction: SQLite through the backup API in one step,
PostgreSQL by dropping and recreating the `public` schema and replaying the dump in a single psql
transaction (a failure leaves the database as it was).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mobius.config import Workspace
from mobius.db.engine import DatabaseTarget, find_pg_tool, pg_tool_env
from mobius.errors import InputError, VerificationError
from mobius.log import get_logger
from mobius.safety.atomic import fsync_dir, temp_name_for
from mobius.safety.checksums import read_checksum_file, write_checksum_file
from mobius.safety.diskspace import require_free_space
from mobius.safety.hashing import sha256_file
from mobius.safety.places import refuse_backups_in_library
from mobius.safety.stamps import utc_compact

SQLITE_SUFFIX = ".sqlite3"
PG_SUFFIX = ".pgdump"


@dataclass(frozen=True)
class Dump:
    """A dump file checked readable: its engine, size, sha256 and the tables it holds."""

    path: Path
    engine: str
    bytes: int
    sha256: str
    tables: int

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "engine": self.engine, "bytes": self.bytes, "sha256": self.sha256,
                "tables": self.tables}


def dump_path_for(ws: Workspace, target: DatabaseTarget, *, label: str = "") -> Path:
    """backups/mobius_db_<name>_<UTC stamp>[_label]_<random>.<sqlite3|pgdump>; never inside the library (a library
    restore or promote would move the dump away with it)."""
    refuse_backups_in_library(ws.library, ws.backups)
    stamp = utc_compact()
    suffix = SQLITE_SUFFIX if target.is_sqlite else PG_SUFFIX
    tag = f"_{label}" if label else ""
    return ws.backups / f"mobius_db_{target.name}_{stamp}{tag}_{secrets.token_hex(3)}{suffix}"


def labelled_dumps(folder: Path, label: str) -> list[Path]:
    """The dumps in `folder` that `dump_path_for` named with `label` (a dump whose sidecar alone is left included),
    sorted; matched by the whole name (stamp, label, random part, suffix), so no other dump is taken for one."""
    named = re.compile(rf"mobius_db_.+_\d{{8}}T\d{{6}}Z_{re.escape(label)}_[0-9a-f]{{6}}"
                       rf"({re.escape(SQLITE_SUFFIX)}|{re.escape(PG_SUFFIX)})")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted({folder / name.removesuffix(".sha256") for name in names
                   if named.fullmatch(name.removesuffix(".sha256"))})


def dump(target: DatabaseTarget, out: Path) -> Dump:
    """Write a checked dump of `target` to `out` (atomically), with a `.sha256` sidecar."""
    out = out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    require_free_space(out.parent, _expected_size(target), what=f"a dump of {target.display}")
    tmp = temp_name_for(out)
    log = get_logger()
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"):
            pass  # created owner-only before any row is written: a dump holds every secret the database has
        if target.is_sqlite:
            _sqlite_dump(target, tmp)
        else:
            _pg_dump(target, tmp)
        os.chmod(tmp, 0o600)
        tables = check_dump(tmp, target.dialect)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    digest = sha256_file(out)
    try:
        write_checksum_file(sidecar(out), [(digest, out.name)])
    except BaseException:
        out.unlink(missing_ok=True)  # a dump without its sidecar is half an output (its sidecar's disk is full)
        raise
    result = Dump(out, target.dialect, out.stat().st_size, digest, tables)
    log.info("db.dump.done", path=str(out), bytes=result.bytes, tables=tables)
    return result


def _expected_size(target: DatabaseTarget) -> int:
    """Room a dump needs, checked before it starts: the SQLite file (and its WAL); PostgreSQL's custom
    format is compressed and its size unknown until written, so only a floor is asked."""
    floor = 1 << 20
    if not target.is_sqlite:
        return floor
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += Path(str(target.sqlite_path) + suffix).stat().st_size
    return max(total, floor // 16)


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def discard(path: Path) -> None:
    """Remove a dump that served its one use (env promote's copy of the source) and its sidecar: sidecar first,
    so a kill in between leaves a dump that is still checked when read, never a sidecar naming nothing."""
    sidecar(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


def dump_engine(path: Path) -> str:
    """Which engine wrote this dump, from its first bytes (not its name)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"SQLite format 3"):
        return "sqlite"
    if head.startswith(b"PGDMP"):
        return "postgresql"
    raise InputError(f"{path} is neither a SQLite database nor a pg_dump custom-format file",
                     hint="pass a dump written by `mobius db dump`")


def check_dump(path: Path, engine: str) -> int:
    """Raise VerificationError unless the dump reads back; returns how many tables it holds."""
    if engine == "sqlite":
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                status = conn.execute("PRAGMA quick_check").fetchone()[0]
                tables = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise VerificationError(f"dump {path} is not readable: {exc}", hint="take the dump again") from None
        if status != "ok":
            raise VerificationError(f"dump {path} fails PRAGMA quick_check: {status}", hint="take the dump again")
        return int(tables)
    proc = subprocess.run([find_pg_tool("pg_restore"), "--list", str(path)], capture_output=True, text=True,
                          env=pg_tool_env())
    if proc.returncode != 0:
        raise VerificationError(f"dump {path} is not readable by pg_restore --list: {_first(proc.stderr)}",
                                hint="take the dump again")
    return sum(1 for line in proc.stdout.splitlines() if " TABLE " in line and not line.startswith(";"))


def verify_sidecar(path: Path) -> bool:
    """If the dump has a `.sha256` sidecar, the file must match it; True when it has one naming it and matches."""
    side = sidecar(path)
    if not side.is_file():
        return False
    expected = {name: digest for digest, name in read_checksum_file(side)}.get(path.name)
    if expected and sha256_file(path) != expected:
        raise VerificationError(f"dump {path} does not match its checksum file {side}",
                                hint="the dump is damaged; use another one")
    return bool(expected)


def _sqlite_dump(target: DatabaseTarget, tmp: Path) -> None:
    source = sqlite3.connect(str(target.sqlite_path), timeout=30)
    try:
        dest = sqlite3.connect(str(tmp))
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()


def _pg_dump(target: DatabaseTarget, tmp: Path) -> None:
    proc = subprocess.run([find_pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={tmp}",
                           f"--dbname={target.libpq_url}"], capture_output=True, text=True,
                          env=target.libpq_env())
    if proc.returncode != 0:
        raise VerificationError(f"pg_dump of {target.display} failed: {_first(proc.stderr)}",
                                hint="check that the database is reachable and pg_dump matches the server version")


def restore(target: DatabaseTarget, dump_file: Path) -> None:
    """Replace the whole database with the dump, in one transaction; the dump is checked first (its sidecar, and
    it reads back: a PostgreSQL dump whose sidecar matches was listed when it was written)."""
    dump_file = dump_file.expanduser().resolve()
    if not dump_file.is_file():
        raise InputError(f"dump {dump_file} does not exist", hint="pass a file written by `mobius db dump`")
    engine = dump_engine(dump_file)
    if engine != target.dialect:
        raise InputError(f"{dump_file} is a {engine} dump and the database is {target.dialect}",
                         hint="restore it into a database of the same engine")
    if not verify_sidecar(dump_file) or target.is_sqlite:
        # a matching sidecar is written by `dump` only after these bytes passed check_dump: pg_restore --list again
        # would read the same table of contents (and a failure midway through the restore changes nothing)
        check_dump(dump_file, engine)
    if target.is_sqlite:
        _sqlite_restore(target, dump_file)
    else:
        _pg_restore(target, dump_file)
    get_logger().info("db.restore.done", dump=str(dump_file), database=target.display)


def _sqlite_restore(target: DatabaseTarget, dump_file: Path) -> None:
    source = sqlite3.connect(f"{dump_file.as_uri()}?mode=ro", uri=True)
    try:
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        dest = sqlite3.connect(str(target.sqlite_path), timeout=30)
        try:
            source.backup(dest)  # one step: the destination is locked and replaced as a whole
            status = dest.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dest.close()
    finally:
        source.close()
    if status != "ok":
        raise VerificationError(f"restored database {target.sqlite_path} fails PRAGMA quick_check: {status}")


def _pg_restore(target: DatabaseTarget, dump_file: Path) -> None:
    env = target.libpq_env(PGOPTIONS=f"-c lock_timeout={int(target.lock_timeout_ms)}")
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        script = subprocess.Popen([find_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--file=-",
                                   str(dump_file)], stdout=subprocess.PIPE, stderr=restore_err, env=env)
        psql = subprocess.Popen([find_pg_tool("psql"), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                                 "--single-transaction", f"--dbname={target.libpq_url}", "--file=-"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env)
        assert script.stdout is not None and psql.stdin is not None
        complete = False
        try:
            psql.stdin.write(b"DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
            shutil.copyfileobj(script.stdout, psql.stdin)
            complete = script.wait() == 0
        except BrokenPipeError:
            pass
        finally:
            # psql commits its single transaction at the end of its input, whatever it was sent: unless pg_restore
            # wrote the whole dump, psql is killed with its input still open, so the server rolls back. (A dump
            # cut off after its table of contents passes `pg_restore --list`, and fails only here, midway.)
            if not complete:
                psql.kill()
            with contextlib.suppress(BrokenPipeError):
                psql.stdin.close()
            script.stdout.close()  # pg_restore, if still writing (psql stopped early), ends instead of blocking
            script.wait()
            psql.wait()
        if script.returncode != 0 or psql.returncode != 0:
            restore_err.seek(0)
            psql_err.seek(0)
            message = _first(psql_err.read().decode(errors="replace")) or _first(
                restore_err.read().decode(errors="replace"))
            raise VerificationError(f"restore of {dump_file} into {target.display} failed, nothing was changed: "
                                    f"{message}", hint="check the dump with `pg_restore --list` and the server log")


def _first(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "error" in line]
    return (errors or lines or [""])[0]

"""The record store: every operation Mobius runs, in one crash-safe SQLite file in `state/`.

WAL with synchronous=FULL, like the media journal: a committed row survives kill -9 and power
loss. Each commit is an fsync, so a write whose loss a resume repairs (a row that says a step started,
a read-only preflight's verdict) may be `defer`red: it is committed with the next transaction, never
alone (an undo handle is never deferred: it is durable before the work it undoes starts).

An operation has a type (`backup.create`, `media.migrate`, `migrate.run`, ...), its
parameters, a status, its steps (each with status, evidence, undo handle and timings) and
events (monitor verdicts, alerts). A capability keeps its own journal for its own resumability
and puts that journal's id in `ref`, so `mobius history` reaches everything from here.

Secrets never enter the store: parameters and evidence pass through `is_secret_field` / `mask_text` (a secret
setting's name hides its value; a URL password is found by parsing the URL, whatever field holds it).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobius.config import MASK, Workspace, is_secret_field, mask_text
from mobius.errors import MobiusError, ResourceError, is_read_only, read_only_folder
from mobius.results import to_jsonable
from mobius.safety.process import process_alive
from mobius.safety.stamps import new_id, utc_iso
from mobius.safety.wal import open_wal

STORE_NAME = "operations.sqlite"
ACTIVE = ("running", "stopping", "rolling-back")
SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, started TEXT NOT NULL,
    updated TEXT NOT NULL, finished TEXT, duration_s REAL, pid INTEGER, parent TEXT, ref TEXT,
    params TEXT NOT NULL DEFAULT '{}', result TEXT NOT NULL DEFAULT '{}', error TEXT);
CREATE INDEX IF NOT EXISTS operations_type ON operations(type, started);
CREATE TABLE IF NOT EXISTS steps (
    operation_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    started TEXT, finished TEXT, duration_s REAL, params TEXT NOT NULL DEFAULT '{}',
    evidence TEXT NOT NULL DEFAULT '{}', undo TEXT, error TEXT,
    PRIMARY KEY (operation_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, operation_id TEXT NOT NULL, time TEXT NOT NULL,
    kind TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS events_operation ON events(operation_id, seq);
"""


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if not isinstance(value, str):
        return value
    return MASK if is_secret_field(key) else mask_text(value)


def _masked_error(error: str | None) -> str | None:
    """An error's text as stored: a database URL's password in an exception message never reaches the file."""
    return None if error is None else mask_text(error)


def _dump(value: Any) -> str:
    return json.dumps(_masked(to_jsonable(value)), ensure_ascii=False)


LATEST = "latest"  # in place of an operation id: the newest one

# Who hears of what is recorded: `observe(fn)`; `fn(store_path, op_id, kind, data)` is called after each
# commit with kind `operation.started` ({type, params}), `operation.finished` ({type, status, error}) or an
# event's kind (its data), already masked. An observer must be quick (hand the work to a thread) and
# never fails the recording: whatever it raises is dropped.
Observer = Callable[[Path, str, str, dict[str, Any]], None]
_OBSERVERS: list[Observer] = []


def observe(fn: Observer) -> Callable[[], None]:
    """Call `fn` for everything recorded from now on (by any store in this process); returns the remover."""
    _OBSERVERS.append(fn)
    return lambda: _OBSERVERS.remove(fn) if fn in _OBSERVERS else None


@dataclass
class StepRecord:
    idx: int
    name: str
    status: str
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    undo: Any = None
    error: str | None = None


@dataclass
class EventRecord:
    seq: int
    time: str
    kind: str
    data: dict[str, Any]


@dataclass
class Operation:
    id: str
    type: str
    status: str
    started: str
    updated: str
    finished: str | None = None
    duration_s: float | None = None
    pid: int | None = None
    parent: str | None = None
    ref: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def orphaned(self) -> bool:
        """Marked active but its process is gone: it was killed, and can be resumed or rolled back."""
        return self.status in ACTIVE and not (self.pid and process_alive(self.pid))


class RecordStore:
    """The workspace's `state/operations.sqlite`. One connection per instance; close it when done."""

    def __init__(self, path: Path, *, read_only: bool = False):
        self.path = path
        try:
            if read_only:
                self._db = _open_for_reading(path)
                return
            if read_only_folder(path.parent):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # state/ holds plans and evidence
            self._db = open_wal(path, schema=SCHEMA)
        except sqlite3.OperationalError as exc:
            raise self._explain(exc) from exc
        self._pending: list[tuple[str, tuple[Any, ...]]] = []  # deferred writes: run first in the next transaction

    @classmethod
    def of(cls, ws: Workspace, *, read_only: bool = False) -> RecordStore:
        """The workspace's store; `read_only` for commands that only look (history, status): they then
        work on a full disk or a read-only mount, and a missing store reads as empty."""
        return cls(ws.state / STORE_NAME, read_only=read_only)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, ResourceError):
            self.flush()
        self._db.close()

    def flush(self) -> None:
        """Commit the deferred writes now (nothing to do when there are none)."""
        if getattr(self, "_pending", None):
            with self._tx():
                pass

    def _write(self, defer: bool, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run `statements` in one transaction, or (`defer`) keep them for the next one."""
        if defer:
            self._pending.extend(statements)
            return
        with self._tx() as db:
            for sql, args in statements:
                db.execute(sql, args)

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._explain(exc) from exc
        try:
            for sql, args in self._pending:
                self._db.execute(sql, args)
            yield self._db
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._explain(exc) from exc
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise self._explain(exc) from exc
        self._pending.clear()

    def _explain(self, exc: sqlite3.OperationalError) -> Exception:
        """A full disk surfaces from SQLite as 'disk is full' or, in WAL mode, as 'disk I/O error', a read-only
        mount as 'readonly database' or 'unable to open database file': say which."""
        from mobius.safety.diskspace import disk_space

        if is_read_only(exc) or read_only_folder(self.path.parent):
            return ResourceError(f"the folder {self.path.parent} is read-only: cannot record the operation in "
                                 f"{self.path.name}", hint="remount it read-write, or work on a writable copy")
        with contextlib.suppress(OSError):
            if disk_space(self.path.parent)[0] < 1 << 20 or "disk is full" in str(exc):
                return ResourceError(f"not enough disk space to record the operation in {self.path}",
                                     hint="free space on that filesystem and run the command again")
        if "disk I/O error" in str(exc):  # EIO, or a write refused with room left: the device, not our input
            return MobiusError(f"cannot write the record store {self.path}: disk I/O error",
                               hint="check the device (dmesg, SMART), then run the command again")
        return exc

    # operations
    def start(self, type: str, params: dict[str, Any] | None = None, *, parent: str | None = None,
              ref: str | None = None, op_id: str | None = None) -> str:
        op_id = op_id or new_id(type.split(".")[0])
        now = utc_iso()
        with self._tx() as db:
            db.execute("INSERT INTO operations (id, type, status, started, updated, pid, parent, ref, params)"
                       " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                       (op_id, type, now, now, os.getpid(), parent, ref, _dump(params or {})))
        self._tell(op_id, "operation.started", {"type": type, "parent": parent})
        return op_id

    def _tell(self, op_id: str, kind: str, data: Any) -> None:
        for fn in list(_OBSERVERS):
            with contextlib.suppress(Exception):
                fn(self.path, op_id, kind, _masked(to_jsonable(data)))

    def set_status(self, op_id: str, status: str, *, error: str | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE operations SET status = ?, updated = ?, error = COALESCE(?, error), pid = ?"
                       " WHERE id = ?", (status, utc_iso(), _masked_error(error), os.getpid(), op_id))

    def adopt(self, op_id: str) -> None:
        """This process continues the operation (after a resume)."""
        with self._tx() as db:
            db.execute("UPDATE operations SET pid = ?, updated = ? WHERE id = ?", (os.getpid(), utc_iso(), op_id))

    def claim(self, op_id: str, pid: int | None) -> bool:
        """This process continues an operation whose process `pid` is gone, unless another process claimed it
        first (one UPDATE that checks the pid: of two claimants, exactly one wins)."""
        with self._tx() as db:
            claimed = db.execute("UPDATE operations SET pid = ?, updated = ? WHERE id = ? AND pid IS ?",
                                 (os.getpid(), utc_iso(), op_id, pid)).rowcount
        return claimed == 1

    def set_ref(self, op_id: str, ref: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE operations SET ref = ? WHERE id = ?", (ref, op_id))

    def finish(self, op_id: str, status: str, result: Any = None, *, error: str | None = None,
               params: dict[str, Any] | None = None, ref: str | None = None) -> None:
        """The operation's end; `params` are added to those recorded at its start, `ref` set (a command's
        capability call reports both as it runs: they are written here, with its end, in one commit)."""
        now = utc_iso()
        with self._tx() as db:
            row = db.execute("SELECT started, type, params FROM operations WHERE id = ?", (op_id,)).fetchone()
            duration = _seconds_between(row[0], now) if row else None
            merged = json.dumps({**json.loads(row[2]), **json.loads(_dump(params))}, ensure_ascii=False) \
                if row and params else None
            db.execute("UPDATE operations SET status = ?, updated = ?, finished = ?, duration_s = ?, result = ?,"
                       " error = ?, params = COALESCE(?, params), ref = COALESCE(?, ref) WHERE id = ?",
                       (status, now, now, duration, _dump(result or {}), _masked_error(error), merged, ref, op_id))
        self._tell(op_id, "operation.finished", {"type": row[1] if row else None, "status": status,
                                                 "error": mask_text(error or "")})

    # steps
    def step_started(self, op_id: str, idx: int, name: str, params: dict[str, Any] | None = None, *,
                     defer: bool = False) -> None:
        """`defer`: committed with the step's first undo handle or its end (a kill before either leaves the
        step as never started, which a resume runs from the beginning, as it would a `running` row without a
        handle)."""
        now = utc_iso()
        self._write(defer, ("INSERT INTO steps (operation_id, idx, name, status, started, params)"
                            " VALUES (?, ?, ?, 'running', ?, ?)"
                            " ON CONFLICT (operation_id, idx) DO UPDATE SET status = 'running', error = NULL",
                            (op_id, idx, name, now, _dump(params or {}))),
                    ("UPDATE operations SET updated = ? WHERE id = ?", (now, op_id)))

    def step_finished(self, op_id: str, idx: int, status: str, *, evidence: Any = None, undo: Any = None,
                      error: str | None = None, name: str | None = None, defer: bool = False) -> None:
        """The step's end; with `name`, a step not started before is recorded in the same transaction.
        `defer`: committed with the next write (the operation's end, or the next step's undo handle)."""
        now = utc_iso()
        statements = []
        if name is not None:
            statements.append(("INSERT INTO steps (operation_id, idx, name, status, started)"
                               " VALUES (?, ?, ?, 'running', ?) ON CONFLICT (operation_id, idx) DO NOTHING",
                               (op_id, idx, name, now)))
        statements.append(("UPDATE steps SET status = ?, finished = ?, duration_s = round((julianday(?) -"
                           " julianday(started)) * 86400, 3), evidence = ?, undo = COALESCE(?, undo), error = ?"
                           " WHERE operation_id = ? AND idx = ?",
                           (status, now, now, _dump(evidence or {}), None if undo is None else _dump(undo),
                            _masked_error(error), op_id, idx)))
        statements.append(("UPDATE operations SET updated = ? WHERE id = ?", (now, op_id)))
        self._write(defer, *statements)

    def step_undo(self, op_id: str, idx: int, undo: Any, *, defer: bool = False) -> None:
        """Record an undo handle as soon as it exists (before the step is finished), so a kill keeps it.
        `defer`: a checkpoint whose loss a resume repairs by doing that part again (it changed nothing, or
        doing it again gives the same end), never a handle that holds what undoes a change."""
        self._write(defer, ("UPDATE steps SET undo = ? WHERE operation_id = ? AND idx = ?", (_dump(undo), op_id, idx)))

    def step_status(self, op_id: str, idx: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE steps SET status = ? WHERE operation_id = ? AND idx = ?", (status, op_id, idx))

    # events
    def event(self, op_id: str, kind: str, data: Any = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (operation_id, time, kind, data) VALUES (?, ?, ?, ?)",
                       (op_id, utc_iso(), kind, _dump(data or {})))
        self._tell(op_id, kind, data or {})

    def events(self, op_id: str, kind: str | None = None) -> list[EventRecord]:
        sql = "SELECT seq, time, kind, data FROM events WHERE operation_id = ?"
        args: list[Any] = [op_id]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [EventRecord(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # reading
    def resolve(self, op_id: str, *, type: str | None = None) -> str:
        """`op_id` itself, or for `latest` the newest recorded operation (of `type`), as restic's `latest`."""
        if op_id != LATEST:
            return op_id
        newest = self.list(type=type, limit=1)
        if not newest:
            from mobius.errors import InputError

            raise InputError(f"no {type or 'operation'} recorded in this workspace yet, so there is no `latest`",
                             hint="see mobius history")
        return newest[0].id

    def get(self, op_id: str) -> Operation | None:
        row = self._db.execute("SELECT id, type, status, started, updated, finished, duration_s, pid, parent, ref,"
                               " params, result, error FROM operations WHERE id = ?", (op_id,)).fetchone()
        if row is None:
            return None
        op = _operation(row)
        op.steps = self._steps([op_id]).get(op_id, [])
        return op

    def _steps(self, op_ids: list[str]) -> dict[str, list[StepRecord]]:
        """The steps of these operations, in order, read in one query."""
        out: dict[str, list[StepRecord]] = {}
        for r in self._db.execute("SELECT operation_id, idx, name, status, started, finished, duration_s, params,"
                                  " evidence, undo, error FROM steps WHERE operation_id IN"
                                  " (SELECT value FROM json_each(?)) ORDER BY operation_id, idx",
                                  (json.dumps(op_ids),)):
            out.setdefault(r[0], []).append(StepRecord(r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]),
                                                       json.loads(r[8]), json.loads(r[9]) if r[9] else None, r[10]))
        return out

    def list(self, *, type: str | None = None, status: str | None = None, limit: int = 50,
             parent: str | None = None) -> list[Operation]:
        sql = ("SELECT id, type, status, started, updated, finished, duration_s, pid, parent, ref, params, result,"
               " error FROM operations WHERE 1=1")
        args: list[Any] = []
        if type:
            sql += " AND (type = ? OR type LIKE ?)"
            args += [type, type + ".%"]
        if status:
            sql += " AND status = ?"
            args.append(status)
        if parent:
            sql += " AND parent = ?"
            args.append(parent)
        sql += " ORDER BY started DESC, id DESC LIMIT ?"
        args.append(limit)
        ops = [_operation(r) for r in self._db.execute(sql, args)]
        steps = self._steps([op.id for op in ops])  # a listed operation carries its steps, as get() does
        for op in ops:
            op.steps = steps.get(op.id, [])
        return ops

    # summaries (the service's rollups and metrics read these, never the tables)
    def counts(self) -> list[tuple[str, str, int, int, float]]:
        """(type, status, operations, finished ones with a duration, their summed seconds), by type and status."""
        return self._db.execute("SELECT type, status, COUNT(*), COUNT(duration_s), COALESCE(SUM(duration_s), 0)"
                                " FROM operations GROUP BY type, status ORDER BY type, status").fetchall()

    def daily_counts(self, since: str) -> list[tuple[str, str, int]]:
        """(UTC day, status, operations started that day) from day `since` (YYYY-MM-DD) on, newest day first."""
        return self._db.execute("SELECT substr(started, 1, 10) AS day, status, COUNT(*) FROM operations"
                                " WHERE day >= ? GROUP BY day, status ORDER BY day DESC, status", (since,)).fetchall()

    def last_finished(self, status: str = "completed") -> dict[str, str]:
        """{type: when its newest operation with `status` finished}."""
        return dict(self._db.execute("SELECT type, MAX(finished) FROM operations WHERE status = ? AND finished"
                                     " IS NOT NULL GROUP BY type", (status,)).fetchall())

    def step_durations(self) -> list[tuple[str, str, float]]:
        """(operation type, step name, seconds) of every finished step."""
        return self._db.execute("SELECT o.type, s.name, s.duration_s FROM steps s JOIN operations o ON"
                                " o.id = s.operation_id WHERE s.duration_s IS NOT NULL").fetchall()

    def event_counts(self, prefix: str) -> list[tuple[str, int]]:
        """(event kind, how many) of the kinds that start with `prefix` (`monitor.`, `notify.`)."""
        return self._db.execute("SELECT kind, COUNT(*) FROM events WHERE substr(kind, 1, ?) = ? GROUP BY kind"
                                " ORDER BY kind", (len(prefix), prefix)).fetchall()


def _open_for_reading(path: Path) -> sqlite3.Connection:
    """A connection that never writes: no schema, no journal-mode change; an absent store reads as empty.

    `mode=ro` first, which sees a running writer's latest commits. When even that cannot open the file
    (a WAL database needs its -shm index, which a full disk or a read-only mount may not let SQLite
    create), `immutable=1`, which reads the file as it is: right when nobody can be writing to it.
    """
    if not path.exists():
        empty = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        empty.executescript(SCHEMA)
        return empty
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    for flags in ("?mode=ro", "?mode=ro&immutable=1"):
        db = sqlite3.connect(uri + flags, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("SELECT count(*) FROM operations").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if "immutable" in flags:
                raise
    raise AssertionError("unreachable")


def _operation(row: tuple) -> Operation:
    return Operation(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                     json.loads(row[10]), json.loads(row[11]), row[12])


def _seconds_between(start: str, end: str) -> float:
    from mobius.safety.stamps import parse_utc

    return round((parse_utc(end) - parse_utc(start)).total_seconds(), 3)


# The operation that is running now in this thread (an orchestrator's migration, or an outer recorded
# operation): a nested `recorded` block takes it as its parent. None = top level; "" = do not record.
_PARENT: ContextVar[str | None] = ContextVar("mobius_record_parent", default=None)


_OUTER: ContextVar[str | None] = ContextVar("mobius_record_outer", default=None)


def enclosing_operation() -> str | None:
    """The id of the operation this call runs inside (None at top level; "" where recording is off)."""
    return _PARENT.get()


def outer_operation() -> str | None:
    """Inside a recorded operation: the operation that encloses *it* (a plan around a capability's step)."""
    return _OUTER.get()


@contextmanager
def parent_scope(op_id: str | None) -> Iterator[None]:
    """Operations recorded inside this block carry `parent=op_id`; `parent_scope("")` records none of them
    (a rehearsal or a probe that calls a capability is evidence of the outer operation, not an operation)."""
    token = _PARENT.set(op_id)
    try:
        yield
    finally:
        _PARENT.reset(token)


@contextmanager
def recorded(ws: Workspace, type: str, params: dict[str, Any] | None = None, *,
             parent: str | None = None) -> Iterator[OperationHandle]:
    """Record one operation around a block: running, then completed or failed with the error.

    The block sets `handle.result` (any to_jsonable value) and may set `handle.ref` to its own journal id.
    Operations recorded inside the block carry this one as their parent.
    """
    store = RecordStore.of(ws)
    outer = parent or _PARENT.get() or None
    handle = OperationHandle(store, store.start(type, params, parent=outer))
    started = time.monotonic()
    token, outer_token = _PARENT.set(handle.id), _OUTER.set(outer)
    try:
        yield handle
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
        store.finish(handle.id, status, handle.result, error=str(exc)[:2000])
        store.close()
        raise
    finally:
        _PARENT.reset(token)
        _OUTER.reset(outer_token)
    store.finish(handle.id, handle.status, handle.result, ref=handle.ref_at_end)
    from mobius.log import get_logger

    get_logger().info("operation.recorded", operation=handle.id, type=type, status=handle.status,
                      seconds=round(time.monotonic() - started, 3))
    store.close()


@dataclass
class OperationHandle:
    store: RecordStore
    id: str
    result: Any = None
    status: str = "completed"
    bound: int | None = 100  # records_call's: how many items of each list its result keeps
    ref_at_end: str | None = None  # a journal id known only at the end: written with the end, in one commit

    @property
    def ref(self) -> str | None:
        op = self.store.get(self.id)
        return op.ref if op else None

    @ref.setter
    def ref(self, value: str) -> None:
        self.store.set_ref(self.id, value)


def _simple(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str | Path):
        return True
    return isinstance(value, list | tuple) and all(_simple(v) for v in value)


def _bounded(value: Any, items: int | None = 100) -> Any:
    """A result small enough for a record: lists beyond `items` keep their head and say how many there were
    (`items` None: the value whole)."""
    if items is None:
        return value
    if isinstance(value, dict):
        return {k: _bounded(v, items) for k, v in value.items()}
    if isinstance(value, list):
        head = [_bounded(v, items) for v in value[:items]]
        return head + [f"... {len(value) - items} more"] if len(value) > items else head
    return value


@dataclass
class CommandCall:
    """A command's own capability call, run as the step of the one-step plan recorded for the command.

    Such a call records no operation of its own (the plan's record is the command's): what `records_call`
    would have recorded (parameters, result, journal id) is kept here for the runner to write with the
    plan's end, and `value` is the call's return, for the command to print.
    """

    type: str
    called: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    ref: str | None = None
    status: str = "completed"  # records_call's `status(value)`: a failure returned instead of raised
    value: Any = None


_COMMAND: ContextVar[CommandCall | None] = ContextVar("mobius_record_command", default=None)


@contextmanager
def command_call(type: str) -> Iterator[CommandCall]:
    """Inside this block the first `records_call` of `type` reports to the returned CommandCall instead of
    recording an operation (the calls nested in it record theirs, with the enclosing operation as parent)."""
    call = CommandCall(type)
    token = _COMMAND.set(call)
    try:
        yield call
    finally:
        _COMMAND.reset(token)


# The handle of the operation a records_call is recording in this thread (for `keep_partial_result`).
_CALL: ContextVar[OperationHandle | None] = ContextVar("mobius_record_call", default=None)


def keep_partial_result(value: Any) -> None:
    """Inside a records_call: the result so far, kept in the record if the call ends by an exception (an
    interrupted run still says which items finished). Does nothing where no call is being recorded."""
    handle = _CALL.get()
    if handle is not None and handle.id == _PARENT.get():
        handle.result = _bounded(to_jsonable(value), handle.bound)


def records_call(type: str | Callable[[dict[str, Any]], str], *, ref: Callable[[Any], Any] | None = None,
                 skip: Callable[[dict[str, Any]], bool] | None = None,
                 params: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 result: Callable[[Any], Any] | None = None, status: Callable[[Any], str] | None = None,
                 nested: bool = True, bound: int | None = 100, reads: bool = False) -> Callable[[Callable], Callable]:
    """Decorate a capability's public entry point (first argument the Workspace) so each call is an operation.

    Parameters are the call's plain arguments (numbers, strings, paths; never callables or the workspace);
    the result is the return value through the one serializer; `ref(result)` is the capability's own
    journal id. `skip(arguments)` true (a dry run) calls through without a record. `params(arguments)`, when
    given, is what is recorded instead (a value whose secrecy only its argument's meaning reveals).
    `type` may be a function of the arguments (the executor's `what`); `result(value)` is what is recorded
    of the return value; `status(value)` the status of a call that returns a failure instead of raising it
    (a run with failed items, a failed check). `nested=False`: inside an operation already being recorded,
    no record of its own (the outer operation owns the evidence). `bound`: lists in the recorded result keep
    their first `bound` items (None: whole, for a result something reads back, as the status page does).
    `reads`: a check that changes nothing (backup verify) still runs when the record store cannot be written
    (a read-only folder, a full disk): it warns that it is not recorded instead of refusing to check.
    """
    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            call_args = signature.bind(*args, **kwargs)
            call_args.apply_defaults()
            arguments = dict(call_args.arguments)
            ws = arguments.pop("ws")
            if _PARENT.get() == "" or (skip is not None and skip(arguments)) or (not nested and _PARENT.get()):
                return fn(*args, **kwargs)
            shown = params(arguments) if params is not None else {k: v for k, v in arguments.items() if _simple(v)}
            name = type(arguments) if callable(type) else type
            command = _COMMAND.get()
            if command is not None and command.type == name and not command.called:
                return _report_to(command, fn, args, kwargs, shown, result=result, ref=ref, status=status,
                                  bound=bound)
            with contextlib.ExitStack() as stack:
                try:
                    handle = stack.enter_context(recorded(ws, name, to_jsonable(shown)))
                except ResourceError as exc:
                    if not reads:
                        raise
                    from mobius.log import get_logger

                    get_logger().warning("operation.not_recorded", type=name, reason=exc.message)
                    return fn(*args, **kwargs)
                handle.bound = bound
                token = _CALL.set(handle)
                try:
                    out = fn(*args, **kwargs)
                finally:
                    _CALL.reset(token)
                handle.result = _bounded(to_jsonable(result(out) if result is not None else out), bound)
                if status is not None:
                    handle.status = status(out)
                journal_id = ref(out) if ref is not None else None
                if journal_id:
                    handle.ref_at_end = str(journal_id)
            return out

        return call

    return decorate


def _report_to(command: CommandCall, fn: Callable, args: tuple, kwargs: dict[str, Any], shown: dict[str, Any], *,
               result: Callable[[Any], Any] | None, ref: Callable[[Any], Any] | None,
               status: Callable[[Any], str] | None, bound: int | None) -> Any:
    """records_call's work for a command's own call: what it would record goes to `command`, not to a record."""
    command.called, command.params = True, to_jsonable(shown)
    token = _COMMAND.set(None)
    try:
        out = fn(*args, **kwargs)
    finally:
        _COMMAND.reset(token)
    command.value = out
    command.result = _bounded(to_jsonable(result(out) if result is not None else out), bound)
    journal_id = ref(out) if ref is not None else None
    command.ref = str(journal_id) if journal_id else None
    command.status = status(out) if status is not None else "completed"
    return out

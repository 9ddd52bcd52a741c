"""`rollback`: point the workspace back at the library a migration copied from, after proving it intact.

Migrate never modifies or deletes its source, so the old library is still there: it is verified
against the manifest stored with the migration (every byte re-read) before the setting switches back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mobius.config import Workspace, is_url, set_setting
from mobius.errors import InputError, VerificationError
from mobius.faults import FaultHooks
from mobius.log import get_logger
from mobius.media.journal import MigrationJournal, MigrationRecord
from mobius.media.manifest import ManifestVerification, verify_against
from mobius.media.migrate import SETTING, journal_path, migration_lock, now_iso
from mobius.progress import Progress
from mobius.records import records_call

log = get_logger()


@dataclass
class MediaRollback:
    """A media migration undone: its record, the old library verified again, the setting restored."""

    record: MigrationRecord
    verify: ManifestVerification
    setting: str
    value: str | None

    def to_dict(self) -> dict[str, object]:
        return {"migration": self.record.to_dict(), "verify": self.verify.to_dict(), "setting": self.setting,
                "value": self.value}


def find_record(journal: MigrationJournal, migration_id: str | None, statuses: tuple[str, ...]) -> MigrationRecord:
    """The named migration, or (no id, or `latest`) the latest one in one of `statuses`."""
    if migration_id and migration_id != "latest":
        record = journal.get(migration_id)
        if record is None:
            raise InputError(f"no migration {migration_id} in this workspace", hint="see mobius media migrations")
        return record
    candidates = [r for r in journal.records() if r.status in statuses]
    if not candidates:
        raise InputError(f"no {' or '.join(statuses)} migration in this workspace", hint="see mobius media migrations")
    return candidates[-1]


def open_journal(ws: Workspace) -> MigrationJournal:
    journal = MigrationJournal.read_only(journal_path(ws))
    if journal is None:
        raise InputError(f"no media migrations recorded in {ws.root}", hint="see mobius media migrate --help")
    journal.close()
    return MigrationJournal(journal_path(ws))


@records_call("media.rollback", ref=lambda result: result.record.id)
def rollback(ws: Workspace, migration_id: str | None = None, *, workers: int | None = None,
             progress: Progress | None = None, report: Callable[[str], None] | None = None) -> MediaRollback:
    """Verify the migration's source against its manifest, then switch MOBIUS_LIBRARY_DIR back to it."""
    report = report or (lambda line: None)
    with migration_lock(ws):
        journal = open_journal(ws)
        try:
            record = find_record(journal, migration_id, ("completed",))
            if record.status != "completed":
                raise InputError(f"migration {record.id} is {record.status}; only a completed migration can be "
                                 "rolled back", hint="an unfinished one never switched the library")
            # a rollback killed after switching the setting back, before recording it, finishes here
            already_back = not is_url(ws.library) and os.path.realpath(ws.library) == record.source
            if not already_back and ws.library.rstrip("/") != record.target:
                raise InputError(f"the library is {ws.library}, not the target of migration {record.id} "
                                 f"({record.target})", hint="roll back the later migration first")
            report(f"rollback: verifying the source {record.source} against {record.source_manifest} ...")
            result = verify_against(Path(record.source), Path(record.source_manifest or ""), workers=workers,
                                    progress=progress)
            if not result.ok:
                log.error("media.rollback.source_damaged", migration=record.id, problems=len(result.problems()))
                raise VerificationError(f"the source {record.source} no longer matches its manifest; the setting was "
                                        "not switched back", hint="restore it from the migration's backup",
                                        details=result.problems())
            report(f"rollback: source verified: {result.checked} files match the manifest")
            if not already_back:
                set_setting(ws, SETTING, record.previous_value)
                FaultHooks(ws.state).reached("rolled-back")
            record.status = "rolled-back"
            record.updated = now_iso()
            journal.save(record)
            shown = record.previous_value if record.previous_value is not None else "unset (default)"
            report(f"rollback: {SETTING} is {shown} again in {ws.env_file}")
            log.info("media.rollback.done", migration=record.id, value=record.previous_value)
            return MediaRollback(record, result, SETTING, record.previous_value)
        finally:
            journal.close()

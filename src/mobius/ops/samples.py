"""The sample workspace's migration plan: one runnable plan beside the sample library, so that the
`migrate` commands (and their `--help` examples) have something real to run on a fresh workspace."""

from __future__ import annotations

from typing import Any

from mobius.safety.atomic import atomic_write_text

SAMPLE_PLAN = "plans/media-to-v2.yaml"
SAMPLE_PLAN_TEXT = """# A sample migration: `mobius migrate plan plans/media-to-v2.yaml` (the dry run), then
# `mobius migrate run plans/media-to-v2.yaml --yes`; undo with `mobius migrate rollback latest --yes`.
# The plan format is in docs/migrate.md.
name: media-to-v2
type: media
risk: low
steps:
  - backup: {}                     # the restore point: library, .env, database dump; verified
  - media.migrate: {to: media-v2}  # copy, re-read every byte, switch MOBIUS_LIBRARY_DIR
validate: [file_counts, checksums, db_check]
"""


def init_sample_plan(ws: Any, result: Any, *, sample: bool, progress: Any = None) -> None:
    """`mobius init --sample` step: write plans/media-to-v2.yaml (never overwrites)."""
    if not sample:
        return
    path = ws.root / SAMPLE_PLAN
    if path.exists():
        return
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, SAMPLE_PLAN_TEXT)
    result.sample["plan"] = SAMPLE_PLAN

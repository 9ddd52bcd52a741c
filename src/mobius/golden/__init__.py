"""Golden files: pin what a rendered preview must look and sound like, and hold new renders to it.

Public functions (each takes a Workspace; heavy libraries load only when called):
- `generate(ws, slug, video, *, frames=None, per_os=False, thresholds=None, progress=None) -> GenerateResult`
- `check_video(ws, slug, video, *, overrides=None, per_os=False, debug=True, progress=None) -> CheckReport`
- `check_all(ws, *, overrides=None, per_os=None, videos=None, progress=None) -> list[CheckReport]`
- `approve(ws, games=None, *, per_os=None, frames=None, progress=None) -> ApproveResult`
- `upgrade(ws, games=None, *, progress=None) -> list[UpgradeResult]` (format 1 -> 2, from the source video)
- `backup_goldens(ws)`, `restore_goldens(ws, archive)`
- `write_junit(reports, path)`, `write_html(reports, path)`
Measurements: `mobius.measure` (frame and audio signatures, alignment),
`mobius.golden.ssim.ssim`, `mobius.golden.loudness.measure`, `mobius.golden.media.read_media/probe`.
"""

from __future__ import annotations

from mobius.golden.archive import backup_goldens, restore_goldens
from mobius.golden.baseline import DEFAULT_FRAMES, Thresholds, games_with_goldens, generate, load_golden, os_name
from mobius.golden.check import Check, CheckReport, check_video
from mobius.golden.report import write_html, write_junit
from mobius.golden.upgrade import UpgradeResult, upgrade
from mobius.golden.workflow import approve, check_all

__all__ = ["DEFAULT_FRAMES", "Check", "CheckReport", "Thresholds", "approve", "backup_goldens", "check_all",
           "check_video", "games_with_goldens", "generate", "load_golden", "os_name", "restore_goldens",
           "UpgradeResult", "upgrade", "write_html", "write_junit"]

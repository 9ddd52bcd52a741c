"""Golden files: pin what a rendered preview must look and sound like, and hold new renders to it.

Public functions (each takes a Workspace; heavy libraries load only when called):
- `generate(ws, slug, video, *, frames=None, per_os=False, thresholds=None, progress=None) -> GenerateResult`
- `check_video(ws, slug, video, *, overrides=None, per_os=False, debug=True, progress=None) -> GoldenVerdict`
- `check_all(ws, *, overrides=None, per_os=None, videos=None, progress=None) -> list[GoldenVerdict]`
- `upgrade(ws, games=None, *, progress=None) -> list[UpgradeResult]` (format 1 -> 2, from the source video)
- `backup_goldens(ws)`, `restore_goldens(ws, archive)`
- `write_junit(reports, path)`, `write_html(reports, path)`
Approving renders as goldens needs the renderer too: `mobius.approval.approve` (above both).
Measurements: `mobius.measure` (decode, SSIM, loudness, frame and audio signatures, alignment),
shared with the renderer; golden and render never import each other.
"""

from __future__ import annotations

from importlib import import_module

# Where each public name lives. They load on first use (PEP 562) for start-up time: `golden check`
# needs check.py and what it imports, not the archive, report, upgrade or check-all modules.
_HOMES = {
    "backup_goldens": "archive", "restore_goldens": "archive",
    "DEFAULT_FRAMES": "baseline", "Thresholds": "baseline", "games_with_goldens": "baseline", "generate": "baseline",
    "load_golden": "baseline", "os_name": "baseline",
    "GoldenCheck": "check", "GoldenVerdict": "check", "check_video": "check",
    "write_html": "report", "write_junit": "report",
    "UpgradeResult": "format_upgrade", "upgrade": "format_upgrade",
    "check_all": "workflow",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mobius.golden' has no attribute {name!r}")
    return getattr(import_module(f"mobius.golden.{home}"), name)

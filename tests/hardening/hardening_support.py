"""Helpers the hardening tests share."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_preview(preview: Path, ws: Path) -> Path:
    target = ws / "out" / "sushi-go" / "preview.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(preview, target)
    return target

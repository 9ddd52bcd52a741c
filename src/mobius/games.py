"""Game names and where a game's files live in a workspace, below every capability that uses them.

The slug rule is checked here once for render (specs, previews) and golden (baselines): a slug names
folders under games/, out/ and tests/golden, so `../x` or `/abs` must never reach a path join.
"""

from __future__ import annotations

import re
from pathlib import Path

from mobius.config import Workspace
from mobius.errors import InputError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def check_slug(game: str) -> str:
    """The one game-slug rule (lower-case letters, digits, dashes, at most 100 characters)."""
    if not isinstance(game, str) or not SLUG.fullmatch(game) or len(game) > 100:
        raise InputError(f"not a game slug: {game!r}",
                         hint="use the spec's file name without .yaml: lower-case letters, digits and dashes, "
                              "e.g. sushi-go")
    return game


def default_output(ws: Workspace, slug: str) -> Path:
    """Where `mobius render` writes a game's preview, and where golden checks look for it."""
    return ws.out / slug / "preview.mp4"

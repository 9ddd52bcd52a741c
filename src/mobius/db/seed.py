"""Game rows and their media assets: the sample games for `mobius init --sample`, and recording a
game's library folder as `media_assets` rows (path relative to the library, kind, size, sha256).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection, bindparam, text

from mobius.config import Workspace
from mobius.safety.hashing import hash_files

# Publisher's box figures (minutes, players).
SAMPLE_GAMES: list[dict[str, Any]] = [
    {"slug": "sushi-go", "name": "Sushi Go!", "play_time": 15, "min_players": 2, "max_players": 5,
     "publisher": "Gamewright", "year_published": 2013},
    {"slug": "love-letter", "name": "Love Letter", "play_time": 20, "min_players": 2, "max_players": 4,
     "publisher": "Alderac Entertainment Group", "year_published": 2012},
    {"slug": "hanamikoji", "name": "Hanamikoji", "play_time": 15, "min_players": 2, "max_players": 2,
     "publisher": "EmperorS4", "year_published": 2013},
]

FOLDER_KINDS = {"cards": "card", "cartes": "card", "boards": "board", "plateau": "board", "tokens": "token",
                "jetons": "token", "clips": "clip", "scans": "scan"}
EXTENSION_KINDS = {".mp4": "clip", ".mov": "clip", ".webm": "clip", ".mkv": "clip", ".png": "image",
                   ".jpg": "image", ".jpeg": "image", ".webp": "image", ".gif": "image", ".txt": "document",
                   ".pdf": "document", ".md": "document"}


def asset_kind(relative: PurePosixPath) -> str:
    """clip or document from the extension; else card, board, token, scan from the folder; else image or other."""
    by_extension = EXTENSION_KINDS.get(relative.suffix.lower(), "other")
    if by_extension in ("clip", "document"):
        return by_extension
    for part in relative.parts[:-1]:
        if part.lower() in FOLDER_KINDS:
            return FOLDER_KINDS[part.lower()]
    return by_extension


def game_assets(library: Path, slug: str) -> list[dict[str, Any]]:
    """Every file under <library>/<slug>/, hashed in parallel, sorted by path."""
    folder = library / slug
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) if folder.is_dir() else []
    assets = []
    for path, digest in hash_files(files):
        if isinstance(digest, OSError):
            raise digest
        relative = PurePosixPath(path.relative_to(library).as_posix())
        assets.append({"path": str(relative), "kind": asset_kind(relative), "size_bytes": path.stat().st_size,
                       "sha256": digest})
    return assets


def record_game(conn: Connection, game: dict[str, Any], library: Path) -> dict[str, int]:
    """Insert the game (if its slug is new) and its library files as media_assets (new paths only)."""
    existing = conn.execute(text("SELECT id FROM games WHERE slug = :slug"), {"slug": game["slug"]}).scalar()
    if existing is None:
        conn.execute(text("INSERT INTO games (slug, name, play_time, min_players, max_players, publisher, "
                          "year_published) VALUES (:slug, :name, :play_time, :min_players, :max_players, "
                          ":publisher, :year_published)"), game)
        existing = conn.execute(text("SELECT id FROM games WHERE slug = :slug"), {"slug": game["slug"]}).scalar()
    assets = game_assets(library, game["slug"])
    known = set()
    if assets:
        query = text("SELECT path FROM media_assets WHERE path IN :paths").bindparams(
            bindparam("paths", expanding=True))
        known = {row[0] for row in conn.execute(query, {"paths": [a["path"] for a in assets]})}
    new = [{**a, "game_id": existing} for a in assets if a["path"] not in known]
    if new:
        conn.execute(text("INSERT INTO media_assets (game_id, path, kind, size_bytes, sha256) "
                          "VALUES (:game_id, :path, :kind, :size_bytes, :sha256)"), new)
    return {"assets": len(new)}


def init_step(ws: Workspace, result: Any, *, sample: bool, progress: Any) -> None:
    """`mobius init`: create and migrate the database; with --sample, seed the three sample games.

    Seeding happens between 0001 and the later migrations on a new database, so 0002's backfill
    runs on real rows as it would on an existing installation.
    """
    from mobius.db import api
    from mobius.db.engine import connect, target_for

    fresh = api.database_is_empty(ws)
    seeded = None
    if sample and fresh:
        api.migrate_database(ws, to=1, backup=False, progress=progress)
        with connect(target_for(ws)) as conn, conn.begin():
            seeded = {g["slug"]: record_game(conn, g, ws.library_path)["assets"] for g in SAMPLE_GAMES}
    migrated = api.migrate_database(ws, backup=not fresh, progress=progress)
    if fresh:
        result.created.append("database")
    result.sample["database"] = {"url": migrated.database, "version": migrated.current_version,
                                 **({"games": len(seeded), "assets": sum(seeded.values())} if seeded else {})}

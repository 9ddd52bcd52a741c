"""Hashing a library into the database (SQLite and PostgreSQL): incremental, failures recorded, versions switched."""

from __future__ import annotations

import os
import shutil

from images import encode, golden_images, picture

from mobius import fingerprint
from mobius.fingerprint import store
from mobius.fingerprint.algorithm import EXACT, FAST, dhash
from mobius.results import to_jsonable


def test_hash_is_incremental_and_records_failures(library_workspace):
    ws = library_workspace
    lib = ws.library_path
    (lib / "notes.png").write_text("not an image")
    (lib / "clip.mp4").write_bytes(b"\0" * 100)  # not an image suffix: never considered
    first = fingerprint.hash_library(ws, workers=2)
    assert (first.images, first.hashed, first.failed) == (8, 7, 1)
    assert first.failures == [{"path": "notes.png", "error": "not an image"}] and first.active == EXACT.id
    again = fingerprint.hash_library(ws)
    assert (again.hashed, again.unchanged) == (0, 8)
    card = lib / "cards/card-1.png"
    os.utime(card, ns=(card.stat().st_atime_ns, card.stat().st_mtime_ns + 5_000_000_000))  # same bytes
    (lib / "cards/card-3.png").write_bytes(golden_images()["gradient"])  # new content, hash ffff...
    (lib / "boards/board-4.jpg").unlink()
    third = fingerprint.hash_library(ws)
    assert (third.hashed, third.unchanged, third.removed) == (1, 6, 1)
    table = fingerprint.find_duplicates(ws, distance=0)
    assert table.images == 6
    with store.session(ws) as conn:
        table = store.load(conn, EXACT.id)
    stored = dict(zip(table.paths, (fingerprint.to_hex(int(h)) for h in table.hashes), strict=True))
    assert stored["cards/card-3.png"] == fingerprint.to_hex(dhash(lib / "cards/card-3.png"))
    assert stored["cards/card-3.png"] == "ffffffffffffffff"  # the top bit survives the signed BIGINT


def test_near_duplicates_and_similar(library_workspace):
    ws = library_workspace
    fingerprint.hash_library(ws, variants=True)
    shutil.copy(ws.library_path / "cards/card-1.png", ws.library_path / "copy.png")
    fingerprint.hash_library(ws, variants=True)
    groups = fingerprint.find_duplicates(ws, distance=6).groups
    paths = sorted(sorted(m.path for m in g.members) for g in groups)
    assert paths == [["boards/board-0.jpg", "scans/board-0 (rescan).jpg"], ["cards/card-1.png", "copy.png"]]
    copy_group = next(g for g in groups if g.members[0].path == "cards/card-1.png")
    assert copy_group.kind == "identical" and copy_group.members[1].copy_of == "cards/card-1.png"
    mirrored = ws.root / "mirrored.png"
    mirrored.write_bytes(encode(picture(205).transpose(0), "PNG"))
    plain = fingerprint.find_similar(ws, mirrored, distance=6)
    assert plain.matches == []
    flipped = fingerprint.find_similar(ws, mirrored, distance=6, variants=True)
    assert [m.path for m in flipped.matches] == ["cards/card-5.png"] and flipped.matches[0].distance == 0


def test_rehash_switches_atomically_and_rollback_recomputes_nothing(library_workspace):
    ws = library_workspace
    fingerprint.hash_library(ws)
    result = fingerprint.rehash(ws, "fast")
    assert result.switched and fingerprint.status(ws).active == FAST.id
    comparison = result.comparison
    assert comparison.images == 7 and sum(comparison.histogram.values()) == 7
    assert comparison.group_changes >= 0 and comparison.only_old == 0
    back = fingerprint.rollback(ws)
    assert to_jsonable(back) == {"from": FAST.id, "to": EXACT.id, "recomputed": 0}  # the JSON keys of old
    assert fingerprint.status(ws).active == EXACT.id
    again = fingerprint.rehash(ws, "fast", switch=False)  # resumable: everything is already computed
    assert again.hash.hashed == 0 and not again.switched
    assert fingerprint.status(ws).active == EXACT.id
    assert set(to_jsonable(again)) == {"from", "to", "hash", "comparison", "switched"}


def test_metrics_give_hash_p95_and_failure_rate(library_workspace):
    ws = library_workspace
    assert fingerprint.metrics(ws).algorithm is None
    (ws.library_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    fingerprint.hash_library(ws)
    m = fingerprint.metrics(ws)
    assert (m.images, m.hashed, m.failed) == (8, 7, 1)
    assert m.failure_rate == round(1 / 8, 6) and 0 < m.hash_p50_ms <= m.hash_p95_ms
    from mobius.api import metrics  # /metrics/dhash serves the same numbers under the same keys

    served = metrics.render(ws, only="dhash").decode()
    assert "mobius_dhash_failure_rate 0.125" in served and "mobius_dhash_images 8.0" in served


def test_a_library_of_only_failures_has_no_groups_and_full_failure_rate(library_workspace):
    ws = library_workspace
    for path in list(ws.library_path.rglob("*.*")):
        path.write_bytes(b"GIF89a broken")
    report = fingerprint.hash_library(ws)
    assert (report.hashed, report.failed, report.active) == (0, 7, None)
    assert fingerprint.metrics(ws).algorithm is None  # nothing active yet
    assert fingerprint.metrics(ws, EXACT.id).failure_rate == 1.0

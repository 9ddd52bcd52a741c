"""What `mobius library hash|dupes|similar|rehash` do, as plain functions of a Workspace."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mobius.config import Workspace
from mobius.errors import InputError, VerificationError
from mobius.executor import Item, ItemOutcome, open_executor, run_items
from mobius.executor.batching import batches
from mobius.fingerprint import store
from mobius.fingerprint.algorithm import EXACT, Algorithm, dhash_image, hash_task, require_computable, to_hex
from mobius.fingerprint.results import (
    DuplicateGroup,
    DuplicateGroups,
    FingerprintMetrics,
    FingerprintStatus,
    GroupMember,
    HashReport,
    HashVersionSwitch,
    Rehash,
    SimilarImage,
    SimilarImages,
    VersionComparison,
)
from mobius.fingerprint.search import HashIndex, as_hashes, duplicate_groups
from mobius.log import get_logger
from mobius.progress import NoProgress, Progress
from mobius.records import records_call
from mobius.results import to_jsonable
from mobius.safety.hashing import sha256_file
from mobius.safety.tree import FILE, walk

log = get_logger("mobius.fingerprint")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
BATCH = 32
DEFAULT_DISTANCE = 6


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def is_image_name(path: str) -> bool:
    """Files hashed: image suffixes only (clips, documents and specs are not images to hash)."""
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def _changed(ws_root: Path, conn: Any, algorithm: str, entries: list[Any], variants: bool,
             report: HashReport) -> Iterator[tuple[str, str]]:
    """The files to hash: new, or changed (size/mtime differ and the sha256, where known, differs too)."""
    known = store.known(conn, algorithm)
    for entry in entries:
        row = known.get(entry.path)
        absolute = str(ws_root / entry.path)
        if row is not None and (row.has_variants or not variants):
            if row.size == entry.size and row.mtime_ns == entry.mtime_ns:
                report.unchanged += 1
                continue
            if row.size == entry.size and row.sha256 and sha256_file(absolute) == row.sha256:
                store.touch(conn, algorithm, entry.path, entry.mtime_ns)
                report.unchanged += 1
                continue
        yield absolute, entry.path
    present = {e.path for e in entries}
    report.removed = store.forget(conn, algorithm, [p for p in known if p not in present])


@records_call("library.hash")
def hash_library(ws: Workspace, *, mode: str = "exact", workers: int | None = None, variants: bool = False,
                 progress: Progress | None = None, activate: bool = True, executor: str | None = None) -> HashReport:
    """Hash every new or changed image in the library; failures are recorded with their reason, never raised.

    The batches run on `executor` ("local" or "dask"; default MOBIUS_EXECUTOR), which gives the same
    hashes either way. Each batch commits as it arrives, so a killed run resumes where it stopped. The
    first version hashed becomes the active one (later runs of another version leave the active one
    alone: see `rehash`). A batch that crashed on every try raises (exit 2, naming it) after the others
    are saved, and nothing is activated.
    """
    algorithm = Algorithm.parse(mode)
    require_computable(algorithm)
    progress = progress or NoProgress()
    root = ws.library_path
    if not root.is_dir():
        raise InputError(f"the library folder {root} does not exist", hint="check MOBIUS_LIBRARY_DIR")
    workers = workers or default_workers()
    started = time.perf_counter()
    entries = [e for e in walk(root) if e.kind == FILE and is_image_name(e.path)]
    with store.session(ws) as conn:
        active, _ = store.active(conn)
        report = HashReport(algorithm.id, active, str(root), images=len(entries), workers=workers)
        todo = list(_changed(root, conn, algorithm.id, entries, variants, report))
        log.info("fingerprint.hash.start", algorithm=algorithm.id, images=len(entries), todo=len(todo),
                 workers=workers)
        progress.start(f"hash {algorithm.mode}", total=len(todo), unit="images")
        items = [Item(f"hash-{n}", (batch, algorithm.id, variants)) for n, batch in enumerate(batches(todo, BATCH))]

        def save(outcome: ItemOutcome) -> None:
            if outcome.ok:
                store.save(conn, algorithm.id, outcome.value)
                report.hashed += sum(1 for r in outcome.value if r.hash is not None)
                progress.advance(len(outcome.value))

        kind = executor or ws.settings.executor
        # Threads on this machine (Pillow releases the GIL while it decodes and resizes, so they match
        # processes without their start-up and pickling); worker processes on a Dask cluster.
        with open_executor(ws, kind, cpu_bound=kind != "local", workers=workers) as chosen:
            run = run_items(ws, "library.hash", hash_task, items, executor=chosen, on_outcome=save)
        progress.finish()
        run.raise_if_failed()
        if activate and active is None and report.hashed:
            store.activate(conn, algorithm.id, expected=None)
            report.active = algorithm.id
        report.failures = store.failures(conn, algorithm.id)
        report.failed = store.versions(conn).get(algorithm.id, {}).get("failed", 0)
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("fingerprint.hash.done", **{k: v for k, v in to_jsonable(report).items() if k != "failures"})
    return report


def _active(conn: Any) -> str:
    active, _ = store.active(conn)
    if active is None:
        raise InputError("no image hashes yet", hint="run: mobius library hash")
    return active


def find_duplicates(ws: Workspace, *, distance: int = DEFAULT_DISTANCE, variants: bool = False,
                    algorithm: str | None = None) -> DuplicateGroups:
    """Exact and near-duplicate groups among the active version's hashes, largest group first."""
    _check_distance(distance)
    with store.session(ws) as conn:
        version = algorithm or _active(conn)
        table = store.load(conn, version, with_variants=variants)
    started = time.perf_counter()
    labels = duplicate_groups(table.hashes, distance, variants=table.variants)
    groups = _groups(table, labels)
    return DuplicateGroups(version, distance, variants, len(table), groups,
                           duplicates=sum(len(g.members) - 1 for g in groups),
                           search_seconds=round(time.perf_counter() - started, 4))


def _groups(table: store.HashTable, labels: np.ndarray) -> list[DuplicateGroup]:
    """Groups of 2+ images (transitively within the distance); kind: identical (same bytes), same-hash or near."""
    if not len(labels):
        return []
    counts = np.bincount(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for label in np.flatnonzero(counts > 1):
        members = order[starts[label]:starts[label + 1]]
        first = int(table.hashes[members[0]])
        seen: dict[str, str] = {}
        rows = []
        for m in members:
            digest = table.sha256[m]
            rows.append(GroupMember(table.paths[m], to_hex(int(table.hashes[m])),
                                    int(np.bitwise_count(np.uint64(first) ^ table.hashes[m])),
                                    seen.get(digest) if digest else None))
            if digest:
                seen.setdefault(digest, table.paths[m])
        digests = {table.sha256[m] for m in members}
        kind = ("identical" if len(digests) == 1 and None not in digests
                else "same-hash" if len({r.hash for r in rows}) == 1 else "near")
        out.append(DuplicateGroup(kind, rows))
    out.sort(key=lambda g: (-len(g.members), g.members[0].path))
    return out


def _check_distance(distance: int) -> None:
    if not 0 <= distance <= 32:
        raise InputError(f"--distance {distance} is out of range", hint="use 0..32 bits (6 is a good default)")


def find_similar(ws: Workspace, image: Path, *, distance: int = DEFAULT_DISTANCE,
                 variants: bool = False) -> SimilarImages:
    """The query image's hash (hex, as ImageHash prints it) and every stored image within the distance."""
    from PIL import Image

    _check_distance(distance)
    with store.session(ws) as conn:
        version = _active(conn)
        table = store.load(conn, version)
    algorithm = Algorithm.parse(version)
    try:
        with Image.open(image) as opened:
            hashes = dhash_image(opened, algorithm, variants=variants)
    except FileNotFoundError:
        raise InputError(f"no such image: {image}", hint="give the path of an image file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read {image} as an image: {exc}", hint="give a JPEG, PNG, GIF, WebP...") from None
    found = HashIndex(table.hashes).search(as_hashes(hashes), distance)
    best: dict[int, tuple[int, int]] = {}
    for q, i, d in zip(found.query.tolist(), found.index.tolist(), found.distance.tolist(), strict=True):
        if i not in best or d < best[i][0]:
            best[i] = (d, q)
    matches = [SimilarImage(table.paths[i], to_hex(int(table.hashes[i])), d, q)
               for i, (d, q) in sorted(best.items(), key=lambda kv: (kv[1][0], table.paths[kv[0]]))]
    return SimilarImages(str(image), to_hex(hashes[0]), version, distance, matches)


def compare_versions(ws: Workspace, old: str, new: str, *, distance: int = DEFAULT_DISTANCE) -> VersionComparison:
    """How a change of version moves images: old->new distance histogram and duplicate-group changes."""
    with store.session(ws) as conn:
        a, b = store.load(conn, old), store.load(conn, new)
    common = sorted(set(a.paths) & set(b.paths))
    ia = {p: k for k, p in enumerate(a.paths)}
    ib = {p: k for k, p in enumerate(b.paths)}
    ha = a.hashes[[ia[p] for p in common]] if common else np.zeros(0, dtype=np.uint64)
    hb = b.hashes[[ib[p] for p in common]] if common else np.zeros(0, dtype=np.uint64)
    moved = np.bitwise_count(ha ^ hb)
    la, lb = duplicate_groups(ha, distance), duplicate_groups(hb, distance)
    changed = _group_changes(la, lb)
    pairs_old = int(sum(n * (n - 1) // 2 for n in np.bincount(la))) if len(la) else 0
    pairs_new = int(sum(n * (n - 1) // 2 for n in np.bincount(lb))) if len(lb) else 0
    return VersionComparison(
        old, new, images=len(common), distance=distance, identical=int((moved == 0).sum()),
        bits_changed_mean=round(float(moved.mean()), 4) if len(moved) else 0.0,
        histogram={int(k): int(v) for k, v in sorted(Counter(moved.tolist()).items())},
        group_changes=changed, grouped_pairs_old=pairs_old, grouped_pairs_new=pairs_new,
        only_old=len(set(a.paths) - set(b.paths)), only_new=len(set(b.paths) - set(a.paths)))


def _group_changes(old: np.ndarray, new: np.ndarray) -> int:
    """Images whose duplicate group (the set of images grouped with it) differs between two labelings."""
    if not len(old):
        return 0
    joint = old.astype(np.int64) * (int(new.max()) + 1) + new
    _, joint_inv, joint_n = np.unique(joint, return_inverse=True, return_counts=True)
    same = (joint_n[joint_inv] == np.bincount(old)[old]) & (joint_n[joint_inv] == np.bincount(new)[new])
    return int((~same).sum())


@records_call("library.rehash")
def rehash(ws: Workspace, to: str, *, workers: int | None = None, distance: int = DEFAULT_DISTANCE,
           switch: bool = True, progress: Progress | None = None, executor: str | None = None) -> Rehash:
    """The "deploy dhash" migration: compute `to` beside the active version (resumable), compare, switch.

    The switch is one transaction and happens only when the new version covers every image the
    old one hashed; the old hashes stay, so `rollback` is instant.
    """
    target = Algorithm.parse(to)
    require_computable(target)
    with store.session(ws) as conn:
        old = _active(conn)
    if target.id == old:
        raise InputError(f"{old} is already the active hash version", hint="name another version with --to")
    report = hash_library(ws, mode=target.id, workers=workers, progress=progress, activate=False, executor=executor)
    comparison = compare_versions(ws, old, target.id, distance=distance)
    result = Rehash(old, target.id, report, comparison)
    if comparison.only_old:
        raise VerificationError(f"{target.id} lacks {comparison.only_old} image(s) that {old} hashed; "
                                "not switching", hint="see the failures with mobius library hash --mode " + target.id)
    if switch:
        with store.session(ws) as conn:
            store.activate(conn, target.id, expected=old)
        result.switched = True
        log.info("fingerprint.rehash.switched", old=old, new=target.id)
    return result


@records_call("library.rehash-rollback")
def rollback(ws: Workspace) -> HashVersionSwitch:
    """Switch back to the version active before the last rehash; nothing is recomputed."""
    with store.session(ws) as conn:
        current, previous = store.active(conn)
        if previous is None:
            raise InputError("there is no previous hash version to roll back to",
                             hint="rollback undoes a `mobius library rehash --to VERSION`")
        if not store.versions(conn).get(previous, {}).get("hashed"):
            raise VerificationError(f"the previous version {previous} has no stored hashes",
                                    hint=f"run: mobius library rehash --to {previous}")
        store.activate(conn, previous, expected=current)
    log.info("fingerprint.rehash.rolled_back", old=current, new=previous)
    return HashVersionSwitch(current, previous)


def metrics(ws: Workspace, algorithm: str | None = None) -> FingerprintMetrics:
    """The service's /metrics/dhash: hash time percentiles and the extraction failure rate (active version)."""
    with store.session(ws) as conn:
        active, previous = store.active(conn)
        version = algorithm or active
        if version is None:
            return FingerprintMetrics(None, None, None)
        counts = store.versions(conn).get(version, {"hashed": 0, "failed": 0})
        times = store.seconds(conn, version)
    total = counts["hashed"] + counts["failed"]
    p50, p95 = (np.percentile(times, [50, 95]) * 1000).tolist() if len(times) else (None, None)
    return FingerprintMetrics(version, active, previous, images=total, hashed=counts["hashed"],
                              failed=counts["failed"],
                              failure_rate=round(counts["failed"] / total, 6) if total else 0.0,
                              hash_p50_ms=None if p50 is None else round(p50, 3),
                              hash_p95_ms=None if p95 is None else round(p95, 3))


def status(ws: Workspace) -> FingerprintStatus:
    """Stored versions with their counts, and which one is active."""
    with store.session(ws) as conn:
        active, previous = store.active(conn)
        return FingerprintStatus(active, previous, store.versions(conn), EXACT.id)

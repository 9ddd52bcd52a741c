"""Benchmark: `mobius media migrate` (copy + re-read of every byte) against the runbook's procedure.

The runbook's procedure is `rsync -a --checksum SRC/ DST/` followed by a sha256 comparison of both
trees with `sha256sum`. Both run on the same library, in the same run; then each one's re-run when
nothing changed; then the migrate re-run on two libraries with the same file count, one with 10x
the bytes, to show that a re-run's time follows the number of files, not their size.

    python benchmarks/media_migrate.py                 # ~1 GB library, 10,000-file scaling pair
    python benchmarks/media_migrate.py --size-mb 200 --scale-files 2000   # quick
    python benchmarks/media_migrate.py --library PATH  # your own library (copied, never modified)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path("/tmp/mobius-bench-media")
MOBIUS = [sys.executable, "-m", "mobius"]


def build_library(root: Path, total_bytes: int, *, seed: int = 1) -> tuple[int, int]:
    """Incompressible media-like files (photos 0.2-4 MB, scans 8-24 MB, clips 30-60 MB), nested folders."""
    rng = np.random.default_rng(seed)
    written = count = 0
    kinds = [("photos", "jpg", 200_000, 4_000_000), ("scans", "png", 8_000_000, 24_000_000),
             ("clips", "mp4", 30_000_000, 60_000_000)]
    while written < total_bytes:
        folder, ext, low, high = kinds[rng.choice(3, p=[0.80, 0.17, 0.03])]
        size = int(min(rng.integers(low, high), max(total_bytes - written, 1)))
        path = root / f"game-{count % 12:02d}" / folder / f"item {count:05d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.bytes(size))
        written += size
        count += 1
    return count, written


def build_many(root: Path, files: int, size: int, *, seed: int) -> None:
    rng = np.random.default_rng(seed)
    block = rng.bytes(size + files)
    for i in range(files):
        path = root / f"set-{i % 50:02d}" / f"thumb {i:06d}.webp"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(block[i:i + size])


def workspace(root: Path, library: Path) -> Path:
    root.mkdir(parents=True)
    (root / ".env").write_text(f"MOBIUS_LIBRARY_DIR={library}\n")
    return root


def run_timed(cmd: list[str]) -> tuple[float, str]:
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {cmd}\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def timed(cmd: list[str]) -> float:
    return run_timed(cmd)[0]


def migrate(ws: Path, target: Path) -> tuple[float, float]:
    """(wall seconds of the whole command, seconds spent inside migrate() as the command reports them)."""
    wall, out = run_timed([*MOBIUS, "media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(ws),
                           "--json"])
    return wall, json.loads(out)["seconds"]


def sha256_compare(src: Path, dst: Path, out: Path) -> float:
    """The runbook's checksum validation: sha256sum of every file of both trees, then compare."""
    listing = "find . -type f -print0 | sort -z | xargs -0 sha256sum"
    script = f"(cd '{src}' && {listing}) > '{out}/src.txt' && (cd '{dst}' && {listing}) > '{out}/dst.txt' " \
             f"&& cmp '{out}/src.txt' '{out}/dst.txt'"
    return timed(["bash", "-c", script])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, help="use a copy of this library instead of generated data")
    parser.add_argument("--size-mb", type=int, default=1024, help="generated library size (default 1024)")
    parser.add_argument("--scale-files", type=int, default=10_000, help="file count of the re-run scaling pair")
    parser.add_argument("--repeat", type=int, default=3, help="alternating trials of the first run (median)")
    parser.add_argument("--keep", action="store_true", help=f"keep {DATA} afterwards")
    args = parser.parse_args()
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    try:
        run(args)
    finally:
        if not args.keep:
            shutil.rmtree(DATA, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    src = DATA / "library"
    started = time.perf_counter()
    if args.library:
        shutil.copytree(args.library, src, symlinks=True)
        files = sum(1 for p in src.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    else:
        files, size = build_library(src, args.size_mb << 20)
    print(f"library: {files} files, {size / 1e6:.0f} MB (built in {time.perf_counter() - started:.1f} s) at {src}")

    samples: dict[str, list[float]] = {"ours": [], "rsync": [], "compare": [], "ours_again": [], "inside": [],
                                       "rsync_again": []}
    for trial in range(args.repeat):  # alternate the two procedures: the machine is shared and noisy
        for folder in ("ws", "target-mobius", "target-rsync"):
            shutil.rmtree(DATA / folder, ignore_errors=True)
        ws = workspace(DATA / "ws", src)
        samples["ours"].append(migrate(ws, DATA / "target-mobius")[0])
        again, inside = migrate(ws, DATA / "target-mobius")
        samples["ours_again"].append(again)
        samples["inside"].append(inside)
        rsync_dst = DATA / "target-rsync"
        samples["rsync"].append(timed(["rsync", "-a", "--checksum", f"{src}/", f"{rsync_dst}/"]))
        samples["compare"].append(sha256_compare(src, rsync_dst, DATA))
        samples["rsync_again"].append(timed(["rsync", "-a", "--checksum", f"{src}/", f"{rsync_dst}/"]))
        print(f"  trial {trial + 1}: mobius {samples['ours'][-1]:.2f} s, runbook "
              f"{samples['rsync'][-1] + samples['compare'][-1]:.2f} s")
    startup = min(timed([*MOBIUS, "version"]) for _ in range(3))
    med = {key: statistics.median(values) for key, values in samples.items()}
    ours, rsync, compare = med["ours"], med["rsync"], med["compare"]
    ours_again, ours_again_inside, rsync_again = med["ours_again"], med["inside"], med["rsync_again"]
    runbook = statistics.median(r + c for r, c in zip(samples["rsync"], samples["compare"], strict=True))

    print()
    print(f"{'step (median of ' + str(args.repeat) + ' alternating trials)':<58}{'seconds':>9}")
    print(f"{'mobius media migrate (copy, fsync, re-read every byte)':<58}{ours:>9.2f}")
    print(f"{'runbook: rsync -a --checksum':<58}{rsync:>9.2f}")
    print(f"{'runbook: sha256sum of both trees + cmp':<58}{compare:>9.2f}")
    print(f"{'runbook total':<58}{runbook:>9.2f}")
    print(f"{'mobius re-run, nothing changed (whole command)':<58}{ours_again:>9.2f}")
    print(f"{'  of which inside migrate() (walk + stat + journal)':<58}{ours_again_inside:>9.3f}")
    print(f"{'  `mobius version` alone (interpreter + CLI imports)':<58}{startup:>9.2f}")
    print(f"{'rsync -a --checksum re-run, nothing changed':<58}{rsync_again:>9.2f}")
    print()
    print(f"first run: runbook / mobius = {runbook / ours:.2f}x  (target >= 3x)")
    print(f"re-run:    rsync / mobius   = {rsync_again / ours_again:.2f}x for the whole command, "
          f"{rsync_again / max(ours_again_inside, 1e-3):.0f}x for the migrate work itself (target > 1x)")

    n = args.scale_files
    small, large = DATA / "scale-small", DATA / "scale-large"
    build_many(small, n, 4096, seed=2)
    build_many(large, n, 40960, seed=3)
    times, rsyncs = {}, {}
    for name, lib in (("small", small), ("large", large)):
        scale_ws = workspace(DATA / f"ws-{name}", lib)
        migrate(scale_ws, DATA / f"target-{name}")
        times[name] = min((migrate(scale_ws, DATA / f"target-{name}") for _ in range(3)), key=lambda t: t[0])
        timed(["rsync", "-a", "--checksum", f"{lib}/", f"{DATA / f'rsync-{name}'}/"])
        rsyncs[name] = min(timed(["rsync", "-a", "--checksum", f"{lib}/", f"{DATA / f'rsync-{name}'}/"])
                           for _ in range(3))
    print()
    print(f"re-run with nothing changed, {n} files each (best of 3): whole command / inside migrate() / rsync")
    for name, size in (("small", 4096), ("large", 40960)):
        wall, inside = times[name]
        print(f"  {n} files x {size // 1024:>2} KiB ({n * size / 1e6:>4.0f} MB): {wall:6.2f} s / {inside:6.2f} s / "
              f"{rsyncs[name]:6.2f} s")
    print(f"  10x the bytes: mobius x{times['large'][0] / times['small'][0]:.2f} (inside "
          f"x{times['large'][1] / max(times['small'][1], 1e-3):.2f}), rsync x{rsyncs['large'] / rsyncs['small']:.2f}")


if __name__ == "__main__":
    os.environ.pop("MOBIUS_LIBRARY_DIR", None)
    main()

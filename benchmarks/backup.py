"""Benchmark: `mobius backup create` + `mobius backup verify` against the runbook's shell procedure.

In one run, on the same library, each step once (warm page cache: dropping caches needs root
and would penalise whichever step runs first; the numbers say "warm"):
  mobius     `python -m mobius backup create` (writes and fsyncs; every member checked by a child
             process as it is written, every byte re-read from the device; retention)
             + `python -m mobius backup verify` (the real CLI, in subprocesses); after create, that
             verify hashes every archive byte and parses no member (same sha256 as when create checked
             every member); `verify --deep` parses every member again and is timed too
  shell      the runbook's scripts/backup_library.sh steps: `tar -czf` + `sha256sum` + `sha256sum -c`
  raw bound  read + sha256 every library file with Python's hashlib, in parallel (2 threads),
             and the same single-threaded
Targets (issue 2): mobius >= 8x faster than the shell procedure on media-like (incompressible)
data, >= 3x on compressible data, and verify within 1.3x of the raw bound.

    python benchmarks/backup.py                       # ~1 GB media-like + ~1 GB compressible
    python benchmarks/backup.py --size-mb 200         # quick
    python benchmarks/backup.py --kind media --library /path/to/uploads
    python benchmarks/backup.py --codecs              # also compare compressors in-process (zstd/gzip/none)
    python benchmarks/backup.py --kind small          # 100,000 files of 1-4 KB in 100 folders (issue 9)
    python benchmarks/backup.py --repository --kind small --small-files 100000   # snapshots vs restic and borg
    python benchmarks/backup.py --repository --kind media --size-mb 1024
    python benchmarks/backup.py --repository --kind small --small-files 2000 --s3   # also on S3 (moto)
    python benchmarks/backup.py --repository --kind small --small-files 2000 --s3-only   # S3 alone

--repository (issue 20): the snapshot repository side by side with Debian's restic and borgbackup
(installed with apt-get when missing), steps interleaved (each step runs for every tool before the
next step), page cache dropped before each backup, check and restore when we may (root), each
process's peak RSS from wait4:
  first backup, then its full read-back check (`backup verify --read-data`, `restic check
  --read-data`, `borg check --verify-data`); a repeat backup with nothing changed; a backup after
  1% of the files were rewritten; disk used by the repository after those 3 backups; a restore of
  the last snapshot into an empty folder. Medians of --runs runs (default 3, each on fresh
  repositories) with the ratio restic / mobius; --s3 repeats it with mobius's and restic's
  repositories in a bucket on a moto server (borg has no S3 backend). restic encrypts always (its
  0.14 repository format has no compression); borg runs with
  `--encryption none`; mobius without recipients (no encryption). Each cell also gives the process's
  CPU seconds (user + system, GNU time): on the shared 2-core machine, wall time mostly measures the load.

Results (issue 20, one run each, 2026-12-05, load average 11-18 on 2 cores: the machine was shared by
other engineers' test suites; ratios are restic / mobius, above 1 mobius faster; wall (cpu)):
  20,000 files of 1-4 KB (49 MiB), local, load 13-11:  first backup 0.59x (1.08x), full check 0.67x
    (0.94x), repeat unchanged 0.54x (0.86x), 1% changed 0.45x (0.86x), restore 1.09x (1.48x), disk
    1.03x; borg 3.0x / 2.3x slower than mobius on first backup / restore. The same library a little
    earlier (load 4.8, before this round's changes): first 1.39x, check 0.86x, repeat 0.98x, 1% 1.29x,
    restore 1.24x; first + check 1.22x faster than restic and 2.6x than borg.
  2,000 files, local, load 14-18: first 0.45x (0.63x), check 0.47x (0.38x), repeat 0.31x (0.51x),
    1% 0.56x (0.39x), restore 0.40x (0.34x): at this size each command is mostly interpreter start-up
    (with caches dropped, ~700 Python files read from disk; restic is one binary).
  2,000 files, S3 (moto), same run: first 0.22x (0.41x), check 0.19x, repeat 0.33x, 1% 0.38x, restore
    0.24x; peak memory 71 / 65 / 88 MB (first / repeat / restore) against 95 / 87 / 125 MB before the
    botocore store (restic 59-75 MB). Before this round (docs/backup.md, load 11-15): 0.30x, 0.25x,
    0.19x, 0.26x, 0.22x. Packs now move through the executor, several at once, which pays with many
    packs (not at 2,000 small files: one pack).
  In-process CPU of a repeat of 20,000 unchanged files (write_snapshot_of, best of 4): 0.57-0.60 s
  against 0.73-0.75 s before. 100,000 files and 1 GiB of media were not re-run this round (the load).

Results (issue 20, compact index / threaded walk / pipelined restore round, 2026-12-05, one run each, load
average 9-19 on 2 cores and sha256 at 180-210 MiB/s instead of 1,600 quiet: wall times mostly measure the
load, the CPU ratios are the steadier figure; restic / mobius, wall (cpu)):
  100,000 files of 1-4 KB, local: first backup 0.64x (1.23x), full check 1.76x (1.35x), repeat unchanged
    0.45x (1.04x), 1% changed 1.30x (1.28x), restore 1.49x (1.39x), disk 256.7 / 267.4 MiB;
    peak MB mobius / restic: first 87 / 110,
    check 104 / 78, repeat 97 / 79, 1% 92 / 97, restore 87 / 131. The same run with the earlier commit of
    this round (index + walk, restore not yet pipelined), load 10-13: first 0.76x (1.21x), check 1.76x
    (1.31x, 131 MB before the check's per-blob name table went), repeat 0.46x (1.13x), 1% 1.39x (1.20x),
    restore 1.31x (1.63x); disk after 3 backups 258 MiB against restic's 270 (1.05x).
  1 GiB of media (594 files), local, first measurement since the repository landed, main before this round
    (load 8-9): first 0.65x (1.04x), check 0.62x (1.12x), repeat 0.52x (0.33x), 1% 0.79x (0.56x), restore
    0.41x (0.77x), peak 154 MB against restic's 133 on the first backup; after (load 18-19): first 0.61x
    (1.12x), check 1.13x (1.23x), repeat 0.34x (0.45x), 1% 0.55x (0.42x), restore 0.80x (1.14x); peak 112 /
    141 MB (first), 53 / 85 (check), 39 / 31 (repeat), 75 / 91 (restore); disk 1025.0 / 1024.3 MiB.
    On media the first backup waits on the device (63 s wall for 9.6 s of CPU): each pack is fsynced,
    then re-read from the device before the next one is written. The repeats are ~0.5 s of CPU, most of
    it the interpreter starting (restic: one binary).
  In-process at 100,000 blobs (same repository, main / now, interleaved twice): index held in memory 35.5 /
  20.5 MB, loaded in 0.23-0.27 / 0.15 s CPU (and create loaded it twice on main, once for the leftover
  sweep); parent snapshot's files 42.9 / 20.8 MB; `backup verify` of 4 such snapshots peaks at 201 / 84 MB.

Results (issue 20, repository speed round "bkfirst", 2026-12-05, one run each, load average 4-14 on 2 cores
(sha256 ran at 220-1,100 MiB/s against ~1,700 quiet): wall times mostly measure the load; restic / mobius,
wall (cpu)). Changes: stored zstd frames for bytes zstd cannot shrink (level 3 cost 1.6 s of CPU per GiB
of media for a ratio of 1.000); a pack's fsync and device check on a worker thread while the next pack
fills (renames stay on the main thread, in order); packs written with O_DIRECT through a writer thread
and read back with O_DIRECT (perf: copying write() into the page cache was 26-43% of a media backup's
CPU, copying reads out of it 7-14%); stored frames read from their raw blocks; restore writes on other
threads, large files with O_DIRECT; listing and entry spool written through 1 MiB buffers.
  1 GiB of media (594 files), main before (load 4-8): first 1.12x (1.14x), check 0.97x (1.11x), repeat
    0.41x (0.31x), 1% 0.44x (0.35x), restore 0.54x (0.99x); first + check 26.8 s against restic's 28.7.
  after (load 8-10): first 1.10x (2.18x), check 1.46x (1.98x), repeat 0.55x (0.27x), 1% 0.52x (0.36x),
    restore 1.50x (1.76x); first + check 18.2 s against restic's 21.1 (1.16x); CPU seconds first 7.47 ->
    4.94 (restic 10.79), check 3.53 -> 1.96, restore 5.86 -> 3.93; peak MB (mobius / restic) first 130 /
    124 (with 4 MiB O_DIRECT buffers; now 2 MiB), check 53 / 79, restore 79 / 85. The first backup's wall
    (15.4 s for 4.9 s of CPU) waits on the device: 1 GiB read, 1 GiB written, 1 GiB read back. The
    repeats are ~0.5 s of CPU, ~0.35 s of it the interpreter starting and importing the CLI.
  100,000 files of 1-4 KB, before (same round, load 11, before O_DIRECT and the 1 MiB spool buffers):
    first 0.92x (1.18x), check 0.66x (1.31x), repeat 1.01x (1.21x), 1% 0.98x (1.19x), restore 1.09x
    (1.44x); after (load 8-9): first 1.38x (1.25x), check 1.52x (1.56x), repeat 0.99x (1.22x), 1% 1.01x
    (1.26x), restore 1.38x (1.38x); first + check 19.2 s against restic's 27.2 (1.42x); peak MB (mobius /
    restic) first 107 / 113, check 105 / 84, repeat 102 / 81, 1% 96 / 95, restore 87 / 127 (check and
    repeat were over restic's before this round too: the index and the parent's files in memory).
    Disk after 3 backups in that run 281.5 / 267.4 MiB (0.95x): groups of small files were then written
    at zstd level 1, which found fewer repeats than level 3 (these files are slices of one random MiB);
    back at level 3 the first backup stores 180.3 MiB instead of 205.3 (in-process, same library).
  In-process repeat of 100,000 unchanged files: 3.0 s -> 0.5 s inside write() on the listing and entry
    spool (a write per 8 KiB let the walk's 8 threads take the GIL each time; now one per MiB).

Results (issue 20, many-small-files round "bksmall", 2026-12-05, `--repository --kind small --small-files
100000 --runs 1`, one run each; restic / mobius, wall (cpu)). Changes: a repeat reads the parent's lines
alongside the listing and copies an unchanged file's line (no parent dict, no parse); verify marks
referenced blobs per index row and checks packs frame by frame; tar header checksums by zlib.adler32 and
blob headers from a template; groups of small files compressed on their own thread.
  main before (quiet, the lead's last stop): first 1.00x, check 1.08x, first + check 1.02x, repeat 0.78x,
    1% 0.87x, restore 1.07x; peak MB check 104 / 85, repeat 100 / 80. Same day, load 4-6: first 1.27x
    (1.20x), check 1.05x (1.45x), repeat 0.83x (1.01x), 1% 1.09x (1.26x), restore 1.56x (1.32x); peak
    first 110 / 108, check 105 / 86, repeat 101 / 85, 1% 104 / 95.
  after the parent lines and the verify marks (load 8-10): first 1.27x (1.39x), check 1.65x (1.81x), repeat
    1.66x (1.86x), 1% 1.07x (1.75x), restore 1.13x (1.48x); peak first 112 / 137, check 74 / 84, repeat
    72 / 79, 1% 79 / 104, restore 88 / 128.
  after all of it (load 5-6): first 1.30x (1.34x), check 1.83x (2.00x), first + check 16.6 s against
    restic's 22.8 (1.37x) and borg's 39.1; repeat 2.70x (1.92x), 1% 1.01x (1.59x), restore 1.49x (1.00x);
    peak MB first 116 / 111, check 73 / 80, repeat 71 / 76, 1% 82 / 93, restore 89 / 124; disk after 3
    backups 260.4 / 267.6 MiB.
  final (shared zstd contexts, compact sealed tables; load 4-5): first 1.21x (1.32x), check 1.90x (2.03x),
    first + check 17.0 s against restic's 22.0 (1.29x) and borg's 32.1; repeat 1.06x (1.64x), 1% 1.59x
    (1.89x), restore 1.67x (1.81x); peak MB first 117 / 131, check 74 / 85, repeat 72 / 85, 1% 79 / 93,
    restore 88 / 133.

Results (issue 20, S3 round "s3bk", 2026-12-05, `--repository --kind small --small-files 2000 --s3-only`, load
7-9 on 2 cores; docs/backup.md has the A/B figures). HTTP requests per step, main -> now (restic): first
backup 21 -> 14 (16), check 8 -> 8 (17), repeat 18 -> 11 (13), 1% changed 21 -> 14 (16), restore 17 -> 13
(14). Wall ratios restic / mobius in one run of 5 with main beside (caches dropped, every step's wall
spread 2-3x): first 0.45x -> 0.48x, check 0.60x -> 0.51x, repeat 0.49x -> 0.39x, 1% 0.28x -> 0.30x, restore
0.62x -> 0.41x: at this load the benchmark does not separate them; interleaved whole-process A/B does
(warm CPU: repeat 0.68 -> 0.57 s, first + check 1.40 -> 1.19 s; cold: restore 1.63 -> 1.34 s).

Results (issue 20, S3 round "s3fast", 2026-12-05, same command, load 8-9 on 2 cores). Change: the store talks
to an explicit endpoint with credentials in the environment through backup/object_client.py (http.client +
Signature Version 4) instead of botocore, whose import and client cost 0.25-0.35 s of CPU (0.5-0.8 s wall
cold) per command. Restic / mobius, wall (cpu), medians of 3: first 0.76x (0.95x), check 1.14x (0.97x),
repeat 0.96x (0.83x), 1% 0.83x (0.76x), restore 0.64x (0.72x); peak MB 60 / 40 / 46 / 49 / 67 against restic's
64 / 67 / 70 / 64 / 74. Whole processes main / now / restic interleaved (caches dropped, medians of 5): first +
check 3.95 / 2.59 / 2.18 s (cpu 1.69 / 1.02 / 0.98), repeat 2.09 / 1.73 / 1.29 s (cpu 0.81 / 0.51 / 0.36).
Later, main then now (load 7-5): main first 0.88x, check 0.82x, first + check 0.86x, repeat 0.74x, 1% 0.86x,
restore 0.54x; now first 1.13x (cpu 1.27x), check 1.68x (1.93x), first + check 1.31x, repeat 1.33x, 1% 1.56x,
restore 1.31x.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import zstandard

from mobius.backup import verify_archive
from mobius.safety.hashing import hash_files, sha256_file

MB = 1 << 20
WORDS = ["sushi", "nigiri", "maki", "tempura", "sashimi", "dumpling", "wasabi", "chopsticks", "pudding", "guard",
         "priest", "baron", "handmaid", "prince", "king", "countess", "princess", "geisha", "favour", "token",
         "card", "board", "score", "round", "player", "hand", "deck"]


def _media_sizes(total: int, rng: random.Random) -> list[int]:
    """Image/clip-like sizes: ~25% of the bytes in 20-50 MB clips, the rest 100 KB-5 MB images."""
    sizes, clips = [], 0
    while clips < total // 4:
        size = rng.randint(20 * MB, 50 * MB)
        sizes.append(size)
        clips += size
    rest = total - clips
    while rest > 0:
        size = min(rest, int(2 ** rng.uniform(17, 22.3)))  # 128 KiB .. ~5 MiB, log-uniform
        sizes.append(size)
        rest -= size
    return sizes


def build_media(root: Path, total: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i, size in enumerate(_media_sizes(total, rng)):
        game = root / f"game-{i % 12:02d}" / ("clips" if size >= 20 * MB else f"cards/set {i % 5}")
        game.mkdir(parents=True, exist_ok=True)
        suffix = ".mp4" if size >= 20 * MB else rng.choice([".png", ".jpg"])
        (game / f"component-{i:05d}{suffix}").write_bytes(rng.randbytes(size))


def build_compressible(root: Path, total: int, seed: int = 11) -> None:
    """Text-like JSON lines and raw (uncompressed) image-like scans: what gzip does shrink (to ~10-20%)."""
    import numpy as np

    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    rows = [json.dumps({"card": rng.choice(WORDS), "player": rng.randint(1, 6), "score": rng.randint(0, 99),
                        "text": " ".join(rng.choices(WORDS, k=8))}) for _ in range(200_000)]
    text = ("\n".join(rows) + "\n").encode()  # ~20 MB; files are slices at random offsets
    width = 1024
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.float32), (256, 1))
    written, i = 0, 0
    while written < total:
        size = min(total - written, int(2 ** rng.uniform(16, 22)))
        folder = root / f"game-{i % 8:02d}" / ("data" if i % 2 else "scans")
        folder.mkdir(parents=True, exist_ok=True)
        if i % 2:
            start = rng.randrange(0, len(text) - size) if size < len(text) else 0
            (folder / f"log-{i:05d}.jsonl").write_bytes(text[start:start + size])
        else:
            tiles = []
            for _ in range(size // (256 * width * 3) + 1):
                tile = ramp + gen.normal(0, 2, ramp.shape).astype(np.float32) + rng.uniform(-40, 40)
                tiles.append(np.repeat(np.clip(tile, 0, 255).astype(np.uint8)[..., None], 3, axis=2).tobytes())
            data = b"".join(tiles)[:size]
            (folder / f"scan-{i:05d}.ppm").write_bytes(b"P6 %d %d 255\n" % (width, size // (width * 3)) + data)
        written += size
        i += 1


def build_small(root: Path, files: int, *, folders: int = 100, seed: int = 5) -> None:
    """Many small files (card images, tokens, thumbnails): 1-4 KB each, incompressible, in `folders` folders."""
    rng = random.Random(seed)
    block = rng.randbytes(MB)
    per = -(-files // folders)
    for d in range(folders):
        folder = root / f"set-{d:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(d * per, min(files, (d + 1) * per)):
            size = rng.randint(1024, 4096)
            start = rng.randint(0, len(block) - size)
            (folder / f"card {i:07d}.webp").write_bytes(block[start:start + size])


def tree_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


def timed(label: str, fn) -> float:
    os.sync()  # no step pays for the previous one's writeback
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    print(f"  {label:<40} {seconds:6.2f} s", flush=True)
    return seconds


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def raw_bound(library: Path, workers: int) -> None:
    files = (p for p in sorted(library.rglob("*")) if p.is_file() and not p.is_symlink())
    for _path, digest in hash_files(files, workers=workers):
        assert isinstance(digest, str)


def compare_codecs(library: Path) -> None:
    """Compress every file's bytes in-process with each candidate (output discarded): speed and ratio."""
    files = [p for p in sorted(library.rglob("*")) if p.is_file()]
    candidates = {
        "zstd -1": lambda: zstandard.ZstdCompressor(level=1).compressobj(),
        "zstd -3": lambda: zstandard.ZstdCompressor(level=3).compressobj(),
        "zstd -3, 2 threads": lambda: zstandard.ZstdCompressor(level=3, threads=2).compressobj(),
        "gzip -6 (zlib)": lambda: zlib.compressobj(6, zlib.DEFLATED, 31),
        "gzip -1 (zlib)": lambda: zlib.compressobj(1, zlib.DEFLATED, 31),
    }
    total = sum(p.stat().st_size for p in files)
    print(f"  compressors over {total / MB:.0f} MiB (in-process, output discarded):")
    for name, make in candidates.items():
        compressor, out = make(), 0
        started = time.perf_counter()
        for path in files:
            with open(path, "rb") as handle:
                while chunk := handle.read(MB):
                    out += len(compressor.compress(chunk))
        out += len(compressor.flush())
        seconds = time.perf_counter() - started
        print(f"    {name:<20} {seconds:7.2f} s  {total / MB / seconds:7.0f} MiB/s  ratio {out / total:.3f}")


def bench(kind: str, library: Path, work: Path, codecs: bool) -> dict[str, float]:
    files, total = tree_bytes(library)
    print(f"\n== {kind}: {files} files, {total / MB:.0f} MiB in {library} (warm cache, each step once)")
    ws = work / f"ws-{kind}"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    (ws / ".env").write_text(f"MOBIUS_LIBRARY_DIR={library}\nMOBIUS_BACKUP_DIR={ws / 'backups'}\n")
    mobius = [sys.executable, "-m", "mobius"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    raw_bound(library, 2)  # warm the page cache for everyone
    result: dict[str, float] = {}
    created: dict = {}

    def create() -> None:
        created.update(json.loads(run([*mobius, "backup", "create", "--json", "-w", str(ws)], env=env).stdout))

    result["create"] = timed("mobius backup create", create)
    archive = Path(created["path"])
    result["verify"] = timed("mobius backup verify", lambda: run([*mobius, "backup", "verify", str(archive),
                                                                  "--json", "-w", str(ws)], env=env))
    result["verify_deep"] = timed("mobius backup verify --deep", lambda: run(
        [*mobius, "backup", "verify", str(archive), "--deep", "--json", "-w", str(ws)], env=env))
    result["mobius"] = result["create"] + result["verify"]
    result["test_restore"] = timed("mobius backup test-restore", lambda: run(
        [*mobius, "backup", "test-restore", str(archive), "--json", "-w", str(ws)], env=env))
    result["verify_lib"] = timed("verify_archive(deep=True) in-process",
                                 lambda: verify_archive(archive, deep=True))
    print(f"    (create's wait after the write, re-read + the checker's last members: "
          f"{created['verify_seconds']:.2f} s; archive "
          f"{created['archive_bytes'] / MB:.0f} MiB, {created['compression']})")
    shell_dir = work / f"shell-{kind}"
    shutil.rmtree(shell_dir, ignore_errors=True)
    shell_dir.mkdir()
    name = "library_backup.tar.gz"
    result["tar_czf"] = timed("shell: tar -czf", lambda: run(["tar", "-czf", str(shell_dir / name), "-C",
                                                              str(library.parent), library.name]))
    result["sha256sum"] = timed("shell: sha256sum", lambda: (shell_dir / f"{name}.sha256").write_text(
        run(["sha256sum", name], cwd=shell_dir).stdout))
    result["sha256sum_c"] = timed("shell: sha256sum -c", lambda: run(["sha256sum", "-c", f"{name}.sha256"],
                                                                     cwd=shell_dir))
    result["shell"] = result["tar_czf"] + result["sha256sum"] + result["sha256sum_c"]
    result["raw2"] = timed("raw bound: hashlib, 2 threads", lambda: raw_bound(library, 2))
    result["raw1"] = timed("raw bound: hashlib, 1 thread", lambda: raw_bound(library, 1))
    result["archive_raw"] = timed("raw: sha256 of the archive file", lambda: sha256_file(archive))
    gz = (shell_dir / name).stat().st_size
    print(f"    (gzip archive {gz / MB:.0f} MiB, ratio {gz / total:.3f}; mobius archive ({created['compression']}) "
          f"ratio {created['archive_bytes'] / total:.3f}, tar headers included)")
    if codecs:
        compare_codecs(library)
    shutil.rmtree(shell_dir, ignore_errors=True)
    shutil.rmtree(ws, ignore_errors=True)
    speedup = result["shell"] / result["mobius"]
    target = {"media": 8, "compressible": 3, "small": 3}.get(kind, 3)
    print(f"  mobius create+verify {result['mobius']:.2f} s vs shell {result['shell']:.2f} s: "
          f"{speedup:.1f}x faster (target >= {target}x) {'OK' if speedup >= target else 'MISSED'}")
    deep = result["create"] + result["verify_deep"]
    print(f"  (with verify --deep: {deep:.2f} s, {result['shell'] / deep:.1f}x)")
    print(f"  `mobius backup verify` (with ~0.5 s of interpreter start) / raw bound, 1 thread: "
          f"{result['verify'] / result['raw1']:.2f}x")
    for label, bound in (("raw bound, 2 threads", result["raw2"]), ("raw bound, 1 thread", result["raw1"])):
        ratio = result["verify_lib"] / bound
        verdict = "OK" if ratio <= 1.3 else "MISSED"
        print(f"  verify_archive(deep=True) / {label}: {ratio:.2f}x (target <= 1.3x) {verdict}")
    print("  (verify hashes every byte twice, the archive for the sidecar and each member for the manifest, on two"
          " threads; the raw bound hashes once)")
    return result


TOOLS = ("mobius", "restic", "borg")


def _drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _measured(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, CPU seconds user + system) of one process, caches dropped first; exits on
    failure. Peak and CPU come from GNU time (a small parent: a child forked from this Python process would
    report our own RSS). On a shared, loaded machine the CPU seconds move far less than the wall time."""
    _drop_caches()
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", rss.name, *map(str, cmd)], env=env, cwd=cwd,
                              capture_output=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                     f"{(proc.stdout + proc.stderr).decode(errors='replace')[-2000:]}")
        peak_kb, user, system = rss.read().split()[-3:]
    return seconds, int(peak_kb) / 1024, float(user) + float(system)


def _ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("restic", "restic"), ("borg", "borgbackup")) if shutil.which(tool) is None]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        run(["apt-get", "install", "-y", "-q", *missing])


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _change_one_percent(library: Path, seed: int = 3) -> int:
    files = sorted(p for p in library.rglob("*") if p.is_file() and not p.is_symlink())
    rng = random.Random(seed)
    chosen = rng.sample(files, max(1, len(files) // 100))
    for path in chosen:
        path.write_bytes(rng.randbytes(path.stat().st_size))
    return len(chosen)


class _Tool:
    """One tool's commands on one repository (a folder, or with `s3` a bucket on that endpoint)."""

    def __init__(self, name: str, library: Path, work: Path, s3: str | None = None):
        self.name = name
        self.library = library
        self.repo = work / f"repo-{name}"
        self.s3 = s3
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
        if s3:
            self.env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        self.count = 0
        if name == "mobius":
            self.ws = work / "ws-mobius"
            self.ws.mkdir(parents=True, exist_ok=True)
            where = f"s3://{S3_BUCKET}/{work.name}-mobius\nMOBIUS_S3_ENDPOINT_URL={s3}" if s3 else str(self.repo)
            (self.ws / ".env").write_text(f"MOBIUS_LIBRARY_DIR={library}\nMOBIUS_BACKUP_DIR={where}\n")
        elif name == "restic":
            self.env.update(RESTIC_REPOSITORY=f"s3:{s3}/{S3_BUCKET}/{work.name}-restic" if s3 else str(self.repo),
                            RESTIC_PASSWORD="benchmark", RESTIC_CACHE_DIR=str(work / "restic-cache"))
            run(["restic", "init"], env=self.env)
        else:
            self.env.update(BORG_BASE_DIR=str(work / "borg-home"), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
            run(["borg", "init", "--encryption", "none", str(self.repo)], env=self.env)

    def backup(self) -> tuple[float, float]:
        self.count += 1
        if self.name == "mobius":
            return _measured([sys.executable, "-m", "mobius", "backup", "create", "--no-database",
                              "-w", str(self.ws)], env=self.env)
        if self.name == "restic":
            return _measured(["restic", "backup", "--quiet", "."], env=self.env, cwd=self.library)
        return _measured(["borg", "create", f"{self.repo}::b{self.count}", "."], env=self.env, cwd=self.library)

    def check(self) -> tuple[float, float]:
        if self.name == "mobius":
            return _measured([sys.executable, "-m", "mobius", "backup", "verify", "--read-data", "-w", str(self.ws)],
                             env=self.env)
        if self.name == "restic":
            return _measured(["restic", "check", "--read-data"], env=self.env)
        return _measured(["borg", "check", "--verify-data", str(self.repo)], env=self.env)

    def restore(self, target: Path) -> tuple[float, float]:
        target.mkdir(parents=True)
        if self.name == "mobius":
            return _measured([sys.executable, "-m", "mobius", "backup", "restore", "latest", "--to",
                              str(target / "uploads"), "--yes", "-w", str(self.ws)], env=self.env)
        if self.name == "restic":
            return _measured(["restic", "restore", "latest", "--target", str(target)], env=self.env)
        return _measured(["borg", "extract", f"{self.repo}::b{self.count}"], env=self.env, cwd=target)

    def disk_used(self) -> int:
        if not self.s3:
            return _du(self.repo)
        import fsspec

        fs = fsspec.filesystem("s3", endpoint_url=self.s3, key="bench", secret="bench", skip_instance_cache=True,
                               use_listings_cache=False)
        prefix = self.env.get("RESTIC_REPOSITORY", "").rsplit("/", 1)[-1] or f"{self.repo.parent.name}-mobius"
        return sum(info["size"] for info in fs.find(f"{S3_BUCKET}/{prefix}", detail=True).values())


S3_BUCKET = "bench"


class _RequestCounter(logging.Handler):
    """Counts the HTTP requests moto's server answers (werkzeug logs one line per request), per step."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


REQUESTS = _RequestCounter()


def _moto_server() -> tuple[str, object]:
    """moto's S3 server on a free local port with the bench bucket (the test suite's S3 stand-in); its requests
    counted by REQUESTS instead of printed."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.handlers, werkzeug.propagate = [REQUESTS], False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket=S3_BUCKET)
    return endpoint, server


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def bench_repository(kind: str, library: Path, work: Path, *, runs: int = 3, s3: str | None = None) -> None:
    """The snapshot repository against restic and borg on one library, steps interleaved; medians of `runs`
    runs (each on fresh repositories). On S3 (moto): mobius and restic only (borg has no S3 backend)."""
    _ensure_tools()
    names = ("mobius", "restic") if s3 else TOOLS
    files, total = tree_bytes(library)
    caches = "dropped" if _drop_caches() else "NOT dropped (not root)"
    where = f"S3 (moto at {s3})" if s3 else "local folders"
    print(f"\n== {kind}: {files} files, {total / MB:.0f} MiB, repositories in {where}; caches {caches} before "
          f"each step; steps interleaved; medians of {runs} run(s); load average {os.getloadavg()[0]:.1f}",
          flush=True)
    seconds: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    peaks: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    cpus: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    requests: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    disk: dict[str, list[float]] = {name: [] for name in names}
    for number in range(runs):
        run_dir = work / f"run{number}{'-s3' if s3 else ''}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        tools = [_Tool(name, library, run_dir, s3) for name in names]

        def step(label: str, action, tools=tools, number=number) -> None:  # noqa: ANN001
            for tool in tools:
                REQUESTS.take()
                took, peak, cpu = action(tool)
                sent = REQUESTS.take()
                cpus[tool.name].setdefault(label, []).append(cpu)
                seconds[tool.name].setdefault(label, []).append(took)
                peaks[tool.name].setdefault(label, []).append(peak)
                requests[tool.name].setdefault(label, []).append(sent)
                print(f"  run {number + 1} {label:<30} {tool.name:<7} {took:7.2f} s  cpu {cpu:6.2f} s  "
                      f"peak {peak:6.0f} MB" + (f"  {sent:4d} requests" if s3 else ""), flush=True)

        step("first backup", lambda t: t.backup())
        step("full read-back check", lambda t: t.check())
        step("repeat, nothing changed", lambda t: t.backup())
        changed = _change_one_percent(library, seed=3 + number)
        print(f"  (rewrote {changed} files: 1%)", flush=True)
        step("repeat, 1% changed", lambda t: t.backup())
        for tool in tools:
            disk[tool.name].append(tool.disk_used() / MB)
        step("restore of the last snapshot", lambda t, run_dir=run_dir: t.restore(run_dir / "restored" / t.name))
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\n| {kind} ({where}, median of {runs}) | " + " | ".join(names)
          + " | restic / mobius (> 1: mobius faster) |\n| --- |" + " --- |" * (len(names) + 1))
    for label in seconds["mobius"]:
        cells = [f"{_median(seconds[n][label]):.2f} s (cpu {_median(cpus[n][label]):.2f} s), "
                 f"{_median(peaks[n][label]):.0f} MB" + (f", {_median(requests[n][label]):.0f} requests" if s3 else "")
                 for n in names]
        ratio = _median(seconds["restic"][label]) / _median(seconds["mobius"][label])
        cpu_ratio = _median(cpus["restic"][label]) / max(0.01, _median(cpus["mobius"][label]))
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f}x (cpu {cpu_ratio:.2f}x) |")
    print("| disk used after 3 backups | " + " | ".join(f"{_median(disk[n]):.1f} MiB" for n in names)
          + f" | {_median(disk['restic']) / _median(disk['mobius']):.2f}x |")
    print(f"(load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of each generated library (default 1024)")
    parser.add_argument("--kind", choices=("media", "compressible", "small", "both", "all"), default="both",
                        help="both = media + compressible; all = both + small")
    parser.add_argument("--small-files", type=int, default=100_000, help="file count of the small-files library")
    parser.add_argument("--library", type=Path, help="benchmark this folder instead of generating one")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "mobius-bench",
                        help="scratch folder outside the repo (default /tmp/mobius-bench; removed afterwards)")
    parser.add_argument("--codecs", action="store_true", help="also time zstd/gzip levels in-process")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated libraries")
    parser.add_argument("--repository", action="store_true",
                        help="the snapshot repository against restic and borg (issue 20)")
    parser.add_argument("--runs", type=int, default=3, help="--repository: runs per step, medians reported")
    parser.add_argument("--s3", action="store_true", help="--repository: also run mobius and restic with their "
                        "repositories on S3 (a moto server the benchmark starts; requests counted per step)")
    parser.add_argument("--s3-only", action="store_true", help="--repository --s3 without the local folders")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, hashlib sha256 "
          f"{_sha_speed():.0f} MiB/s; data in {args.data}")
    try:
        kinds = {"both": ["media", "compressible"], "all": ["media", "compressible", "small"]}.get(args.kind,
                                                                                              [args.kind])
        for kind in kinds:
            if args.library:
                library = args.library.resolve()
            else:
                library = args.data / f"library-{kind}" / "uploads"
                if not library.exists():
                    started = time.perf_counter()
                    library.mkdir(parents=True)
                    if kind == "small":
                        build_small(library, args.small_files)
                    else:
                        (build_media if kind == "media" else build_compressible)(library, args.size_mb * MB)
                    print(f"built {kind} library in {time.perf_counter() - started:.1f} s")
            if args.repository:
                name = kind if not args.library else "library"
                if not args.s3_only:
                    bench_repository(name, library, args.data, runs=args.runs)
                if args.s3 or args.s3_only:
                    endpoint, server = _moto_server()
                    try:
                        bench_repository(name, library, args.data, runs=args.runs, s3=endpoint)
                    finally:
                        server.stop()
            else:
                bench(kind if not args.library else "library", library, args.data, args.codecs)
            if args.library:
                break
    finally:
        if not args.keep_data:
            shutil.rmtree(args.data, ignore_errors=True)


def _sha_speed() -> float:
    data = os.urandom(64 * MB)
    started = time.perf_counter()
    hashlib.sha256(data).digest()
    return 64 / (time.perf_counter() - started)


if __name__ == "__main__":
    main()

"""Benchmark: `mobius media migrate` (copy + re-read of every byte) against the runbook's procedure.

The runbook's procedure is `rsync -a --checksum SRC/ DST/` followed by a sha256 comparison of both
trees with `sha256sum`. Both run on the same library, in the same run; then each one's re-run when
nothing changed; then the migrate re-run on two libraries with the same file count, one with 10x
the bytes, to show that a re-run's time follows the number of files, not their size.

    python benchmarks/media_migrate.py                 # ~1 GB library, 10,000-file scaling pair
    python benchmarks/media_migrate.py --size-mb 200 --scale-files 2000   # quick
    python benchmarks/media_migrate.py --library PATH  # your own library (copied, never modified)
    python benchmarks/media_migrate.py --small 100000  # 100,000 files of 1-4 KB in 100 folders (issue 25):
        first run against the durable limit (cp -a x8, sync, drop caches, sha256sum x8), re-run against
        rsync -a, interleaved, caches dropped (as root); --runbook adds manifest/verify vs sha256sum;
        --against TREE adds the first run of another checkout's code (TREE/src, e.g. main), interleaved
    python benchmarks/media_migrate.py --small 1000000 --migrate-only   # the 1,000,000-file memory run
    python benchmarks/media_migrate.py --s3 500       # small objects to a local S3 server: in-flight uploads
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("MOBIUS_BENCH_DATA") or "/tmp/mobius-bench-media")
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


def build_small(root: Path, files: int, *, folders: int = 100, seed: int = 5) -> int:
    """Card images, tokens, thumbnails: 1-4 KB each (incompressible), spread over `folders` folders."""
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    per, total = -(-files // folders), 0
    for d in range(folders):
        folder = root / f"set-{d:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(d * per, min(files, (d + 1) * per)):
            size = rng.randint(1024, 4096)
            start = rng.randint(0, len(block) - size)
            (folder / f"card {i:07d}.webp").write_bytes(block[start:start + size])
            total += size
    return total


def peak_timed(cmd: list[str]) -> tuple[float, str, float]:
    """(seconds, stdout, peak resident MiB) of a command, measured by GNU time."""
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {cmd}\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout, int(proc.stderr.strip().splitlines()[-1]) / 1024


def drop_caches() -> bool:
    """Write back and drop the page cache (root only), so the next read comes from the device."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def durable_limit(src: Path, dst: Path, files: int, *, parallel: int = 8) -> float:
    """The fastest verified durable copy C tools make (issue 25): `cp -a` on `parallel` folders at a
    time, `sync`, caches dropped, then `parallel` sha256sum processes re-reading the whole target."""
    per = -(-files // parallel)
    script = (f"mkdir -p '{dst}' && cd '{src}' && ls -A | xargs -d '\\n' -P {parallel} -I{{}} cp -a '{src}/{{}}' "
              f"'{dst}/' && sync && (echo 3 > /proc/sys/vm/drop_caches || true) && cd '{dst}' && "
              f"find . -type f -print0 | xargs -0 -P {parallel} -n {per} sha256sum > /dev/null")
    return timed(["bash", "-c", script])


def run_small(args: argparse.Namespace) -> None:
    """Issue 25: many small files against the durable limit (first run) and `rsync -a` (re-run),
    interleaved, caches dropped before each side of the first-run comparison; as ratios."""
    src = DATA / "small-library"
    started = time.perf_counter()
    size = build_small(src, args.small)
    dropped = drop_caches()
    print(f"library: {args.small} files of 1-4 KB in 100 folders, {size / 1e6:.0f} MB (built in "
          f"{time.perf_counter() - started:.1f} s); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"caches {'dropped before each side' if dropped else 'NOT dropped (needs root)'}")
    target, limit_dst = DATA / "small-mobius", DATA / "small-durable"
    if args.migrate_only:  # the memory run: one first migrate
        ws = workspace(DATA / "ws-small", src)
        seconds, _, peak = peak_timed([*MOBIUS, "media", "migrate", "--to", str(target), "--no-backup", "--yes",
                                       "-w", str(ws), "--json"])
        print(f"  mobius media migrate, first run {seconds:.2f} s, peak {peak:.0f} MiB (target < 300 MiB)")
        return
    samples: dict[str, list[float]] = {"ours": [], "limit": [], "again": [], "rsync_again": [], "peak": [],
                                       "ours_cpu": [], "limit_cpu": [], "other": [], "other_cpu": []}
    for trial in range(args.repeat):
        for folder in (target, limit_dst, DATA / "ws-small"):
            shutil.rmtree(folder, ignore_errors=True)
        ws = workspace(DATA / "ws-small", src)
        cmd = [*MOBIUS, "media", "migrate", "--to", str(target), "--no-backup", "--yes", "-w", str(ws), "--json"]

        def fresh() -> None:  # an empty target and a new workspace for the next mobius side
            for folder in (target, DATA / "ws-small"):
                shutil.rmtree(folder, ignore_errors=True)
            workspace(DATA / "ws-small", src)

        def ours(cmd: list[str] = cmd) -> None:
            fresh()
            drop_caches()
            before = children_cpu()
            seconds, _, peak = peak_timed(cmd)
            samples["ours_cpu"].append(children_cpu() - before)
            samples["ours"].append(seconds)
            samples["peak"].append(peak)

        def limit() -> None:
            drop_caches()
            before = children_cpu()
            samples["limit"].append(durable_limit(src, limit_dst, args.small))
            samples["limit_cpu"].append(children_cpu() - before)

        def other(cmd: list[str] = cmd) -> None:  # --against: another source tree's mobius
            fresh()
            drop_caches()
            before = children_cpu()
            samples["other"].append(timed(["env", f"PYTHONPATH={args.against / 'src'}", *cmd]))
            samples["other_cpu"].append(children_cpu() - before)

        sides = [ours, limit, *([other] if args.against else [])]
        for side in sides[trial % len(sides):] + sides[:trial % len(sides)]:  # each side first in turn
            side()
        against = (f", --against {samples['other'][-1]:.2f} s (CPU {samples['other_cpu'][-1]:.2f} s)"
                   if args.against else "")
        print(f"  trial {trial + 1}: mobius {samples['ours'][-1]:.2f} s (CPU {samples['ours_cpu'][-1]:.2f} s), "
              f"durable limit {samples['limit'][-1]:.2f} s (CPU {samples['limit_cpu'][-1]:.2f} s){against}, "
              f"load {os.getloadavg()[0]:.1f}")
    if args.against:  # the re-runs below need this tree's completed migration in the target
        fresh()
        timed(cmd)
    # re-runs, nothing changed: the source stays the library (issue 25's re-run); page cache warm on both sides
    # (one untimed run each first), interleaved
    again_cmd = ["env", f"MOBIUS_LIBRARY_DIR={src}", *MOBIUS, "media", "migrate", "--to", str(target), "--no-backup",
                 "--yes", "-w", str(DATA / "ws-small"), "--json"]
    rsync_cmd = ["rsync", "-a", f"{src}/", f"{limit_dst}/"]
    timed(again_cmd)
    timed(rsync_cmd)
    cpu: dict[str, list[float]] = {"again": [], "rsync_again": []}
    for trial in range(max(args.repeat, 3)):
        pair = ((again_cmd, "again"), (rsync_cmd, "rsync_again"))
        for command, key in (pair if trial % 2 == 0 else pair[::-1]):
            seconds, used = cpu_timed(command)
            samples[key].append(seconds)
            cpu[key].append(used)
    print(f"  re-runs: mobius {', '.join(f'{t:.2f}' for t in samples['again'])} s; rsync -a "
          f"{', '.join(f'{t:.2f}' for t in samples['rsync_again'])} s; `mobius version` alone "
          f"{min(timed([*MOBIUS, 'version']) for _ in range(3)):.2f} s")
    print(f"  re-runs, CPU (user + sys, the load-independent part): mobius "
          f"{', '.join(f'{t:.2f}' for t in cpu['again'])} s; rsync -a "
          f"{', '.join(f'{t:.2f}' for t in cpu['rsync_again'])} s")
    med = {key: statistics.median(values) for key, values in samples.items() if values}
    print()
    print(f"{'median of ' + str(args.repeat) + ' interleaved trials':<64}{'seconds':>9}")
    if args.against:
        print(f"{'--against ' + str(args.against) + ', first run':<64}{med['other']:>9.2f}")
        print(f"{'  its CPU (user + sys) / this tree`s':<64}{med['other_cpu']:>9.2f} / {med['ours_cpu']:.2f}")
    print(f"{'mobius media migrate, first run (caches dropped before)':<64}{med['ours']:>9.2f}")
    print(f"{'durable limit: cp -a x8 folders, sync, drop caches, sha256sum x8':<64}{med['limit']:>9.2f}")
    print(f"{'mobius re-run of the completed migration (source kept as library), warm':<64}{med['again']:>9.2f}")
    print(f"{'rsync -a re-run, nothing changed, warm':<64}{med['rsync_again']:>9.2f}")
    print()
    print(f"first run: mobius / durable limit = {med['ours'] / med['limit']:.2f}x (target <= 1.15x); "
          f"per trial: {', '.join(f'{o / d:.2f}x' for o, d in zip(samples['ours'], samples['limit'], strict=True))}")
    print(f"re-run:    mobius / rsync -a      = {med['again'] / med['rsync_again']:.2f}x (target <= 1.5x)")
    print(f"peak memory, first run: {max(samples['peak']):.0f} MiB (target < 300 MiB)")
    if args.runbook:
        run_small_runbook(args, src)


def run_small_runbook(args: argparse.Namespace, src: Path) -> None:
    """Issue 9's comparisons: manifest and verify against find | sha256sum and sha256sum -c."""
    ws = DATA / "ws-small"
    manifest = DATA / "small.sha256"
    ours_manifest = timed([*MOBIUS, "media", "manifest", str(src), "--out", str(manifest), "-w", str(ws)])
    sums = DATA / "small-sums.txt"
    shell_manifest = timed(["bash", "-c", f"cd '{src}' && find . -type f -print0 | sort -z | xargs -0 sha256sum "
                                          f"> '{sums}'"])
    ours_verify = timed([*MOBIUS, "media", "verify", str(src), "--against", str(manifest), "-w", str(ws)])
    shell_verify = timed(["bash", "-c", f"cd '{src}' && sha256sum -c --quiet '{sums}'"])
    print(f"manifest:  mobius / sha256sum = {ours_manifest / shell_manifest:.2f}x (target <= 1x)")
    print(f"verify:    mobius / sha256sum -c = {ours_verify / shell_verify:.2f}x (target <= 1x)")


def run_s3(args: argparse.Namespace) -> None:
    """Many small objects to a local S3 server (moto): uploads one at a time against several in flight."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "MOBIUS_S3_ENDPOINT_URL": endpoint}
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="media")
        src = DATA / "s3-library"
        build_small(src, args.s3, folders=10)
        print(f"library: {args.s3} files of 1-4 KB; moto S3 server at {endpoint}")
        rates = {}
        for in_flight in (1, 4, 32):
            ws = workspace(DATA / f"ws-s3-{in_flight}", src)
            cmd = [*MOBIUS, "media", "migrate", "--to", f"s3://media/lib-{in_flight}", "--no-backup", "--yes",
                   "--workers", str(in_flight), "-w", str(ws), "--json"]
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"failed: {proc.stdout} {proc.stderr}")
            rates[in_flight] = args.s3 / (time.perf_counter() - started)
            print(f"  --workers {in_flight:>2} (uploads in flight): {rates[in_flight]:7.1f} files/s")
        print(f"s3: 32 in flight / one at a time = {rates[32] / rates[1]:.2f}x files/s")
    finally:
        server.stop()


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


def children_cpu() -> float:
    """User + sys seconds of every child waited for so far (the copy's worker processes included)."""
    times = os.times()
    return times.children_user + times.children_system


def cpu_timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + sys of the command and its children). On a shared machine the
    wall time moves with the load; the CPU time much less."""
    before = os.times()
    seconds = timed(cmd)
    after = os.times()
    return seconds, (after.children_user - before.children_user) + (after.children_system - before.children_system)


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
    parser.add_argument("--small", type=int, metavar="FILES", help="small-files mode: FILES files of 1-4 KB")
    parser.add_argument("--s3", type=int, metavar="FILES", help="object-storage mode: FILES small files to moto S3")
    parser.add_argument("--migrate-only", action="store_true", help="small-files mode: only the first migrate")
    parser.add_argument("--runbook", action="store_true", help="small-files mode: also manifest/verify vs sha256sum")
    parser.add_argument("--against", type=Path, metavar="TREE",
                        help="small-files mode: also time the first run of the mobius in TREE/src (e.g. a checkout "
                             "of main), interleaved with the other two sides")
    args = parser.parse_args()
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    try:
        if args.s3:
            run_s3(args)
        elif args.small:
            run_small(args)
        else:
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

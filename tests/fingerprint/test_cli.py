"""`mobius library ...` as a user runs it, including the HTML report opened in headless Chromium."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import imagehash
import numpy as np
import pytest
from PIL import Image

from mobius.fingerprint.algorithm import EXACT, FAST


def test_hash_dupes_similar_rehash_rollback(sqlite_library, mobius):
    ws = str(sqlite_library.root)
    code, hashed = mobius.json("library", "hash", "--workers", "2", "-w", ws)
    assert code == 0 and hashed["hashed"] == 7 and hashed["active"] == EXACT.id
    code, dupes = mobius.json("library", "dupes", "--distance", "6", "-w", ws)
    assert code == 0 and [len(g["members"]) for g in dupes["groups"]] == [2]
    query = sqlite_library.library_path / "boards/board-0.jpg"
    proc = mobius("library", "similar", str(query), "-w", ws)
    expected = str(imagehash.dhash(Image.open(query)))
    assert proc.returncode == 0 and proc.stdout.startswith(expected)
    assert "d=0  " + expected + "  boards/board-0.jpg" in proc.stdout and "scans/board-0 (rescan).jpg" in proc.stdout
    code, moved = mobius.json("library", "rehash", "--to", "fast", "-w", ws)
    assert code == 0 and moved["switched"] and moved["to"] == FAST.id
    proc = mobius("library", "rehash", "--rollback", "-w", ws)
    assert proc.returncode == 0 and f"active   {EXACT.id}" in proc.stdout and "nothing recomputed" in proc.stdout
    code, metrics = mobius.json("library", "metrics", "-w", ws)
    assert code == 0 and metrics["algorithm"] == EXACT.id and metrics["failure_rate"] == 0.0


def test_errors_are_one_line_with_a_hint(sqlite_library, mobius):
    ws = str(sqlite_library.root)
    proc = mobius("library", "dupes", "-w", ws)
    assert proc.returncode == 1 and "no image hashes yet" in proc.stderr and "Traceback" not in proc.stderr
    proc = mobius("library", "rehash", "--to", "dhash8-exact-lanczos-pil9", "-w", ws)
    assert proc.returncode == 1 and "needs Pillow 9" in proc.stderr
    proc = mobius("library", "hash", "--mode", "slow", "-w", ws)
    assert proc.returncode == 1 and "--mode 'slow'" in proc.stderr


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("MOBIUS_TEST_REQUIRE_POSTGRES") == "1":  # CI installs chromium with PostgreSQL
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return found


@pytest.mark.slow
def test_dupes_html_report_renders_thumbnails_in_chromium(sqlite_library, mobius, tmp_path):
    chromium = _chromium()
    lib = sqlite_library.library_path
    red = Image.new("RGB", (200, 150), (230, 20, 20))
    red.paste((20, 20, 230), (100, 0, 200, 150))
    red.save(lib / "red.png")
    red.save(lib / "red-copy.jpg", quality=80)
    ws = str(sqlite_library.root)
    assert mobius("library", "hash", "-w", ws).returncode == 0
    report = tmp_path / "dupes <&>.html"
    proc = mobius("library", "dupes", "--format", "html", "-o", str(report), "-w", ws)
    assert proc.returncode == 0, proc.stderr
    assert report.is_file() and "red-copy.jpg" in report.read_text()
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,900", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).astype(int)
    reddish = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    bluish = (pixels[..., 2] > 180) & (pixels[..., 0] < 80) & (pixels[..., 1] < 80)
    assert reddish.sum() > 2 * 60 * 60 and bluish.sum() > 2 * 60 * 60  # both thumbnails drawn, side by side


@pytest.mark.slow
def test_hash_on_the_dask_executor_stores_the_local_hashes(sqlite_library, mobius):
    """Issue 22 item 7: the same stored rows whichever executor hashed (several batches, variants, a failure)."""
    from images import encode, picture
    from sqlalchemy import text

    from mobius.config import load_workspace
    from mobius.fingerprint import store

    lib = sqlite_library.library_path
    for n in range(70):  # three batches of 32 besides the fixture's images
        (lib / "many" / f"card {n:02}.png").parent.mkdir(exist_ok=True)
        (lib / "many" / f"card {n:02}.png").write_bytes(encode(picture(100 + n, (64, 48)), "PNG"))
    (lib / "many" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    ws = str(sqlite_library.root)
    stored = {}
    for kind in ("local", "dask"):
        proc = mobius("-v", "library", "hash", "--variants", "--workers", "2", "--executor", kind, "--json", "-w", ws)
        assert proc.returncode == 0, proc.stderr
        assert ("executor.started executor=dask" in proc.stderr) == (kind == "dask")  # really hashed there
        with store.session(load_workspace(sqlite_library.root)) as conn, conn.begin():
            stored[kind] = conn.execute(text("SELECT path, algorithm, size_bytes, mtime_ns, sha256, hash, variants, "
                                             "error FROM image_fingerprints ORDER BY path")).all()
            conn.execute(text("DELETE FROM image_fingerprints"))
            conn.execute(text("DELETE FROM fingerprint_active"))
    assert len(stored["local"]) == 78 and sum(row.error is not None for row in stored["local"]) == 1
    assert stored["dask"] == stored["local"]

"""Measure the score distributions behind the timeline checks' limits (docs/golden.md, "Thresholds").

For each sample game: render, generate its golden, build the perturbation suite of the tests
(tests/golden/perturb.py: the same changes, another game's soundtrack) plus CRF 28 and AAC 64 kb/s
re-encodes (reported, not required to pass), and check every file. Prints, per check, the scores of
"same" (re-encodes, a re-render) and of "changed" (the perturbations, each scored by the check that must
catch it), the chosen limit and the margin on each side.

Usage: python benchmarks/golden_thresholds.py [--games sushi-go,love-letter,hanamikoji]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _perturb():
    spec = importlib.util.spec_from_file_location("perturb", ROOT / "tests" / "golden" / "perturb.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["perturb"] = module
    spec.loader.exec_module(module)
    return module


def _motion(frames):
    """Each frame's largest block difference from the frame before (0 for the first)."""
    import numpy as np

    from mobius.measure import thumbnails

    if len(frames) < 2:
        return np.zeros(len(frames))
    return np.concatenate([[0.0], thumbnails.largest_block_difference(
        thumbnails.take(frames.planes(), np.arange(len(frames) - 1)),
        thumbnails.take(frames.planes(), np.arange(1, len(frames))))])


def still_scores(golden_folder: Path, video: Path, frozen: tuple[float, float] | None) -> float:
    """The freeze detector's inputs (mobius.measure.alignment.STILL): for a frozen file, the most a frame
    inside the frozen range moves (it must stay <= STILL); otherwise the least a frame moves where the
    golden frame it shows moves (> MOVING: it must stay > STILL)."""
    import numpy as np

    from mobius.golden.signatures import read_signatures
    from mobius.measure import alignment
    from mobius.measure.decode import read_every_frame

    golden = read_signatures(golden_folder)
    _, frames = read_every_frame(video, [], with_audio=False)
    current = _motion(frames)
    times = np.asarray(frames.times, dtype=np.float64)
    if frozen is not None:
        inside = (times > frozen[0] + 1e-6) & (times < frozen[1] - 1e-6)  # the frames after the frozen picture
        return float(current[inside].max())
    path = alignment.align(golden.frames.y, frames.y).path
    moving = _motion(golden.frames)[path] > alignment.MOVING
    moving[0] = False
    return float(current[moving].min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", default="sushi-go,love-letter,hanamikoji")
    args = parser.parse_args()
    games = args.games.split(",")
    perturb = _perturb()
    from mobius.config import load_workspace
    from mobius.golden import check_video, generate
    from mobius.golden.baseline import Thresholds, baseline_folder
    from mobius.render import render_game
    from mobius.workspace.init import initialize

    temp = Path(tempfile.mkdtemp(prefix="mobius-golden-thresholds-"))
    same: dict[str, list[tuple[str, float]]] = {}
    changed: dict[str, list[tuple[str, float]]] = {}
    informative: dict[str, list[tuple[str, float]]] = {}
    try:
        initialize(temp / "ws", sample=True)
        ws = load_workspace(temp / "ws")
        sources = {g: render_game(ws, g).path for g in games}
        for k, game in enumerate(games):
            generate(ws, game, sources[game])
            folder = temp / game
            folder.mkdir()
            decoded = perturb.decode(sources[game])
            other = perturb.decode(sources[games[(k + 1) % len(games)]]).audio
            suite = perturb.build_suite(sources[game], folder, decoded, other)
            rerender = render_game(ws, game, folder / "rerender.mp4").path
            suite.append(perturb.Perturbation("re-render", rerender))
            suite.append(perturb.Perturbation("CRF 28 + AAC 64 kb/s (informative)", perturb.write(
                sources[game], folder / "crf28.mp4", frames=decoded.frames, crf=28, audio=decoded.audio,
                bitrate=64_000)))
            for p in suite:
                report = check_video(ws, game, p.path, debug=False)
                scores = {c.name: c for c in report.checks}
                for name in ("frames.content", "audio.content", "audio.bands", "timing.av_offset"):
                    value = abs(float(scores[name].measured or 0.0))
                    if p.expect:
                        if name in p.expect:
                            changed.setdefault(name, []).append((f"{game}: {p.name}", value))
                    else:
                        target = informative if "informative" in p.name else same
                        target.setdefault(name, []).append((f"{game}: {p.name}", value))
                frozen = p.expect.get("frames.frozen")
                if frozen or (not p.expect and "informative" not in p.name):
                    value = still_scores(baseline_folder(ws, game, per_os=False), p.path, frozen[0] if frozen else None)
                    (changed if frozen else same).setdefault("still", []).append((f"{game}: {p.name}", value))
                print(f"{game}: {p.name}: " + ", ".join(
                    f"{n} {scores[n].measured}" for n in ("frames.content", "frames.timing", "frames.frozen",
                                                          "audio.content", "audio.bands", "timing.av_offset")),
                      flush=True)
        limits = Thresholds()
        limit_of = {"frames.content": limits.frame_diff, "audio.content": limits.audio_diff,
                    "audio.bands": limits.band_tol, "timing.av_offset": limits.av_offset_ms}
        print("\n| check | same: max (file) | changed: min (file) | limit | margin same / changed |")
        print("| --- | --- | --- | --- | --- |")
        for name, limit in limit_of.items():
            top = max(same.get(name, [("none", 0.0)]), key=lambda x: x[1])
            low = min(changed.get(name, [("none", float("inf"))]), key=lambda x: x[1])
            print(f"| `{name}` | {top[1]:.3g} ({top[0]}) | {low[1]:.3g} ({low[0]}) | {limit:g} | "
                  f"{limit / top[1] if top[1] else float('inf'):.2g}x / {low[1] / limit:.2g}x |")
            extra = informative.get(name)
            if extra:
                print(f"|   informative | {max(v for _, v in extra):.3g} (CRF 28 + AAC 64) | | | |")
        from mobius.measure import alignment

        calm = min(same.get("still", [("none", float("inf"))]), key=lambda x: x[1])
        frozen = max(changed.get("still", [("none", 0.0)]), key=lambda x: x[1])
        print(f"| frozen-frame motion (levels; `alignment.STILL`) | least where the golden moves: {calm[1]:.3g} "
              f"({calm[0]}) | most inside a frozen second: {frozen[1]:.3g} ({frozen[0]}) | {alignment.STILL:g} | "
              f"{calm[1] / alignment.STILL:.2g}x / {alignment.STILL / frozen[1] if frozen[1] else float('inf'):.2g}x |")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Golden tests share one approved sample workspace (each sample rendered once per session) and
perturbed copies of the sushi-go render, made with PyAV."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import built_once_per_run

from mobius.workspace.init import initialize

GAME = "sushi-go"
BOX = (372, 210, 588, 330)  # 216 x 120 = 25,920 px = 5.0 % of 960 x 540


def run_mobius(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOBIUS_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "mobius", *args], capture_output=True, text=True, env=full_env,
                          stdin=subprocess.DEVNULL, timeout=600)


def remux_with(source: Path, target: Path, *, video_frames=None, audio_gain_db: float | None = None,
               size: tuple[int, int] | None = None) -> Path:
    """A copy of `source` with the video re-encoded through `video_frames(frame, t) -> ndarray yuv420p` or
    scaled to `size` (lossless H.264, so untouched frames decode identically), or the audio re-encoded
    with a gain; the other stream's packets are copied as they are."""
    import av
    import numpy as np

    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as out:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        reencode = video_frames is not None or size is not None
        if reencode:
            width, height = size or (vin.width, vin.height)
            quality = {"qp": "0"} if size is None else {"crf": "23"}  # lossless keeps untouched frames identical
            vout = out.add_stream("libx264", rate=30, options={**quality, "preset": "ultrafast", "threads": "2"})
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        else:
            vout = out.add_stream_from_template(vin)
        if audio_gain_db is not None:
            aout = out.add_stream("aac", rate=ain.rate, layout="stereo")
            aout.bit_rate = 160_000
        else:
            aout = out.add_stream_from_template(ain)
        if reencode:
            for i, frame in enumerate(src.decode(vin)):
                if size is not None:
                    new = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                    new = av.VideoFrame.from_ndarray(new.to_ndarray(), format="yuv420p")
                else:
                    new = av.VideoFrame.from_ndarray(video_frames(frame.to_ndarray(format="yuv420p"), i / 30),
                                                     format="yuv420p")
                new.pts = i
                for packet in vout.encode(new):
                    out.mux(packet)
            for packet in vout.encode():
                out.mux(packet)
        else:
            src.seek(0)
            for packet in src.demux(vin):
                if packet.dts is not None:
                    packet.stream = vout
                    out.mux(packet)
        src.seek(0)
        if audio_gain_db is not None:
            gain = 10 ** (audio_gain_db / 20)
            pts = 0
            for frame in src.decode(ain):
                data = np.ascontiguousarray((frame.to_ndarray() * gain).astype(np.float32))
                new = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
                new.sample_rate, new.pts = ain.rate, pts
                pts += new.samples
                for packet in aout.encode(new):
                    out.mux(packet)
            for packet in aout.encode():
                out.mux(packet)
        else:
            for packet in src.demux(ain):
                if packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
    return target


def draw_box(yuv, t: float):
    """A red box over 5 % of the picture between 9 s and 11 s."""
    if 9.0 <= t < 11.0:
        yuv = yuv.copy()
        x0, y0, x1, y1 = BOX
        h = 540
        yuv[y0:y1, x0:x1] = 81
        u = yuv[h : h + h // 4].reshape(h // 2, 960 // 2)
        v = yuv[h + h // 4 :].reshape(h // 2, 960 // 2)
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 90
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 240
    return yuv


@pytest.fixture(scope="session")
def _approved_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample workspace whose three games were rendered and approved through the real CLI, once per run (every
    worker shares it): only read, by the fixtures that perturb its renders and by the copies below."""
    def build(folder: Path) -> str:
        root = folder / "ws"
        initialize(root, sample=True)
        proc = run_mobius("golden", "approve", "-w", str(root))
        assert proc.returncode == 0, proc.stderr
        return str(root)

    return Path(built_once_per_run(tmp_path_factory, "golden-approved", build))


@pytest.fixture(scope="session")
def approved(_approved_once: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample workspace whose three games were rendered and approved (this worker's copy of the run's one)."""
    root = tmp_path_factory.mktemp("golden") / "ws"
    shutil.copytree(_approved_once, root, symlinks=True)
    return root


@pytest.fixture(scope="session")
def perturbed(_approved_once: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sushi-go render with a box at 9-11 s, with +2 dB audio, and scaled to 1280x720 (made once per run)."""
    def build(folder: Path) -> dict[str, str]:
        source = _approved_once / "out" / GAME / "preview.mp4"
        return {
            "box": str(remux_with(source, folder / "box.mp4", video_frames=draw_box)),
            "gain": str(remux_with(source, folder / "gain.mp4", audio_gain_db=2.0)),
            "scaled": str(remux_with(source, folder / "scaled.mp4", size=(1280, 720))),
        }

    return {name: Path(path) for name, path in built_once_per_run(tmp_path_factory, "golden-perturbed", build).items()}


@pytest.fixture
def workspace(approved: Path, tmp_path: Path) -> Path:
    """A private copy of the approved workspace (goldens, renders) for a test that changes things."""
    root = tmp_path / "ws"
    shutil.copytree(approved, root, symlinks=True, ignore=shutil.ignore_patterns("logs"))
    return root


@pytest.fixture(scope="session")
def suite(_approved_once: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Issue 21's perturbation suite, from the one approved sushi-go render (tests/golden/perturb.py), plus a
    re-render of the same spec: each built once per run."""
    from .perturb import Perturbation

    def build(folder: Path) -> list:
        from mobius.config import load_workspace
        from mobius.render import render_game

        from .perturb import build_suite, decode

        source = _approved_once / "out" / GAME / "preview.mp4"
        decoded = decode(source)
        other = decode(_approved_once / "out" / "love-letter" / "preview.mp4").audio
        rerender = render_game(load_workspace(_approved_once), GAME, folder / "rerender.mp4").path
        made = [*build_suite(source, folder, decoded, other), Perturbation("re-render of the same spec", rerender)]
        return [[p.name, str(p.path), p.expect] for p in made]

    return [Perturbation(name, Path(path), {check: [tuple(span) for span in spans] for check, spans in expect.items()})
            for name, path, expect in built_once_per_run(tmp_path_factory, "golden-suite", build)]


@pytest.fixture(scope="session")
def suite_reports(approved: Path, suite: list, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every suite video checked once per run against the approved goldens (in-process, no debug images; the
    verdicts, plain dataclasses, reach the other workers pickled)."""
    def build(folder: Path) -> str:
        from mobius.config import load_workspace
        from mobius.golden import check_video

        ws = load_workspace(approved)
        reports = {p.name: check_video(ws, GAME, p.path, debug=False) for p in suite}
        (folder / "reports.pickle").write_bytes(pickle.dumps(reports))
        return str(folder / "reports.pickle")

    return pickle.loads(Path(built_once_per_run(tmp_path_factory, "golden-suite-reports", build)).read_bytes())


@pytest.fixture(scope="session")
def every_game_frozen(_approved_once: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """For each sample game's approved render: a frozen second at 12-13 s and a CRF 23 re-encode (the
    re-encode whose noise comes closest to the freeze detector's limits), both with the audio copied; made once
    per run."""
    def build(folder: Path) -> dict[str, dict[str, str]]:
        from .perturb import decode, frozen_second, write

        made = {}
        for game in sorted(spec.stem for spec in (_approved_once / "games").glob("*.yaml")):
            source = _approved_once / "out" / game / "preview.mp4"
            frames = decode(source).frames
            made[game] = {"frozen": str(write(source, folder / f"{game}-frozen.mp4", frames=frozen_second(frames))),
                          "crf23": str(write(source, folder / f"{game}-crf23.mp4", frames=frames, crf=23))}
        return made

    return {game: {kind: Path(path) for kind, path in videos.items()}
            for game, videos in built_once_per_run(tmp_path_factory, "golden-frozen", build).items()}

"""A soundtrack delayed through its stream's start time (ffmpeg's `-itsoffset`) is an audio/video offset.

Real muxing offsets are written as timestamps, not as silence in the samples: the audio stream starts
later (or earlier) than the picture. `timing.av_offset` must measure them from the presentation times,
while the approved render and its AAC re-encodes (whose priming is hidden by the container) still pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from tests.conftest import built_once_per_run

from .conftest import GAME, run_mobius
from .perturb import decode, write

pytestmark = pytest.mark.slow

TOLERANCE_MS = 15.0  # soundprint's hop is 10 ms, refined between hops


def itsoffset(source: Path, target: Path, *, audio_s: float = 0.0, video_s: float = 0.0,
              bitrate: int | None = None) -> Path:
    """`ffmpeg -i SRC -itsoffset S -i SRC -map 0:v -map 1:a -c:v copy -c:a copy|aac` with PyAV: each stream's
    timestamps moved by its offset, the picture's packets copied, the soundtrack's copied (`bitrate` None)
    or decoded and re-encoded to AAC at their moved times."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as out:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        vout = out.add_stream_from_template(vin)
        if bitrate is None:
            aout = out.add_stream_from_template(ain)
        else:
            aout = out.add_stream("aac", rate=ain.rate, layout="stereo")
            aout.bit_rate = bitrate
        shift = round(video_s / vin.time_base)
        for packet in src.demux(vin):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts + shift, packet.dts + shift, vout
                out.mux(packet)
        src.seek(0)
        shift = round(audio_s / ain.time_base)
        if bitrate is None:
            for packet in src.demux(ain):
                if packet.dts is not None:
                    packet.pts, packet.dts, packet.stream = packet.pts + shift, packet.dts + shift, aout
                    out.mux(packet)
        else:
            for frame in src.decode(ain):
                frame.pts += shift
                for packet in aout.encode(frame):
                    out.mux(packet)
            for packet in aout.encode():
                out.mux(packet)
    return target


@pytest.fixture(scope="module")
def shifted(_approved_once: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    """The approved sushi-go render with its soundtrack moved by start time: (video, expected offset in ms), made
    once per run."""
    def build(folder: Path) -> dict[str, tuple[str, float]]:
        source = _approved_once / "out" / GAME / "preview.mp4"
        made = {}
        for ms in (300, 100):
            made[f"audio +{ms} ms, copied"] = (str(itsoffset(source, folder / f"copy{ms}.mp4", audio_s=ms / 1000)), ms)
            made[f"audio +{ms} ms, AAC"] = (str(itsoffset(source, folder / f"aac{ms}.mp4", audio_s=ms / 1000,
                                                          bitrate=160_000)), ms)
        made["picture +100 ms (audio early)"] = (str(itsoffset(source, folder / "video100.mp4", video_s=0.1)), -100)
        return made

    return {name: (Path(path), ms) for name, (path, ms) in
            built_once_per_run(tmp_path_factory, "golden-itsoffset", build).items()}


@pytest.fixture(scope="module")
def same(approved: Path, _approved_once: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The approved render and re-encodes of its soundtrack that must pass (the re-encodes made once per run)."""
    def build(folder: Path) -> dict[str, str]:
        source = _approved_once / "out" / GAME / "preview.mp4"
        audio = decode(source).audio
        made = {}
        for kbps in (96, 128, 192):
            made[f"AAC {kbps} kb/s"] = str(write(source, folder / f"aac{kbps}.mp4", audio=audio, bitrate=kbps * 1000))
        made["AAC 128 kb/s at the decoded times"] = str(itsoffset(source, folder / "aac128pts.mp4", bitrate=128_000))
        return made

    reencoded = built_once_per_run(tmp_path_factory, "golden-same", build)
    return {"approved": approved / "out" / GAME / "preview.mp4", **{name: Path(p) for name, p in reencoded.items()}}


def check(ws: Path, video: Path) -> tuple[int, dict]:
    proc = run_mobius("golden", "check", "--game", GAME, "--in", str(video), "-w", str(ws), "--json")
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["audio +300 ms, copied", "audio +300 ms, AAC", "audio +100 ms, copied",
                                  "audio +100 ms, AAC", "picture +100 ms (audio early)"])
def test_a_soundtrack_moved_by_start_time_fails_the_av_offset_with_the_offset_measured(approved: Path, shifted,
                                                                                      name: str):
    video, expected_ms = shifted[name]
    code, result = check(approved, video)
    assert code == 2, result
    offset = next(c for c in result["checks"] if c["name"] == "timing.av_offset")
    assert not offset["passed"], offset
    assert offset["measured"] == pytest.approx(expected_ms, abs=TOLERANCE_MS), offset
    assert "timing.av_offset" in result["failed"]


@pytest.mark.parametrize("name", ["approved", "AAC 96 kb/s", "AAC 128 kb/s", "AAC 192 kb/s",
                                  "AAC 128 kb/s at the decoded times"])
def test_the_approved_render_and_its_aac_re_encodes_still_pass(approved: Path, same, name: str):
    code, result = check(approved, same[name])
    assert code == 0, result["failed"]
    offset = next(c for c in result["checks"] if c["name"] == "timing.av_offset")
    assert abs(offset["measured"]) <= 2.0, offset


def test_copied_packets_delayed_by_start_time_decode_to_the_same_sound_later(approved: Path, shifted):
    """The reading puts the sound where the container plays it: the copied packets' samples come out 0.3 s
    (less the muxer's rounding, plus the priming the delay uncovers) after the video's start, unchanged."""
    import numpy as np

    from mobius.measure.decode import read_audio

    original, rate = read_audio(approved / "out" / GAME / "preview.mp4")
    moved, moved_rate = read_audio(shifted["audio +300 ms, copied"][0])
    assert moved_rate == rate
    with av.open(str(shifted["audio +300 ms, copied"][0])) as container:
        stream = container.streams.audio[0]
        first = next(container.decode(stream))
        content = round((first.pts + first.samples) * stream.time_base * rate)  # after the uncovered priming
    assert abs(content - 0.3 * rate) <= 0.002 * rate
    assert np.array_equal(moved[:, content:content + rate], original[:, :rate])


def test_a_soundtrack_stamped_an_hour_late_is_not_read_as_an_hour_of_silence(approved: Path, tmp_path: Path):
    from mobius.measure.decode import read_audio

    source = approved / "out" / GAME / "preview.mp4"
    original, rate = read_audio(source)
    late, _ = read_audio(itsoffset(source, tmp_path / "hour.mp4", audio_s=3600.0))
    assert original.shape[1] < late.shape[1] <= 2 * original.shape[1] + rate
    assert not late[:, : original.shape[1] - rate].any()  # the silence lasts as long as the picture

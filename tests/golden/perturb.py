"""The perturbation suite of issue 21, built from one real render with PyAV and numpy.

Each `Perturbation` says what a viewer would notice and which check must name it, over which time
range. Video perturbations re-encode the picture once (libx264 CRF 18 veryfast, as the renderer) and
copy the audio packets; audio perturbations re-encode the soundtrack once (AAC 160 kb/s, as the
renderer) and copy the video packets. `benchmarks/golden_thresholds.py` reuses this file to measure
the score distributions written in docs/golden.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 30
RATE = 48000
BOX = (372, 210, 588, 330)  # 216 x 120 pixels, 5 % of 960 x 540
BAND = (891.0, 1122.0)  # the one-third octave around 1 kHz


@dataclass
class Perturbation:
    """One suite video: what was changed, and for each check that must fail, where it must say it happened
    (an empty `expect`: every check must pass)."""

    name: str
    path: Path
    expect: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class Decoded:
    frames: list[np.ndarray]  # yuv420p arrays (h * 3/2, w)
    audio: np.ndarray  # float32 (2, samples)


def decode(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="yuv420p") for f in container.decode(container.streams.video[0])]
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray() for f in container.decode(container.streams.audio[0])]
    return Decoded(frames, np.concatenate(chunks, axis=1).astype(np.float32))


def write(source: Path, target: Path, *, frames: list[np.ndarray] | None = None, audio: np.ndarray | None = None,
          crf: int = 18, bitrate: int = 160_000) -> Path:
    """`source` with its picture replaced by `frames` and/or its soundtrack by `audio`; the other copied."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as out:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        if frames is not None:
            vout = out.add_stream("libx264", rate=FPS, options={"crf": str(crf), "preset": "veryfast", "threads": "2"})
            vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        else:
            vout = out.add_stream_from_template(vin)
        if audio is not None:
            aout = out.add_stream("aac", rate=RATE, layout="stereo")
            aout.bit_rate = bitrate
        else:
            aout = out.add_stream_from_template(ain)
        if frames is not None:
            for i, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
                frame.pts, frame.time_base = i, Fraction(1, FPS)
                for packet in vout.encode(frame):
                    out.mux(packet)
            for packet in vout.encode():
                out.mux(packet)
        else:
            for packet in src.demux(vin):
                if packet.dts is not None:
                    packet.stream = vout
                    out.mux(packet)
        src.seek(0)
        if audio is not None:
            data = np.ascontiguousarray(audio, dtype=np.float32)
            for start in range(0, data.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + 1024]), format="fltp",
                                                   layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
                for packet in aout.encode(frame):
                    out.mux(packet)
            for packet in aout.encode():
                out.mux(packet)
        else:
            for packet in src.demux(ain):
                if packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
    return target


def with_box(frame: np.ndarray) -> np.ndarray:
    frame = frame.copy()
    x0, y0, x1, y1 = BOX
    h, w = frame.shape[0] * 2 // 3, frame.shape[1]
    frame[y0:y1, x0:x1] = 81
    u = frame[h:h + h // 4].reshape(h // 2, w // 2)
    v = frame[h + h // 4:].reshape(h // 2, w // 2)
    u[y0 // 2:y1 // 2, x0 // 2:x1 // 2] = 90
    v[y0 // 2:y1 // 2, x0 // 2:x1 // 2] = 240
    return frame


def tinted(frame: np.ndarray, amount: int = 20) -> np.ndarray:
    """A colour shift: chroma moved towards red (V up, U down), luma kept."""
    frame = frame.copy()
    h = frame.shape[0] * 2 // 3
    chroma = frame[h:].astype(np.int16)
    quarter = chroma.shape[0] // 2
    chroma[:quarter] -= amount
    chroma[quarter:] += amount
    frame[h:] = np.clip(chroma, 0, 255).astype(np.uint8)
    return frame


def boosted_band(audio: np.ndarray, band: tuple[float, float] = BAND, gain_db: float = 3.0) -> np.ndarray:
    spectrum = np.fft.rfft(audio, axis=1)
    freqs = np.fft.rfftfreq(audio.shape[1], 1 / RATE)
    spectrum[:, (freqs >= band[0]) & (freqs < band[1])] *= 10 ** (gain_db / 20)
    return np.fft.irfft(spectrum, n=audio.shape[1], axis=1).astype(np.float32)


def delayed(audio: np.ndarray, ms: int) -> np.ndarray:
    n = ms * RATE // 1000
    return np.concatenate([np.zeros((audio.shape[0], n), np.float32), audio[:, :-n]], axis=1)


FREEZE = (12 * FPS, 13 * FPS)  # frames: the frozen second, 12-13 s


def frozen_second(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Every frame of 12-13 s replaced by the first of them: one second standing still, the length kept."""
    return [frames[FREEZE[0]] if FREEZE[0] <= i < FREEZE[1] else f for i, f in enumerate(frames)]


def _video_changes(frames: list[np.ndarray], seed: int) -> dict[str, tuple[list[np.ndarray], str, list]]:
    """Boxes for 0.5 s at a random time in every third, a tinted scene, a frozen second, two dropped frames."""
    n = len(frames)
    rng = random.Random(seed)
    seconds = n / FPS
    starts = [round(rng.uniform(k * seconds / 3 + 0.5, (k + 1) * seconds / 3 - 1.0) * FPS) for k in range(3)]
    boxed = list(frames)
    for start in starts:
        for i in range(start, start + FPS // 2):
            boxed[i] = with_box(frames[i])
    tint = (14 * FPS, 16 * FPS)
    shifted = [tinted(f) if tint[0] <= i < tint[1] else f for i, f in enumerate(frames)]
    freeze = FREEZE
    frozen = frozen_second(frames)
    return {
        "box in every third": (boxed, "frames.content", [(s / FPS, (s + FPS // 2) / FPS) for s in starts]),
        "colour shift 14-16 s": (shifted, "frames.content", [(tint[0] / FPS, tint[1] / FPS)]),
        "frozen second 12-13 s": (frozen, "frames.frozen", [(freeze[0] / FPS, freeze[1] / FPS)]),
        "two dropped frames at 10 s": (frames[:10 * FPS] + frames[10 * FPS + 2:], "frames.timing",
                                       [(10.0, 10.0 + 1 / FPS)]),
    }


def _audio_changes(audio: np.ndarray, other_audio: np.ndarray) -> dict[str, tuple[np.ndarray, str, list]]:
    """Another game's track, shifts of 100 and 300 ms, a 250 ms dropout, +3 dB in one band."""
    n = audio.shape[1]
    other = np.zeros_like(audio)
    other[:, :min(n, other_audio.shape[1])] = other_audio[:, :n]
    gap = audio.copy()
    gap[:, round(12.3 * RATE):round(12.55 * RATE)] = 0.0
    whole = [(0.0, n / RATE)]
    return {
        "another game's soundtrack": (other, "audio.content", whole),
        "soundtrack 300 ms late": (delayed(audio, 300), "timing.av_offset", whole),
        "soundtrack 100 ms late": (delayed(audio, 100), "timing.av_offset", whole),
        "250 ms dropout at 12.3 s": (gap, "audio.content", [(12.3, 12.55)]),
        "+3 dB at 891-1122 Hz": (boosted_band(audio), "audio.bands", whole),
    }


def build_suite(source: Path, folder: Path, decoded: Decoded, other_audio: np.ndarray, *,
                seed: int = 21) -> list[Perturbation]:
    """Issue 21's suite in nine files: each video change paired with an audio change in one file (the checks
    of the picture and of the soundtrack are independent, so each pair is two tests for one decode), then
    the must-pass re-encodes (CRF 18 and 23 with AAC 96 and 128 kb/s; AAC 192 kb/s)."""
    video = list(_video_changes(decoded.frames, seed).items())
    audio = list(_audio_changes(decoded.audio, other_audio).items())
    suite = []
    for k, (audio_name, (samples, audio_check, audio_ranges)) in enumerate(audio):
        frames, video_name, expect = None, None, {audio_check: audio_ranges}
        if k < len(video):
            video_name, (frames, video_check, video_ranges) = video[k]
            expect = {video_check: video_ranges, **expect}
        name = f"{video_name} + {audio_name}" if video_name else audio_name
        suite.append(Perturbation(name, write(source, folder / f"changed{k}.mp4", frames=frames, audio=samples),
                                  expect))
    for crf, kbps in ((18, 96), (23, 128)):
        suite.append(Perturbation(f"CRF {crf} + AAC {kbps} kb/s", write(
            source, folder / f"crf{crf}.mp4", frames=decoded.frames, crf=crf, audio=decoded.audio,
            bitrate=kbps * 1000)))
    suite.append(Perturbation("AAC 192 kb/s", write(source, folder / "aac192.mp4", audio=decoded.audio,
                                                    bitrate=192_000)))
    return suite

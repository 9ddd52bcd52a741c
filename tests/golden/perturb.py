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
    name: str
    path: Path
    check: str | None  # the check that must fail (None: every check must pass)
    ranges: list[tuple[float, float]] = field(default_factory=list)  # where it must say it happened


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


def video_suite(source: Path, folder: Path, decoded: Decoded, *, seed: int = 21) -> list[Perturbation]:
    """Boxes in every third, a tinted scene, a frozen second, two dropped frames; re-encodes at CRF 18 and 23."""
    frames = decoded.frames
    n = len(frames)
    rng = random.Random(seed)
    seconds = n / FPS
    starts = [round(rng.uniform(k * seconds / 3 + 0.5, (k + 1) * seconds / 3 - 1.0) * FPS) for k in range(3)]
    boxed = list(frames)
    for start in starts:
        for i in range(start, start + FPS // 2):
            boxed[i] = with_box(frames[i])
    tint = (round(14.0 * FPS), round(16.0 * FPS))
    shifted = [tinted(f) if tint[0] <= i < tint[1] else f for i, f in enumerate(frames)]
    freeze = (12 * FPS, 13 * FPS)
    frozen = [frames[freeze[0]] if freeze[0] <= i < freeze[1] else f for i, f in enumerate(frames)]
    dropped = frames[:10 * FPS] + frames[10 * FPS + 2:]
    return [
        Perturbation("box in every third", write(source, folder / "boxes.mp4", frames=boxed), "frames.content",
                     [(s / FPS, (s + FPS // 2) / FPS) for s in starts]),
        Perturbation("colour shift 14-16 s", write(source, folder / "tint.mp4", frames=shifted), "frames.content",
                     [(tint[0] / FPS, tint[1] / FPS)]),
        Perturbation("frozen second 12-13 s", write(source, folder / "frozen.mp4", frames=frozen), "frames.frozen",
                     [(freeze[0] / FPS, freeze[1] / FPS)]),
        Perturbation("two dropped frames at 10 s", write(source, folder / "dropped.mp4", frames=dropped),
                     "frames.timing", [(10.0, 10.0 + 1 / FPS)]),
        Perturbation("re-encode CRF 18", write(source, folder / "crf18.mp4", frames=frames, crf=18), None),
        Perturbation("re-encode CRF 23", write(source, folder / "crf23.mp4", frames=frames, crf=23), None),
    ]


def audio_suite(source: Path, folder: Path, decoded: Decoded, other_audio: np.ndarray) -> list[Perturbation]:
    """Another game's track, shifts of 100 and 300 ms, a 250 ms dropout, +3 dB in one band; AAC re-encodes."""
    audio = decoded.audio
    n = audio.shape[1]
    other = np.zeros_like(audio)
    other[:, :min(n, other_audio.shape[1])] = other_audio[:, :n]
    gap = audio.copy()
    gap[:, round(12.3 * RATE):round(12.55 * RATE)] = 0.0
    seconds = n / RATE
    suite = [
        Perturbation("another game's soundtrack", write(source, folder / "other.mp4", audio=other), "audio.content",
                     [(0.0, seconds)]),
        Perturbation("soundtrack 100 ms late", write(source, folder / "late100.mp4", audio=delayed(audio, 100)),
                     "timing.av_offset", [(0.0, seconds)]),
        Perturbation("soundtrack 300 ms late", write(source, folder / "late300.mp4", audio=delayed(audio, 300)),
                     "timing.av_offset", [(0.0, seconds)]),
        Perturbation("250 ms dropout at 12.3 s", write(source, folder / "dropout.mp4", audio=gap), "audio.content",
                     [(12.3, 12.55)]),
        Perturbation("+3 dB at 891-1122 Hz", write(source, folder / "band.mp4", audio=boosted_band(audio)),
                     "audio.bands", [(0.0, seconds)]),
    ]
    for kbps in (96, 128, 192):
        suite.append(Perturbation(f"AAC {kbps} kb/s", write(source, folder / f"aac{kbps}.mp4", audio=audio,
                                                            bitrate=kbps * 1000), None))
    return suite

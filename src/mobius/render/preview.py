"""Rendering a tutorial preview to MP4 through PyAV (FFmpeg inside the wheel; no system ffmpeg).

Guarantees: H.264 yuv420p at the asked size and frame rate, stereo AAC at 48 kHz mastered to
-16 LUFS integrated with true peak at or below -1 dBTP (measured on the encoded audio, then the
gain corrected once), written under a temp name and renamed, so the target is either the old file
or a complete new one. Deterministic: x264 runs with a fixed thread count and the frames and
music are computed from the spec alone, so the same inputs give the same frames on one platform.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from mobius.log import get_logger
from mobius.measure.decode import require_av
from mobius.progress import NoProgress, Progress
from mobius.render.music import CEILING_DBTP, SAMPLE_RATE, TARGET_LUFS, compose, master
from mobius.render.scene import BAR_Y, CANVAS, draw_shot
from mobius.render.shots import ShotList
from mobius.safety.atomic import atomic_write

VIDEO_OPTIONS = {"preset": "veryfast", "crf": "18", "threads": "2", "g": "60", "profile": "high"}
AUDIO_BITRATE = 160_000
AUDIO_FRAME = 1024


@dataclass(frozen=True)
class RenderResult:
    game: str
    path: Path
    seconds: float
    frames: int
    width: int
    height: int
    fps: int
    integrated_lufs: float
    true_peak_dbtp: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _yuv(picture):
    """An RGB picture as one yuv420p array (h*3/2, w), converted by FFmpeg's swscale."""
    av = require_av()
    return av.VideoFrame.from_ndarray(_as_array(picture), format="rgb24").reformat(format="yuv420p").to_ndarray()


def _as_array(picture):
    import numpy as np

    return np.asarray(picture, dtype=np.uint8)


def _encode_audio(stream, container, samples) -> None:
    av = require_av()
    import numpy as np

    data = np.ascontiguousarray(samples.astype(np.float32))
    for start in range(0, data.shape[1], AUDIO_FRAME):
        chunk = np.ascontiguousarray(data[:, start : start + AUDIO_FRAME])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _aac_roundtrip(samples):
    """The audio as a listener gets it: encoded to AAC in memory and decoded again."""
    av = require_av()
    import numpy as np

    buffer = io.BytesIO()
    container = av.open(buffer, "w", format="adts")
    stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
    stream.bit_rate = AUDIO_BITRATE
    _encode_audio(stream, container, samples)
    container.close()
    buffer.seek(0)
    decoded = av.open(buffer, "r", format="adts")
    chunks = [frame.to_ndarray() for frame in decoded.decode(audio=0)]
    decoded.close()
    return np.concatenate(chunks, axis=1).astype(np.float64)


def soundtrack(game: str, seconds: float):
    """The mastered music bed, with the AAC codec's own loudness shift corrected."""
    from mobius.measure.loudness import integrated_loudness, true_peak

    samples = master(compose(game, seconds), SAMPLE_RATE)
    decoded = _aac_roundtrip(samples)
    correction = TARGET_LUFS - integrated_loudness(decoded, SAMPLE_RATE)
    headroom = CEILING_DBTP - 0.2 - true_peak(decoded, SAMPLE_RATE)
    gain_db = min(correction, headroom)
    return samples * 10.0 ** (gain_db / 20.0) if abs(gain_db) > 0.01 else samples


def _frame_schedule(shots: ShotList, fps: int):
    """For each frame: (shot index a, shot index b, blend of b in 0..1, fade to black 0..1, progress)."""
    count = int(round(shots.duration * fps))
    boundaries = [s.end for s in shots.shots[:-1]]
    fade = min(0.5, shots.crossfade)
    for i in range(count):
        t = i / fps
        index = next(n for n, s in enumerate(shots.shots) if t < s.end or n == len(shots.shots) - 1)
        other, blend = index, 0.0
        if index < len(boundaries) and boundaries[index] - t <= shots.crossfade:
            other = index + 1
            blend = 1.0 - (boundaries[index] - t) / shots.crossfade
        black = max(0.0, 1.0 - t / fade) if fade else 0.0
        black = max(black, 1.0 - (shots.duration - t - 1.0 / fps) / fade) if fade else black
        yield index, other, blend, min(1.0, max(0.0, black)), (i + 1) / count


def render_preview(shots: ShotList, out: Path, *, color: tuple[int, int, int], size: tuple[int, int] = CANVAS,
                   fps: int = 30, progress: Progress | None = None) -> RenderResult:
    """Render the shot list to `out` (MP4). Returns what was written and its measured loudness."""
    av = require_av()
    import numpy as np

    from mobius.measure.loudness import integrated_loudness, true_peak

    progress = progress or NoProgress()
    log = get_logger()
    width, height = size
    if width % 2 or height % 2:
        raise ValueError("width and height must be even for yuv420p")
    sections = len(shots.shots) - 1
    stills = [_yuv(draw_shot(s, color=color, sections=sections, size=size)) for s in shots.shots]
    audio = soundtrack(shots.game, shots.duration)
    bar_top = BAR_Y[0] * height // CANVAS[1] // 2 * 2
    bar_bottom = max(bar_top + 2, BAR_Y[1] * height // CANVAS[1] // 2 * 2)
    black = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    black[:height] = 16
    schedule = list(_frame_schedule(shots, fps))
    progress.start(f"render {shots.game}", total=len(schedule), unit="frames")
    out = Path(out)
    with atomic_write(out, "wb", file_mode=0o644) as handle:
        container = av.open(handle, mode="w", format="mp4")
        video = container.add_stream("libx264", rate=fps, options=dict(VIDEO_OPTIONS))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        sound.bit_rate = AUDIO_BITRATE
        for i, (a, b, blend, fade, done) in enumerate(schedule):
            picture = stills[a]
            if blend > 0:
                picture = (stills[a] * (1.0 - blend) + stills[b] * blend + 0.5).astype(np.uint8)
            else:
                picture = picture.copy()
            filled = int(width * done) // 2 * 2
            picture[bar_top:bar_bottom, :filled] = 235
            picture[height + bar_top // 4 : height + bar_bottom // 4, : filled // 2] = 128
            if fade > 0:
                picture = (picture * (1.0 - fade) + black * fade + 0.5).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
            if i % 10 == 9:
                progress.advance(10)
        for packet in video.encode():
            container.mux(packet)
        _encode_audio(sound, container, audio)
        container.close()
    progress.advance(len(schedule) % 10)
    progress.finish()
    result = RenderResult(shots.game, out, shots.duration, len(schedule), width, height, fps,
                          round(integrated_loudness(audio, SAMPLE_RATE), 2), round(true_peak(audio, SAMPLE_RATE), 2))
    log.info("render.done", game=shots.game, path=str(out), frames=len(schedule), seconds=shots.duration)
    return result

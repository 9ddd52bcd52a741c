"""Reading a video for checks: container facts, luma planes at exact times, and the audio, in one open.

Frames are taken at exact timestamps: seek to the keyframe at or before t, then decode forward to
the frame displayed at t (the last frame whose presentation time is <= t). The luma plane is copied
straight out of the decoded picture, with no colour conversion, so a stored golden plane and a fresh
decode of the same video are byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from mobius.errors import EnvironmentProblem, InputError

EPSILON = 1e-6
# FFmpeg's frame threads for the every-frame decode: 0.12-0.18 s more CPU than none for a 30 s check,
# and a shorter wall clock on a busy machine, where the scheduler shares the cores per thread. Six
# rather than FFmpeg's automatic three (cores + 1): the same CPU, and 2.2 against 2.7-2.9 s of wall
# clock in-process at load 13-14 (alternating runs, medians of 6 and 8; docs/golden.md, Speed).
EVERY_FRAME_THREADS = "AUTO"
EVERY_FRAME_THREAD_COUNT = 6
PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le", "nv12"}


def require_av():
    """PyAV, or EnvironmentProblem (exit 3) saying how to get it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - exercised by the exit-3 test through a subprocess
        raise EnvironmentProblem(
            f"the media libraries are missing: cannot import PyAV ({exc})",
            hint="install them with `pip install av numpy`",
        ) from None
    return av


@dataclass(frozen=True)
class ContainerInfo:
    """The container facts a golden pins (container.json)."""

    codec: str | None
    width: int | None
    height: int | None
    pix_fmt: str | None
    frame_rate: float | None
    sample_aspect: str
    duration: float
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class MediaSample:
    """What one pass over a video yields: container facts, luma planes by time, the audio."""

    container: ContainerInfo
    frames: dict[float, object] = field(default_factory=dict)
    audio: object | None = None
    sample_rate: int = 0


def _open(path: Path):
    av = require_av()
    if not path.is_file():
        raise InputError(f"video not found: {path}", hint="render it first with `mobius render GAME`")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot read video {path}: {exc}", hint="is it an MP4 written completely?") from None


def _container_info(container) -> ContainerInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    duration = container.duration / 1_000_000 if container.duration else 0.0
    sar = video.sample_aspect_ratio if video is not None else None
    rate = video.average_rate if video is not None else None
    return ContainerInfo(
        codec=video.codec_context.name if video is not None else None,
        width=video.width if video is not None else None,
        height=video.height if video is not None else None,
        pix_fmt=video.codec_context.pix_fmt if video is not None else None,
        frame_rate=round(float(rate), 3) if rate else None,
        sample_aspect=f"{sar.numerator}:{sar.denominator}" if sar else "1:1",
        duration=round(duration, 3),
        audio_codec=audio.codec_context.name if audio is not None else None,
        sample_rate=audio.rate if audio is not None else None,
        channels=audio.codec_context.channels if audio is not None else None,
    )


def probe(path: Path) -> ContainerInfo:
    """Container facts without decoding anything."""
    container = _open(Path(path))
    try:
        return _container_info(container)
    finally:
        container.close()


def luma(frame):
    """The 8-bit luma plane of a decoded frame as a (height, width) uint8 array (a copy)."""
    import numpy as np

    if frame.format.name in PLANAR_YUV and frame.format.name != "yuv420p10le":
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width].copy()
    return frame.to_ndarray(format="gray")


def _frames_at(container, times: list[float]) -> dict[float, object]:
    video = container.streams.video[0]
    base = video.time_base
    start = float(video.start_time * base) if video.start_time is not None else 0.0
    found: dict[float, object] = {}
    last = None  # (time, frame) most recently decoded
    decoder = None
    for t in sorted(set(times)):
        target = start + t
        if last is None or last[0] > target + EPSILON or target - last[0] > 1.0:
            container.seek(int(Fraction(target) / base), stream=video, backward=True, any_frame=False)
            decoder = container.decode(video)
            last = None
        shown = last[1] if last is not None and last[0] <= target + EPSILON else None
        for frame in decoder:
            when = float(frame.pts * base) if frame.pts is not None else float(frame.time or 0.0)
            if when > target + EPSILON:
                last = (when, frame)
                break
            shown = frame
            last = (when, frame)
        if shown is None:
            raise InputError(f"no frame at {t:g} s", hint="choose frame times within the video")
        found[t] = luma(shown)
    return found


def _audio(container):
    """All audio as float32 (channels, samples), planes copied straight from the decoded frames.

    `container` must be freshly opened: decoding starts at the stream's first packet, the encoder's
    priming packet included (decoded for its overlap, then discarded). A seek to 0 instead lands where
    the container's index says, before or after that packet depending on how the file was muxed, and
    the first 1024 samples came out differently for the same coded stream (measured).

    Each frame is copied into one array sized from the stream's duration and let go at once, so
    FFmpeg's buffer pool reuses its buffers: keeping every frame's planes until the end (1,400 frames
    for 30 s) grew the heap a page at a time and copied the sound twice more (concatenate, stack):
    0.09 against 0.03 s of CPU for 30 s of stereo in a fresh process (measured; the same samples).

    Sample 0 is the sound heard with the picture's first frame (`_samples_before`): a soundtrack that
    starts later than the picture is preceded by silence, one that starts earlier loses its lead.
    """
    import numpy as np

    av = require_av()
    stream = container.streams.audio[0]
    picture = container.streams.video[0] if container.streams.video else None
    resampler = None
    out = None
    filled = skip = 0
    for frame in container.decode(stream):
        frames = [frame]
        if frame.format.name != "fltp":
            resampler = resampler or av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
            frames = resampler.resample(frame)
        for planar in frames:
            if out is None:
                lead = _samples_before(picture, frame)
                filled, skip = max(lead, 0), max(-lead, 0)
                size = filled + max(planar.samples, _expected_samples(stream))
                out = np.empty((len(planar.planes), size), dtype=np.float32)
                out[:, :filled] = 0.0
            dropped = min(skip, planar.samples)
            skip -= dropped
            count = planar.samples - dropped
            if filled + count > out.shape[1]:  # longer than the container announced
                out = np.concatenate([out, np.empty_like(out)], axis=1)
            for row, plane in zip(out, planar.planes, strict=True):
                row[filled : filled + count] = np.frombuffer(plane, dtype=np.float32, count=planar.samples)[dropped:]
            filled += count
    if out is None:
        return np.zeros((stream.codec_context.channels or 1, 0), dtype=np.float32), stream.rate
    return (out if filled == out.shape[1] else np.ascontiguousarray(out[:, :filled])), stream.rate


def _samples_before(picture, first) -> int:  # noqa: ANN001 - an av video stream (or None), an av audio frame
    """Samples of silence to put before the first decoded audio frame `first` (negative: samples of it to
    drop) so that the sound lines up with the picture as a player presents them: by presentation time, the
    audio frame's against the video stream's start (its first frame's). A muxer writes a delayed or early
    soundtrack (`ffmpeg -itsoffset`, an edit list) as timestamps, not as silence in the samples. The
    encoder's priming is already gone: the demuxer turns the edit list that hides it into samples the
    decoder skips, so an AAC render or re-encode starts at 0 like its picture (measured; docs/golden.md,
    Signatures). 0 when either time is unknown; the silence never outlasts the picture (a soundtrack
    stamped to start hours later is not hours of zeros in memory)."""
    if picture is None or picture.start_time is None or first.pts is None or first.time_base is None:
        return 0
    lead = round((first.pts * first.time_base - picture.start_time * picture.time_base) * first.sample_rate)
    if picture.duration is not None and picture.time_base is not None:
        lead = min(lead, round(picture.duration * picture.time_base * first.sample_rate))
    return lead


def _expected_samples(stream) -> int:
    """Samples per channel the stream announces (its duration), with room for the encoder's padding."""
    if stream.duration is None or stream.time_base is None or not stream.rate:
        return 0
    return int(stream.duration * stream.time_base * stream.rate) + 4096


def _checked_info(container, path: Path, times: list[float]) -> ContainerInfo:  # noqa: ANN001 - an av container
    """The container's facts, once it is known to hold a picture that lasts past every time in `times`."""
    info = _container_info(container)
    if not container.streams.video:
        raise InputError(f"{path} has no video stream", hint="check the file is a rendered preview")
    beyond = [t for t in times if t < 0 or t >= info.duration]
    if beyond:
        listed = ", ".join(f"{t:g} s" for t in beyond)
        raise InputError(
            f"frame time {listed} is beyond the video's duration ({info.duration:g} s) in {path}",
            hint="choose frame times within the video (golden.json 'frames' or --frames)",
        )
    return info


def checked_facts(path: Path, times: list[float]) -> ContainerInfo:
    """`read_media`'s container facts and checks (a picture lasting past every time), without decoding."""
    path = Path(path)
    container = _open(path)
    try:
        return _checked_info(container, path, times)
    finally:
        container.close()


def read_media(path: Path, times: list[float], *, with_audio: bool = True) -> MediaSample:
    """Container facts, luma planes at `times` (seconds) and the audio (`read_audio`: on the picture's timeline).

    Raises InputError (exit 1) for a missing or unreadable file, a video without a picture, or a
    time at or beyond the video's duration.
    """
    path = Path(path)
    container = _open(path)
    try:
        info = _checked_info(container, path, times)
        sample = MediaSample(container=info, frames=_frames_at(container, times))
        if with_audio and container.streams.audio:
            sample.audio, sample.sample_rate = read_audio(path)
        return sample
    finally:
        container.close()


@dataclass
class FrameSignatures:
    """Block-mean thumbnails of every frame (mobius.measure.thumbnails) and each frame's time in seconds."""

    y: object
    u: object
    v: object
    times: object

    def planes(self) -> dict[str, object]:
        return {"y": self.y, "u": self.u, "v": self.v}

    def __len__(self) -> int:
        return len(self.times)


def _every_frame(container, times: list[float], on_pinned: Callable[[float, object], None] | None = None,
                 on_luma: Callable[[object, int], None] | None = None,
                 on_frame: Callable[[int, list, object], None] | None = None,
                 ) -> tuple[FrameSignatures, dict[float, object]]:
    """One decode of every frame: its thumbnails, and the luma planes displayed at `times` (the same
    frames `_frames_at` picks by seeking: the last one whose presentation time is <= t).

    Each frame's thumbnails are taken as soon as PyAV hands it over, while FFmpeg's frame threads decode
    the next ones, and the frame is let go at once, so FFmpeg's buffer pool reuses its pictures (holding
    batches of 30 frames for a second Python thread cost about 0.1 s more CPU in page faults for fresh
    buffers). A Python thread of its own feeding the decoder (4 frames ahead) cost 0.05-0.07 s more CPU
    in hand-offs and was slower by the wall clock too, at quiet-machine scheduling and at load 5
    (docs/golden.md, Speed). `on_pinned(t, plane)`
    is called with each plane of `times` as soon as it is known, while the rest of the video decodes;
    `on_luma(thumbnails, count)` after each frame, with the luma thumbnails so far (the first `count` rows);
    `on_frame(index, [y, u, v], frame)` after each frame, with the thumbnails so far and the decoded frame
    (valid only during the call).
    """
    import numpy as np

    from mobius.measure.thumbnails import CHROMA_GRID, LUMA_GRID, frame_thumbnails

    video = container.streams.video[0]
    video.thread_type = EVERY_FRAME_THREADS
    video.codec_context.thread_count = EVERY_FRAME_THREAD_COUNT
    base = video.time_base
    # float(pts * base) without a Fraction per frame (0.06 s for 900 frames): int * int / int is
    # rounded once, as Fraction.__float__ rounds, so the times are the same floats
    numerator, denominator = base.numerator, base.denominator
    start = float(video.start_time * base) if video.start_time is not None else 0.0
    pending = sorted(set(times))
    found: dict[float, object] = {}
    count = max(1, video.frames or 0)
    stores = [np.empty((count, *grid), dtype=np.uint8) for grid in (LUMA_GRID, CHROMA_GRID, CHROMA_GRID)]
    stamps: list[float] = []
    previous = None
    container.seek(0)
    for frame in container.decode(video):
        pts = frame.pts
        when = pts * numerator / denominator if pts is not None else float(frame.time or 0.0)
        while pending and when > start + pending[0] + EPSILON:
            if previous is not None:
                found[pending[0]] = luma(previous)
                if on_pinned is not None:
                    on_pinned(pending[0], found[pending[0]])
            pending.pop(0)
        index = len(stamps)
        if index == len(stores[0]):  # more frames than the container announced
            stores = [np.concatenate([store, np.empty_like(store)]) for store in stores]
        for store, plane in zip(stores, frame_thumbnails(frame), strict=True):
            store[index] = np.rint(plane, out=plane)  # rounded to 8 bits, as a golden stores them
        stamps.append(when - start)
        if on_luma is not None:
            on_luma(stores[0], index + 1)
        if on_frame is not None:
            on_frame(index, stores, frame)
        previous = frame if pending else None
    for t in pending:
        if previous is not None:
            found[t] = luma(previous)
            if on_pinned is not None:
                on_pinned(t, found[t])
    missing = [t for t in times if t not in found]
    if missing:
        raise InputError(f"no frame at {missing[0]:g} s", hint="choose frame times within the video")
    n = len(stamps)
    ys, us, vs = (store[:n] for store in stores)
    return FrameSignatures(ys, us, vs, np.asarray(stamps)), found


def stream_digests(path: Path) -> dict[str, str]:
    """A sha256 of each stream's coded content (the first video and audio stream), read without decoding.

    Covers the codec, its parameters and extradata, and every packet's bytes, timestamps, duration and
    keyframe flag: two files with equal digests decode to the same pictures (or sound) at the same
    times, whatever their containers' other bytes (creation times, tags) say. The sound is read on the
    picture's timeline (`_audio`), so the audio's digest also covers where it starts against the
    picture, when that is not together with it (a soundtrack that starts with its picture, as every
    render's does, keeps the digest it had before the reading took start times into account). About
    0.02 s for a 30 s preview, against 0.5-1 s to decode and measure it.
    """
    import hashlib

    path = Path(path)
    container = _open(path)
    try:
        chosen = {kind: streams[0] for kind, streams in (("video", container.streams.video),
                                                         ("audio", container.streams.audio)) if streams}
        hashes = {}
        for stream in chosen.values():
            context = stream.codec_context
            params = (context.name, stream.time_base, getattr(context, "width", None), getattr(context, "height", None),
                      getattr(context, "pix_fmt", None), getattr(context, "sample_rate", None),
                      getattr(context, "channels", None))
            hashes[stream.index] = hashlib.sha256(repr(params).encode() + bytes(context.extradata or b""))
        for packet in container.demux(*chosen.values()):
            digest = hashes[packet.stream.index]
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            digest.update(repr((packet.pts, packet.dts, packet.duration, packet.is_keyframe, packet.size)).encode())
            digest.update(bytes(packet))
        if "audio" in chosen and "video" in chosen:
            lead = _start_against(chosen["audio"], chosen["video"])
            if lead:
                hashes[chosen["audio"].index].update(repr(("start against the picture", lead)).encode())
        return {kind: hashes[stream.index].hexdigest() for kind, stream in chosen.items()}
    except av_errors() as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="is it an MP4 written completely?") from None
    finally:
        container.close()


def _start_against(stream, picture) -> Fraction:  # noqa: ANN001 - av streams
    """How much later (seconds) `stream` starts than `picture`, by their start times; 0 when either is unknown."""
    if stream.start_time is None or picture.start_time is None:
        return Fraction(0)
    return stream.start_time * stream.time_base - picture.start_time * picture.time_base


def read_audio(path: Path):
    """(audio float32 (channels, samples), sample rate) of `path`, sample 0 heard with the first frame (`_audio`),
    or (None, 0) without an audio stream."""
    container = _open(Path(path))
    try:
        if not container.streams.audio:
            return None, 0
        return _audio(container)
    except av_errors() as exc:
        raise InputError(f"cannot decode {path}: {exc}", hint="is it an MP4 written completely?") from None
    finally:
        container.close()


def read_every_frame(path: Path, times: list[float], *, with_audio: bool = True,
                     on_pinned: Callable[[float, object], None] | None = None,
                     on_luma: Callable[[object, int], None] | None = None,
                     on_frame: Callable[[int, list, object], None] | None = None,
                     ) -> tuple[MediaSample, FrameSignatures]:
    """`read_media` that decodes every frame once: the sample (pinned planes, audio, container facts)
    and the signature of every frame. `on_pinned(t, plane)` gets each plane of `times` as soon as it is
    decoded, `on_luma(thumbnails, count)` the luma thumbnails as they grow (to measure them while the
    rest decodes); `on_frame(index, [y, u, v], frame)` each frame as it is decoded (`_every_frame`). Same
    errors as `read_media`."""
    path = Path(path)
    container = _open(path)
    try:
        info = _checked_info(container, path, times)
        signatures, frames = _every_frame(container, times, on_pinned, on_luma, on_frame)
        sample = MediaSample(container=info, frames=frames)
        if with_audio and container.streams.audio:
            sample.audio, sample.sample_rate = read_audio(path)
        return sample, signatures
    except av_errors() as exc:
        raise InputError(f"cannot decode {path}: {exc}", hint="is it an MP4 written completely?") from None
    finally:
        container.close()


def av_errors() -> tuple[type[BaseException], ...]:
    """PyAV's decode errors, to report a damaged file as bad input (exit 1) rather than a traceback."""
    return (require_av().error.FFmpegError,)

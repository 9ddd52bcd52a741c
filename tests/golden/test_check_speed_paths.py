"""The shortcuts `golden check` takes for speed give what the plain computation gives, bit for bit:
the alignment's costs built while the decode runs, and the soundtrack decoded into one array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mobius.measure import alignment, thumbnails
from mobius.measure.decode import read_audio, read_every_frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 3.3 s H.264 + AAC file made with PyAV: 100 frames that change every frame (not a multiple
    of the cost rows), and a tone whose frames are not a multiple of anything either."""
    import av

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=30, options={"crf": "23", "preset": "ultrafast", "threads": "1"})
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(100):
            picture = np.full((180, 320, 3), (i * 2) % 256, dtype=np.uint8)
            picture[rng.integers(0, 150):, rng.integers(0, 290):] = 255
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        t = np.arange(160_001) / 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = np.ascontiguousarray(np.stack([tone[start:start + 1024]] * 2))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("current_frames", [120, 97, 150, 64, 3])
def test_cost_rows_fed_frame_by_frame_equal_the_whole_cost_matrix(current_frames: int):
    """Rows added as each frame arrives (through a store that is reallocated as it grows, as the decode's
    is) and finished at the end are the very costs of the float definition, whatever the frame count."""
    rng = np.random.default_rng(11)
    golden = rng.integers(0, 256, (120, *thumbnails.LUMA_GRID), dtype=np.uint8)
    current = np.clip(golden[np.arange(current_frames) % 120].astype(np.int16)
                      + rng.integers(-40, 40, (current_frames, *thumbnails.LUMA_GRID)), 0, 255).astype(np.uint8)
    rows = alignment.CostRows(golden)
    store = np.empty((16, *thumbnails.LUMA_GRID), dtype=np.uint8)
    for i, frame in enumerate(current):
        if i == len(store):
            store = np.concatenate([store, np.empty_like(store)])
        store[i] = frame
        rows.add(store, i + 1)
    built = rows.finish(current)
    reference = alignment._costs(golden.astype(np.float32), current.astype(np.float32), alignment.SEARCH)
    assert built.shape == reference.shape and np.array_equal(built, reference)
    assert np.array_equal(alignment.align(golden, current, costs=alignment.CostRows(golden)).path,
                          alignment.align(golden, current).path)


def test_the_decode_hands_over_every_luma_thumbnail_as_it_grows(clip: Path):
    """`on_luma` sees each frame's thumbnail once the frame is decoded, and the costs it builds during the
    decode equal those of the finished signatures."""
    golden = np.random.default_rng(4).integers(0, 256, (90, *thumbnails.LUMA_GRID), dtype=np.uint8)
    seen: list[int] = []
    costs = alignment.CostRows(golden)

    def on_luma(store, count: int) -> None:
        seen.append(count)
        costs.add(store, count)

    _, frames = read_every_frame(clip, [1.0], with_audio=False, on_luma=on_luma)
    assert len(frames) == 100 and seen == list(range(1, 101))
    assert costs.done == 64  # whole blocks only, until the decode ends
    assert np.array_equal(costs.finish(frames.y),
                          alignment._costs(golden.astype(np.float32), frames.y.astype(np.float32), alignment.SEARCH))


def test_the_soundtrack_decoded_into_one_array_equals_its_frames_joined(clip: Path):
    """Every decoded frame's samples, in order, nothing more: the same array the frames joined give."""
    import av

    samples, rate = read_audio(clip)
    with av.open(str(clip)) as container:
        stream = container.streams.audio[0]
        planes = [frame.to_ndarray() for frame in container.decode(stream)]
    joined = np.concatenate(planes, axis=1)
    assert rate == 48000 and samples.dtype == np.float32 and samples.flags["C_CONTIGUOUS"]
    assert samples.shape == joined.shape and np.array_equal(samples, joined)


@pytest.mark.parametrize("frames", [900, 2, 1])
def test_differences_of_8_bit_thumbnails_equal_the_float_definition(frames: int):
    """Content difference and motion of 8-bit thumbnails, taken in 8-bit integers, are the float path's
    values and types, from identical blocks to blocks 255 levels apart."""
    rng = np.random.default_rng(frames)
    grids = {p: thumbnails.LUMA_GRID if p == "y" else thumbnails.CHROMA_GRID for p in thumbnails.PLANES}
    golden = {p: rng.integers(0, 256, (frames, *grid), dtype=np.uint8) for p, grid in grids.items()}
    current = {p: np.clip(golden[p].astype(np.int16) + rng.integers(-40, 40, golden[p].shape), 0, 255).astype(np.uint8)
               for p in thumbnails.PLANES}
    current["y"][0, :2, :2] = 255 - golden["y"][0, :2, :2]
    as_float = {name: {p: side[p].astype(np.float32) for p in thumbnails.PLANES}
                for name, side in (("golden", golden), ("current", current))}
    for measure in (thumbnails.content_difference, thumbnails.largest_block_difference):
        fast, slow = measure(golden, current), measure(as_float["golden"], as_float["current"])
        assert fast.dtype == slow.dtype and np.array_equal(fast, slow)
        assert np.array_equal(measure(golden, golden), measure(as_float["golden"], as_float["golden"]))


def test_the_worst_frames_kept_during_the_decode_are_those_of_the_failing_ranges(clip: Path):
    """`WorstFrames` keeps, for each run `ranges_over` finds (gaps bridged, the first of equal worsts), the
    plane of its worst frame, as a decode at that frame's time gives it."""
    from mobius.golden.timeline import WorstFrames, ranges_over
    from mobius.measure.decode import FrameSignatures, read_media

    _, plain = read_every_frame(clip, [1.0], with_audio=False)
    golden = {p: plain.planes()[p].copy() for p in thumbnails.PLANES}
    changes = {10: 30, 11: 40, 12: 90, 13: 40, 16: 95, 40: 60, 42: 60, 70: 20, 99: 50}  # frame: levels
    for index, levels in changes.items():
        golden["y" if index % 2 else "u"][index, :4] = np.clip(golden["y" if index % 2 else "u"][index, :4]
                                                               .astype(int) + levels, 0, 255)
    golden_signatures = FrameSignatures(golden["y"], golden["u"], golden["v"], plain.times)
    keeper = WorstFrames(golden_signatures, 12.0)
    _, frames = read_every_frame(clip, [1.0], with_audio=False, on_frame=keeper.see)
    kept = keeper.planes()

    ranges = ranges_over(thumbnails.content_difference(golden, frames.planes()), 12.0, frames.times, 1 / 30)
    assert len(ranges) >= 3
    assert sorted(kept) == [r["index"] for r in ranges]
    for index, plane in kept.items():
        t = float(frames.times[index])
        assert np.array_equal(plane, read_media(clip, [t], with_audio=False).frames[t])


def test_the_worst_frames_golden_rows_widened_by_chunk_are_the_whole_widened_rows():
    """`WorstFrames` widens the golden's rows a chunk at a time as the decode reaches them: each row is the
    one widening all frames at once gives, in any order of frames and in the last, partial chunk."""
    from mobius.golden.timeline import WorstFrames
    from mobius.measure.decode import FrameSignatures

    rng = np.random.default_rng(5)
    frames = 2 * WorstFrames.CHUNK + 7
    planes = {p: rng.integers(0, 256, (frames, *(thumbnails.LUMA_GRID if p == "y" else thumbnails.CHROMA_GRID)),
                              dtype=np.uint8) for p in thumbnails.PLANES}
    keeper = WorstFrames(FrameSignatures(planes["y"], planes["u"], planes["v"], np.arange(frames) / 30), 12.0)
    whole = np.concatenate([planes[p].reshape(frames, -1) for p in thumbnails.PLANES], axis=1).astype(np.int16)
    for index in [*range(frames), *rng.permutation(frames)]:
        row = keeper._golden_row(index)
        assert row.dtype == np.int16 and np.array_equal(row, whole[index])

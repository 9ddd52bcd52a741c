"""mobius.measure on synthetic signals: alignment finds the frames that were dropped, duplicated or frozen,
and the audio signature measures an offset and a change confined to one band (fast, no video)."""

from __future__ import annotations

import numpy as np
import pytest

from mobius.measure import alignment, soundprint, thumbnails

RATE = 48000


def moving_bar(frames: int = 300) -> np.ndarray:
    """Luma thumbnails of a scene where only a progress bar moves, one block every 5 frames, plus noise."""
    rng = np.random.default_rng(7)
    base = rng.uniform(40, 200, size=thumbnails.LUMA_GRID).astype(np.float32)
    out = np.repeat(base[None], frames, axis=0)
    for i in range(frames):
        out[i, -2, : i * thumbnails.LUMA_GRID[1] // frames + 1] = 230.0
        out[i, 10:20, 10:20] += 40 * np.sin(i / 9.0)  # a slow crossfade-like change
    return out


def events(golden: np.ndarray, current: np.ndarray) -> list[tuple[str, int, int]]:
    found = alignment.align(golden, current)
    motion = lambda s: np.concatenate([[0.0], np.abs(np.diff(s, axis=0)).reshape(len(s) - 1, -1).max(axis=1)])  # noqa: E731
    found = alignment.with_frozen(found, alignment.frozen_runs(found, motion(current), motion(golden)))
    return [(e.kind, e.first, e.frames) for e in found.events]


def test_identical_and_noisy_copies_align_on_the_diagonal():
    golden = moving_bar()
    noisy = golden + np.random.default_rng(1).normal(0, 1.0, golden.shape).astype(np.float32)
    assert events(golden, golden) == [] and events(golden, noisy) == []


def test_identical_thumbnails_align_as_the_recurrence_does():
    golden = np.rint(moving_bar()).astype(np.uint8)
    quick, full = alignment.align(golden, golden.copy()), alignment.cheapest_path(golden, golden.copy())
    assert np.array_equal(quick.path, full.path) and np.array_equal(quick.path, np.arange(len(golden)))
    assert quick.events == full.events == [] and quick.start_offset == full.start_offset == 0


def test_two_dropped_frames_are_found_where_they_were_dropped():
    golden = moving_bar()
    current = np.delete(golden, [120, 121], axis=0)
    assert events(golden, current) == [("dropped", 120, 2)]


def test_a_duplicated_frame_is_found():
    golden = moving_bar()
    current = np.insert(golden, 200, golden[199], axis=0)
    assert events(golden, current) == [("duplicated", 200, 1)]


def test_a_frozen_second_is_frozen_not_duplicates_and_drops():
    golden = moving_bar()
    current = golden.copy()
    current[150:180] = golden[150]
    assert events(golden, current) == [("frozen", 150, 30)]


def test_an_object_drawn_over_the_picture_does_not_move_the_path():
    golden = moving_bar()
    current = golden.copy()
    current[60:120, 5:25, 20:40] = 81.0
    assert events(golden, current) == []


def burst_track(seconds: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    notes = np.zeros(n, np.float32)
    for start in np.arange(0.0, seconds - 0.3, 0.25):
        freq = rng.choice([220.0, 330.0, 440.0, 660.0, 990.0])
        span = (t >= start) & (t < start + 0.2)
        notes[span] += np.sin(2 * np.pi * freq * t[span]) * np.exp(-(t[span] - start) * 8)
    return np.stack([notes, notes]) * 0.3


@pytest.mark.parametrize("ms", [0, 60, 137, -90])
def test_audio_offset_is_measured_to_a_few_milliseconds(ms: int):
    track = burst_track()
    shift = ms * RATE // 1000
    moved = np.roll(track, shift, axis=1)
    seconds, correlation = soundprint.offset(soundprint.band_energies(track, RATE),
                                             soundprint.band_energies(moved, RATE))
    assert seconds * 1000 == pytest.approx(ms, abs=4) and correlation > 0.9


@pytest.mark.parametrize("source", ["track", "noise", "short", "silent"])
def test_the_offset_of_a_signature_against_itself_is_the_whole_search_to_the_bit(source: str):
    """`offset(db, db)` (the same object: lag -k scored from lag +k) equals the search over every lag, which an
    equal copy gets; rows that are not a multiple of anything, and lengths shorter than the search."""
    rng = np.random.default_rng(9)
    db = {"track": lambda: soundprint.band_energies(burst_track(), RATE),
          "noise": lambda: rng.normal(-40, 12, (1237, soundprint.BANDS)).astype(np.float16),
          "short": lambda: rng.normal(-40, 12, (57, soundprint.BANDS)).astype(np.float16),
          "silent": lambda: np.full((300, soundprint.BANDS), soundprint.SILENT_DB, np.float16)}[source]()
    assert soundprint.offset(db, db) == soundprint.offset(db, db.copy())


def test_a_change_confined_to_one_band_is_named_and_a_level_change_is_not():
    track = burst_track() + np.random.default_rng(5).normal(0, 0.02, (2, int(8.0 * RATE))).astype(np.float32)
    golden = soundprint.band_energies(track, RATE)
    spectrum = np.fft.rfft(track, axis=1)
    freqs = np.fft.rfftfreq(track.shape[1], 1 / RATE)
    low, high = soundprint.band_edges()[14:16]  # exactly one of the signature's bands
    spectrum[:, (freqs >= low) & (freqs < high)] *= 10 ** (4 / 20)
    boosted = np.fft.irfft(spectrum, n=track.shape[1], axis=1).astype(np.float32)
    change = soundprint.band_difference(golden, soundprint.band_energies(boosted, RATE), 1.5)
    assert change.change_db == pytest.approx(4.0, abs=0.7) and (change.low_hz, change.high_hz) == (low, high)
    louder = soundprint.band_difference(golden, soundprint.band_energies(track * 10 ** (3 / 20), RATE), 1.5)
    assert abs(louder.change_db) < 0.2  # the whole level is the loudness check's business


def test_a_dropout_shows_in_its_windows_only():
    track = burst_track()
    gap = track.copy()
    gap[:, int(3.0 * RATE):int(3.3 * RATE)] = 0.0
    diff = soundprint.window_difference(soundprint.band_energies(track, RATE), soundprint.band_energies(gap, RATE))
    loud = np.flatnonzero(diff > 10)
    assert loud.min() >= 29 and loud.max() <= 33 and diff[:25].max() < 0.5


@pytest.mark.parametrize("shape", [(540, 960), (720, 1280), (1080, 1920), (37, 65), (20, 30)])
def test_block_means_are_the_exact_means_of_the_blocks(shape):
    """The fast integer sums (16-bit where a block fits) equal the plain mean of each block, on random
    pictures and on the worst case for overflow (every pixel 255)."""
    rng = np.random.default_rng(3)
    for plane in (rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 255, np.uint8)):
        got = thumbnails.block_means(plane, thumbnails.LUMA_GRID)
        rows, cols = thumbnails.LUMA_GRID
        if shape[0] >= rows and shape[1] >= cols:
            bh, bw = shape[0] // rows, shape[1] // cols
            expected = plane[: rows * bh, : cols * bw].reshape(rows, bh, cols, bw).astype(np.float64).mean(axis=(1, 3))
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        assert got.dtype == np.float32 and got.shape == thumbnails.LUMA_GRID


@pytest.mark.parametrize("rows", [alignment.COST_ROWS, 7, 1000])
@pytest.mark.parametrize("dropped", [[40, 41], []])
def test_alignment_costs_of_8_bit_thumbnails_equal_the_float_definition(rows: int, dropped: list[int]):
    """The integer path taken for uint8 thumbnails gives the very costs of the float path, including
    differences beyond the cap, frame counts that differ (dropped frames) and blocks of frames that
    end anywhere."""
    rng = np.random.default_rng(5)
    golden = rng.integers(0, 256, (120, *thumbnails.LUMA_GRID), dtype=np.uint8)
    current = np.clip(np.delete(golden, dropped, axis=0).astype(np.int16)
                      + rng.integers(-30, 30, (120 - len(dropped), *thumbnails.LUMA_GRID)), 0, 255).astype(np.uint8)
    fast = alignment._costs_u8(golden, current, alignment.SEARCH, rows=rows)
    slow = alignment._costs(golden.astype(np.float32), current.astype(np.float32), alignment.SEARCH)
    assert np.isinf(fast).sum() > 0 and np.array_equal(fast, slow)
    assert np.array_equal(alignment._costs(current, golden, alignment.SEARCH),
                          alignment._costs(current.astype(np.float32), golden.astype(np.float32), alignment.SEARCH))


def _recurrence_step_by_step(costs):
    """The alignment recurrence as first written, one step at a time (the reference for the vectorised one)."""
    width = costs.shape[1]
    offsets = np.arange(width) - (width - 1) // 2
    acc = costs[0] + alignment.PENALTY * np.abs(offsets)
    back = np.zeros(costs.shape, dtype=np.int8)
    for i in range(1, len(costs)):
        best = np.full(width, np.inf)
        choice = np.ones(width, dtype=np.int8)
        for step in range(alignment.MAX_STEP + 1):
            shift = step - 1
            moved = np.full(width, np.inf)
            if shift >= 0:
                moved[shift:] = acc[: width - shift] if shift else acc
            else:
                moved[:shift] = acc[-shift:]
            moved = moved + alignment.PENALTY * abs(step - 1)
            better = moved < best
            best[better] = moved[better]
            choice[better] = step
        acc = best + costs[i]
        back[i] = choice
    return acc, back


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_recurrence_equals_the_step_by_step_one(seed):
    """Same accumulated costs and the same step into every state, ties (integer costs) and unreachable
    states (inf at the edges, as near the video's ends) included."""
    rng = np.random.default_rng(seed)
    costs = rng.integers(0, 4, size=(200, 2 * alignment.SEARCH + 1)).astype(np.float64)
    costs[:20, :12] = np.inf
    costs[-20:, -9:] = np.inf
    costs[50:60] = np.inf
    expected_acc, expected_back = _recurrence_step_by_step(costs)
    back = np.zeros(costs.shape, dtype=np.int8)
    acc = alignment._recurrence(costs, back)
    assert np.array_equal(acc, expected_acc) and np.array_equal(back, expected_back)

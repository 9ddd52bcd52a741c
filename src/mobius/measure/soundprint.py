"""The soundtrack's signature: band energies every 10 ms, and the comparisons a golden check makes.

Definition (docs/golden.md repeats it): the channels are averaged to mono; every 10 ms a Hann-windowed
frame of `frame_size` samples (the power of two at or above 42.7 ms: 4096 samples, 85 ms, at 48 kHz) is
transformed and its power summed into 24 bands with log-spaced edges from 50 Hz to 11 kHz (above 11 kHz
AAC at 96 kb/s already cuts); each band's power is kept in dB, as float16 (0.06 dB steps at the levels
that matter). Loudness cannot tell two tracks apart (the renderer masters every track to -16 LUFS); the
spectrum over time can, as Chromaprint's design does with chroma. The comparisons:

- `window_difference`: per 100 ms window, the mean over bands of |golden dB - current dB|, both floored
  80 dB below the golden's loudest window (silence compares as the floor, not as -inf).
- `band_difference`: per band, the median over the 1 s segments where the golden band is audible
  (30 dB above the floor) of current dB - golden dB, less the median of that over all bands (a
  change of the whole level is the loudness check's): a change confined to one band, across the track.
- `offset`: the lag (within +-1 s) that best correlates the two signatures, refined between 10 ms hops
  by a parabola: how far the current soundtrack is shifted against the golden's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobius.measure.median import median

HOP_S = 0.01
BANDS = 24
LOW_HZ, HIGH_HZ = 50.0, 11000.0
FLOOR_BELOW_PEAK_DB = 80.0
AUDIBLE_DB = 30.0
WINDOW_HOPS = 10  # 100 ms comparison windows
SEGMENT_HOPS = 100  # 1 s segments for band levels
SEARCH_S = 1.0
SILENT_DB = -160.0


def band_edges():
    import numpy as np

    return np.geomspace(LOW_HZ, HIGH_HZ, BANDS + 1)


def band_energies(samples, sample_rate: int, *, chunk: int = 128):
    """(n, 24) float16 dB of band power every 10 ms of (channels, samples) float audio.

    Each band's power is the sum of its FFT bins (a contiguous run), added in float64 by
    np.add.reduceat. (A product with a 0/1 bin-to-band matrix gave the same sums to float32 rounding but
    ran through OpenBLAS's threads, which spin: 0.17-0.22 s of CPU for 30 s of audio against 0.05 s;
    3-7 of 72,000 float16 values moved by one step, 0.016 dB at most.) `chunk` hops are transformed at a
    time, so the frames and spectra stay in the CPU cache.
    """
    import numpy as np

    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    hop = int(round(sample_rate * HOP_S))
    size = frame_size(sample_rate)
    count = len(mono) // hop + 1 if len(mono) else 0
    padded = np.concatenate([np.zeros(size // 2, np.float32), mono, np.zeros(size, np.float32)])
    window = np.hanning(size).astype(np.float32)
    bins = np.digitize(np.fft.rfftfreq(size, 1.0 / sample_rate), band_edges()) - 1  # -1 / BANDS outside
    first = np.searchsorted(bins, np.arange(BANDS), side="left")  # bins are sorted: each band is a run
    stop = np.searchsorted(bins, np.arange(BANDS), side="right")
    bands = np.flatnonzero(first < stop)  # the bands with bins (above the Nyquist frequency: none)
    low, high = int(first[bands[0]]), int(stop[bands[-1]])
    floor = 10.0 ** (SILENT_DB / 10.0)
    out = np.empty((count, BANDS), np.float32)
    # every hop's frame as a strided view of the padded track: the same values as gathering them by
    # index, without the (count, size) index array and its copy
    framed = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop]
    for begin in range(0, count, chunk):
        end = min(count, begin + chunk)
        spectrum = np.fft.rfft(framed[begin:end] * window, axis=1)[:, low:high]
        power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
        sums = np.zeros((end - begin, BANDS), np.float32)
        sums[:, bands] = np.add.reduceat(power.astype(np.float64), first[bands] - low, axis=1)
        out[begin:end] = 10.0 * np.log10(np.maximum(sums, floor))
    return out.astype(np.float16)


def frame_size(sample_rate: int) -> int:
    """The FFT length: the power of two at or above 42.7 ms of samples (4096 at 48 kHz: 85 ms; 2048 at 44.1 kHz)."""
    import math

    return 1 << math.ceil(math.log2(sample_rate * 0.0427))


def _power(db):
    import numpy as np

    return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0)


def _pooled(db, hops: int):
    """dB of the mean power of consecutive groups of `hops` rows (the last partial group dropped)."""
    import numpy as np

    n = len(db) // hops
    if n == 0:
        return np.zeros((0, db.shape[1]))
    return 10.0 * np.log10(_power(db[: n * hops]).reshape(n, hops, -1).mean(axis=1))


def floor_db(golden) -> float:
    """The comparison floor: 80 dB below the golden's loudest 100 ms window (all bands together)."""
    import numpy as np

    windows = _pooled(golden, WINDOW_HOPS)
    if windows.size == 0:
        return SILENT_DB
    total = 10.0 * np.log10(_power(windows).sum(axis=1).max())
    return float(total - FLOOR_BELOW_PEAK_DB)


def window_difference(golden, current):
    """Per 100 ms window (index-aligned), the mean over bands of |dB difference|, both floored."""
    import numpy as np

    floor = floor_db(golden)
    n = min(len(golden), len(current))
    g = np.maximum(_pooled(golden[:n], WINDOW_HOPS), floor)
    c = np.maximum(_pooled(current[:n], WINDOW_HOPS), floor)
    return np.abs(g - c).mean(axis=1)


@dataclass(frozen=True)
class BandChange:
    """The band whose level moved most, consistently over the audible part of the track."""

    band: int
    low_hz: float
    high_hz: float
    change_db: float  # median of current - golden over the audible segments
    segments: list[int]  # 1 s segment indices where that band is audible and off by more than the limit


def band_difference(golden, current, limit_db: float) -> BandChange | None:
    """The band with the largest median level change over its audible 1 s segments (None if none is)."""
    import numpy as np

    floor = floor_db(golden)
    n = min(len(golden), len(current))
    g = _pooled(golden[:n], SEGMENT_HOPS)
    c = np.maximum(_pooled(current[:n], SEGMENT_HOPS), floor)
    audible = g > floor + AUDIBLE_DB
    diff = c - np.maximum(g, floor)
    best: BandChange | None = None
    edges = band_edges()
    medians = {}
    for band in range(g.shape[1] if g.size else 0):
        rows = np.flatnonzero(audible[:, band])
        if rows.size >= 3:
            medians[band] = (rows, median(diff[rows, band]))
    if not medians:
        return None
    overall = median([change for _, change in medians.values()])
    for band, (rows, change) in medians.items():
        change -= overall
        if best is None or abs(change) > abs(best.change_db):
            off = rows[np.abs(diff[rows, band] - overall) > limit_db]
            best = BandChange(band, float(edges[band]), float(edges[band + 1]), change, [int(r) for r in off])
    return best


def offset(golden, current, *, search_s: float = SEARCH_S) -> tuple[float, float]:
    """(seconds, correlation): how late the current soundtrack runs against the golden (negative: early).

    The golden's own signature against itself (`current is golden`: a check of a file whose soundtrack is the
    golden's source) scores lag -k from lag +k: the two lags pair the same rows the other way round, so
    their sums have the same products added in the same order (tested against the whole search)."""
    import numpy as np

    floor = floor_db(golden)
    mirrored = current is golden
    g = np.maximum(np.asarray(golden, dtype=np.float32), floor)
    c = np.maximum(np.asarray(current, dtype=np.float32), floor)
    g -= g.mean(axis=0)
    c -= c.mean(axis=0)
    n = min(len(g), len(c))
    reach = min(int(round(search_s / HOP_S)), max(0, n - 2))
    scores = np.full(2 * reach + 1, -1.0)
    for k, lag in enumerate(range(-reach, reach + 1)):
        if mirrored and lag < 0:
            continue
        a, b = (g[: n - lag], c[lag:n]) if lag >= 0 else (g[-lag:n], c[: n + lag])
        norm = float(np.sqrt(np.einsum("ij,ij->", a, a) * np.einsum("ij,ij->", b, b)))
        if norm > 0:
            scores[k] = float(np.einsum("ij,ij->", a, b)) / norm
    if mirrored:
        scores[:reach] = scores[reach + 1 :][::-1]
    best = int(scores.argmax())
    shift = float(best - reach)
    if 0 < best < len(scores) - 1:
        left, mid, right = scores[best - 1], scores[best], scores[best + 1]
        curve = left - 2 * mid + right
        if curve < 0:
            shift += 0.5 * (left - right) / curve
    return shift * HOP_S, float(scores[best])

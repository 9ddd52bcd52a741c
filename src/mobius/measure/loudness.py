"""Loudness per ITU-R BS.1770-4 / EBU R128, computed in numpy (K-weighting by FFmpeg's biquad via PyAV).

Definitions (docs/golden.md repeats them):
- K-weighting: the two biquads of BS.1770 (high shelf +4 dB near 1682 Hz, high pass near 38 Hz),
  derived for the file's own sample rate as libebur128 does, so 44.1 kHz and 48 kHz read alike.
- Integrated loudness: mean square per channel over 400 ms blocks with 75 % overlap, block loudness
  -0.691 + 10 log10(sum of channel mean squares) (L/R weights 1.0), absolute gate -70 LUFS, then a
  relative gate 10 LU below the loudness of the blocks that passed the absolute gate.
- Loudness range (EBU Tech 3342): 3 s short-term windows every 100 ms, gates -70 LUFS and -20 LU
  relative, LRA = 95th minus 10th percentile of the gated short-term loudness.
- True peak: each channel oversampled 4x (2x at 96 kHz, none at 192 kHz) by a 48-tap polyphase
  interpolation filter (4 phases x 12 taps, as BS.1770-4 Annex 2), maximum absolute value in dBTP.
No scipy.signal: its import alone (~0.45 s) outweighed the measurement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

ABSOLUTE_GATE = -70.0
RELATIVE_GATE_INTEGRATED = -10.0
RELATIVE_GATE_RANGE = -20.0
SILENCE = -120.0


@dataclass(frozen=True)
class AudioStats:
    """What a golden pins about a soundtrack."""

    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_rate: int
    channels: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def k_weighting(sample_rate: int):
    """The BS.1770 pre-filter and RLB high-pass as two (b, a) biquads for `sample_rate`."""
    import numpy as np

    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = np.array([(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
    shelf_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass_b = np.array([1.0, -2.0, 1.0])
    highpass_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    return (shelf_b, shelf_a), (highpass_b, highpass_a)


def k_weighted(samples, sample_rate: int):
    """The K-weighted signal: both biquads applied (zero initial state), as float32 (channels, samples).

    Runs FFmpeg's `biquad` filter (double precision) through PyAV, which the check has loaded anyway:
    the exact recursive filter at C speed, 0.035 s for 30 s of stereo where an FFT product took 0.094 s
    and scipy.signal's import alone takes 0.45 s (all measured here).
    """
    from fractions import Fraction

    import av
    import numpy as np

    data = np.ascontiguousarray(np.atleast_2d(samples), dtype=np.float32)
    channels, n = data.shape
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    graph = av.filter.Graph()
    last = graph.add_abuffer(format="fltp", sample_rate=sample_rate, layout=layout, time_base=f"1/{sample_rate}")
    for b, a in k_weighting(sample_rate):
        coefficients = zip(("b0", "b1", "b2", "a0", "a1", "a2"), (*b, *a), strict=True)
        biquad = graph.add("biquad", ":".join(f"{name}={float(value)!r}" for name, value in coefficients)
                           + ":precision=f64")
        last.link_to(biquad)
        last = biquad
    sink = graph.add("abuffersink")
    last.link_to(sink)
    graph.configure()
    out = []

    def drain() -> None:
        while True:
            try:
                out.append(graph.pull().to_ndarray())
            except (av.BlockingIOError, av.EOFError):
                return

    step = 1 << 16
    for start in range(0, n, step):
        frame = av.AudioFrame.from_ndarray(data[:, start : start + step], format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), dtype=np.float32)


def _window_power(weighted, sample_rate: int, window_s: float, hop_s: float):
    """Sum over channels of the mean square of each window of the K-weighted signal.

    Windows are whole numbers of hops (400 ms = 4 x 100 ms, 3 s = 30 x 100 ms), so the energy of each
    hop-long segment is summed once and windows add up consecutive segments.
    """
    import numpy as np

    window = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    n = weighted.shape[1]
    if n < window:
        return np.zeros(0)
    if window % hop:
        energy = np.zeros((weighted.shape[0], n + 1))
        np.cumsum(np.square(weighted, dtype=np.float64), axis=1, out=energy[:, 1:])
        starts = np.arange(0, n - window + 1, hop)
        return ((energy[:, starts + window] - energy[:, starts]) / window).sum(axis=0)
    segments = n // hop
    per_segment = np.square(weighted[:, : segments * hop], dtype=np.float64).reshape(-1, segments, hop).sum(axis=2)
    running = np.concatenate([np.zeros((per_segment.shape[0], 1)), np.cumsum(per_segment, axis=1)], axis=1)
    span = window // hop
    count = (n - window) // hop + 1
    return ((running[:, span : span + count] - running[:, :count]) / window).sum(axis=0)


def _to_lufs(power):
    import numpy as np

    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def integrated_loudness(samples, sample_rate: int, *, weighted=None) -> float:
    """Gated integrated loudness in LUFS of (channels, samples) audio in [-1, 1]; -120 for silence."""
    weighted = k_weighted(samples, sample_rate) if weighted is None else weighted
    power = _window_power(weighted, sample_rate, 0.4, 0.1)
    loud = _to_lufs(power)
    gated = power[loud > ABSOLUTE_GATE]
    if gated.size == 0:
        return SILENCE
    relative = float(_to_lufs(gated.mean())) + RELATIVE_GATE_INTEGRATED
    final = power[(loud > ABSOLUTE_GATE) & (loud > relative)]
    return float(_to_lufs(final.mean())) if final.size else SILENCE


def loudness_range(samples, sample_rate: int, *, weighted=None) -> float:
    """Loudness range in LU (EBU Tech 3342); 0 when shorter than one 3 s window."""
    import numpy as np

    weighted = k_weighted(samples, sample_rate) if weighted is None else weighted
    power = _window_power(weighted, sample_rate, 3.0, 0.1)
    loud = _to_lufs(power)
    gated = power[loud > ABSOLUTE_GATE]
    if gated.size == 0:
        return 0.0
    relative = float(_to_lufs(gated.mean())) + RELATIVE_GATE_RANGE
    kept = loud[(loud > ABSOLUTE_GATE) & (loud > relative)]
    if kept.size == 0:
        return 0.0
    low, high = np.percentile(kept, [10, 95])
    return float(high - low)


def oversampling_filter(factor: int = 4, taps_per_phase: int = 12):
    """Polyphase interpolation filter (BS.1770-4 Annex 2 shape: 4 phases x 12 taps), Kaiser-windowed sinc."""
    import numpy as np

    taps = factor * taps_per_phase
    k = np.arange(taps) - taps // 2  # phase 0 is then the original samples exactly
    h = np.sinc(k / factor) * np.kaiser(taps + 1, 5.0)[:taps]
    phases = [h[p::factor] for p in range(factor)]
    return [phase / phase.sum() for phase in phases]


def true_peak(samples, sample_rate: int) -> float:
    """Maximum inter-sample peak in dBTP: each channel oversampled 4x (2x at 96 kHz, none at 192 kHz).

    Only 64-sample blocks that could beat the sample peak are filtered: an interpolated value can
    exceed the largest input under the filter by at most sum|h|. The result is the same as
    filtering everything.
    """
    import numpy as np

    data = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if data.size == 0:
        return SILENCE
    factor = 4 if sample_rate < 96000 else 2 if sample_rate < 192000 else 1
    best = float(np.abs(data).max())
    if factor == 1 or best == 0:
        return 20.0 * math.log10(best) if best > 0 else SILENCE
    phases = oversampling_filter(factor)
    width = len(phases[0])
    gain = max(float(np.abs(h).sum()) for h in phases)
    block = 64
    for channel in data:
        n = channel.size
        blocks = -(-(n + width - 1) // block)
        padded = np.zeros((blocks + 1) * block + width - 1)
        padded[width - 1 : width - 1 + n] = channel
        level = np.abs(padded[: (blocks + 1) * block]).reshape(blocks + 1, block).max(axis=1)
        reach = np.maximum(level[:-1], level[1:])  # every input under block b's outputs
        candidates = np.flatnonzero(reach * gain > best)
        if candidates.size == 0:
            continue
        segments = padded[candidates[:, None] * block + np.arange(block + width - 1)]
        for h in phases[1:]:  # phase 0 is the samples themselves
            out = np.zeros((candidates.size, block))
            for k, tap in enumerate(h[::-1]):
                out += tap * segments[:, k : k + block]
            best = max(best, float(np.abs(out).max()))
    return 20.0 * math.log10(best)


def measure(samples, sample_rate: int) -> AudioStats:
    """All three numbers a golden keeps, for (channels, samples) float audio."""
    import numpy as np

    data = np.atleast_2d(np.asarray(samples))
    weighted = k_weighted(data, sample_rate)
    return AudioStats(
        integrated_lufs=round(integrated_loudness(data, sample_rate, weighted=weighted), 4),
        loudness_range_lu=round(loudness_range(data, sample_rate, weighted=weighted), 4),
        true_peak_dbtp=round(true_peak(data, sample_rate), 4),
        sample_rate=int(sample_rate),
        channels=int(data.shape[0]),
        seconds=round(data.shape[1] / sample_rate, 4),
    )

"""Loudness per ITU-R BS.1770-4 / EBU R128, computed in numpy/scipy.

Definitions (docs/golden.md repeats them):
- K-weighting: the two biquads of BS.1770 (high shelf +4 dB near 1682 Hz, high pass near 38 Hz),
  derived for the file's own sample rate as libebur128 does, so 44.1 kHz and 48 kHz read alike.
- Integrated loudness: mean square per channel over 400 ms blocks with 75 % overlap, block loudness
  -0.691 + 10 log10(sum of channel mean squares) (L/R weights 1.0), absolute gate -70 LUFS, then a
  relative gate 10 LU below the loudness of the blocks that passed the absolute gate.
- Loudness range (EBU Tech 3342): 3 s short-term windows every 100 ms, gates -70 LUFS and -20 LU
  relative, LRA = 95th minus 10th percentile of the gated short-term loudness.
- True peak: each channel oversampled 4x (2x at 96 kHz, none at 192 kHz) by polyphase resampling,
  maximum absolute sample in dBTP.
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


def _weighted_power(samples, sample_rate: int, window_s: float, hop_s: float):
    """Sum over channels of the K-weighted mean square of each window (one value per window)."""
    import numpy as np
    from scipy.signal import lfilter

    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    (b1, a1), (b2, a2) = k_weighting(sample_rate)
    weighted = lfilter(b2, a2, lfilter(b1, a1, data, axis=1), axis=1)
    window = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    n = data.shape[1]
    if n < window:
        return np.zeros(0)
    energy = np.concatenate([np.zeros((data.shape[0], 1)), np.cumsum(weighted * weighted, axis=1)], axis=1)
    starts = np.arange(0, n - window + 1, hop)
    per_channel = (energy[:, starts + window] - energy[:, starts]) / window
    return per_channel.sum(axis=0)


def _to_lufs(power):
    import numpy as np

    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def integrated_loudness(samples, sample_rate: int) -> float:
    """Gated integrated loudness in LUFS of (channels, samples) audio in [-1, 1]; -120 for silence."""

    power = _weighted_power(samples, sample_rate, 0.4, 0.1)
    loud = _to_lufs(power)
    gated = power[loud > ABSOLUTE_GATE]
    if gated.size == 0:
        return SILENCE
    relative = float(_to_lufs(gated.mean())) + RELATIVE_GATE_INTEGRATED
    final = power[(loud > ABSOLUTE_GATE) & (loud > relative)]
    return float(_to_lufs(final.mean())) if final.size else SILENCE


def loudness_range(samples, sample_rate: int) -> float:
    """Loudness range in LU (EBU Tech 3342); 0 when shorter than one 3 s window."""
    import numpy as np

    power = _weighted_power(samples, sample_rate, 3.0, 0.1)
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


def true_peak(samples, sample_rate: int) -> float:
    """Maximum inter-sample peak in dBTP (oversampled 4x below 96 kHz)."""
    import numpy as np
    from scipy.signal import resample_poly

    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    factor = 4 if sample_rate < 96000 else 2 if sample_rate < 192000 else 1
    peak = 0.0
    for channel in data:
        upsampled = resample_poly(channel, factor, 1) if factor > 1 else channel
        peak = max(peak, float(np.max(np.abs(upsampled))) if upsampled.size else 0.0)
    return 20.0 * math.log10(peak) if peak > 0 else SILENCE


def measure(samples, sample_rate: int) -> AudioStats:
    """All three numbers a golden keeps, for (channels, samples) float audio."""
    import numpy as np

    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    return AudioStats(
        integrated_lufs=round(integrated_loudness(data, sample_rate), 4),
        loudness_range_lu=round(loudness_range(data, sample_rate), 4),
        true_peak_dbtp=round(true_peak(data, sample_rate), 4),
        sample_rate=int(sample_rate),
        channels=int(data.shape[0]),
        seconds=round(data.shape[1] / sample_rate, 4),
    )

"""The music bed: a short piece synthesized from the game's name, then mastered to -16 LUFS.

Deterministic: the key, chords and arpeggio come from the slug (no random state from outside),
so the same game gives the same samples on the same platform. Mastering measures with
mobius.measure.loudness, sets the gain for the target integrated loudness, and limits peaks so
that true peak stays at or below the ceiling.
"""

from __future__ import annotations

import hashlib

SAMPLE_RATE = 48000
TARGET_LUFS = -16.0
CEILING_DBTP = -1.0
PROGRESSIONS = ([0, 9, 5, 7], [0, 5, 9, 7], [0, 7, 9, 5], [9, 5, 0, 7])
MAJOR = [0, 2, 4, 5, 7, 9, 11]


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def _triad(root_offset: int) -> list[int]:
    degree = MAJOR.index(root_offset % 12) if root_offset % 12 in MAJOR else 0
    return [MAJOR[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]


def compose(slug: str, seconds: float, sample_rate: int = SAMPLE_RATE):
    """A stereo (2, n) float64 bed: pad chords, a plucked arpeggio and a soft bass, with fades."""
    import numpy as np

    seed = hashlib.sha256(slug.encode()).digest()
    key = 48 + seed[0] % 12
    progression = PROGRESSIONS[seed[1] % len(PROGRESSIONS)]
    bpm = 84 + seed[2] % 24
    beat = 60.0 / bpm
    n = int(round(seconds * sample_rate))
    out = np.zeros((2, n))
    t_all = np.arange(n) / sample_rate

    def add(start: float, length: float, midi: float, amp: float, pan: float, decay: float | None) -> None:
        i0 = int(start * sample_rate)
        i1 = min(n, int((start + length) * sample_rate))
        if i0 >= n or i1 <= i0:
            return
        t = t_all[: i1 - i0]
        f = _hz(midi)
        wave = np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t) + 0.08 * np.sin(6 * np.pi * f * t)
        attack = np.minimum(1.0, t / 0.02)
        if decay is None:
            release = np.minimum(1.0, (length - t) / 0.3).clip(0.0)
            env = np.minimum(np.minimum(1.0, t / 0.4), release)
        else:
            env = attack * np.exp(-t / decay)
        signal = amp * env * wave
        out[0, i0:i1] += signal * (1.0 - pan)
        out[1, i0:i1] += signal * (1.0 + pan)

    bar = 4 * beat
    step = 0
    start = 0.0
    while start < seconds:
        chord = [key + progression[step % 4] + x for x in _triad(progression[step % 4] % 12)]
        for k, note in enumerate(chord):
            add(start, bar + 0.2, note, 0.10, (-0.3, 0.0, 0.3)[k], None)
        for b in range(4):
            add(start + b * beat, beat, chord[0] - 12, 0.16, 0.0, 0.35)
        for e in range(8):
            note = chord[(e * (1 + seed[3] % 2)) % 3] + 12 * (1 if e % 4 >= 2 else 0)
            add(start + e * beat / 2, beat, note + 12, 0.07, -0.5 if e % 2 else 0.5, 0.18)
        start += bar
        step += 1
    fade_in = np.minimum(1.0, t_all / 0.5)
    fade_out = np.minimum(1.0, (seconds - t_all) / 1.0).clip(0.0)
    return out * fade_in * fade_out


def limit(samples, sample_rate: int, ceiling_dbtp: float):
    """A look-ahead peak limiter: a smooth gain that keeps the 4x-oversampled peaks under the ceiling."""
    import numpy as np
    from scipy.ndimage import maximum_filter1d, uniform_filter1d
    from scipy.signal import resample_poly

    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    over = np.abs(resample_poly(samples, 4, 1, axis=1)).max(axis=0)
    envelope = over.reshape(-1, 4).max(axis=1)[: samples.shape[1]]
    window = max(1, int(0.005 * sample_rate))
    envelope = maximum_filter1d(envelope, size=4 * window)
    gain = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    gain = uniform_filter1d(gain, size=2 * window)
    return samples * gain


def master(samples, sample_rate: int, *, target_lufs: float = TARGET_LUFS, ceiling_dbtp: float = CEILING_DBTP):
    """Gain to `target_lufs` integrated, then limit to `ceiling_dbtp` true peak (a few passes)."""
    from mobius.measure.loudness import SILENCE, integrated_loudness, true_peak

    out = samples
    for _ in range(4):
        loudness = integrated_loudness(out, sample_rate)
        if loudness <= SILENCE:
            return out
        out = out * 10.0 ** ((target_lufs - loudness) / 20.0)
        if true_peak(out, sample_rate) <= ceiling_dbtp - 0.3:
            break
        out = limit(out, sample_rate, ceiling_dbtp - 0.5)
    return out

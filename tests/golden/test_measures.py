"""The SSIM and loudness definitions, cross-checked against reference implementations."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobius.measure.decode import read_media
from mobius.measure.loudness import integrated_loudness, loudness_range, measure, true_peak
from mobius.measure.ssim import ssim

from .conftest import GAME


def skimage_ssim(a, b) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=255))


@pytest.fixture(scope="module")
def frames(approved: Path, perturbed: dict) -> dict[str, np.ndarray]:
    golden = np.asarray(Image.open(approved / "tests" / "golden" / GAME / "frames" / "frame_10s.png"))
    boxed = read_media(perturbed["box"], [10.0], with_audio=False).frames[10.0]
    buffer = io.BytesIO()
    Image.fromarray(golden).save(buffer, format="JPEG", quality=90)
    jpeg = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    return {"golden": golden, "boxed": boxed, "jpeg": jpeg}


def test_ssim_matches_scikit_image(frames: dict):
    rng = np.random.default_rng(7)
    noisy = np.clip(frames["golden"] + rng.normal(0, 12, frames["golden"].shape), 0, 255).astype(np.uint8)
    for other in (frames["boxed"], frames["jpeg"], noisy):
        assert ssim(frames["golden"], other) == pytest.approx(skimage_ssim(frames["golden"], other), abs=1e-3)
    assert 0.99 < ssim(frames["golden"], frames["jpeg"]) < 1.0


def test_identical_planes_score_exactly_one(frames: dict):
    assert ssim(frames["golden"], frames["golden"].copy()) == 1.0


def test_stored_golden_plane_equals_a_fresh_decode(approved: Path, frames: dict):
    fresh = read_media(approved / "out" / GAME / "preview.mp4", [10.0], with_audio=False).frames[10.0]
    assert np.array_equal(fresh, frames["golden"])


def test_integrated_loudness_matches_pyloudnorm():
    import pyloudnorm

    rng = np.random.default_rng(11)
    for rate in (48000, 44100):
        t = np.arange(rate * 12) / rate
        signal = np.stack([0.2 * np.sin(2 * np.pi * 997 * t), 0.05 * rng.normal(size=t.size)])
        signal[:, : rate * 3] *= 0.05  # a quiet start the relative gate must drop
        ours = integrated_loudness(signal, rate)
        reference = pyloudnorm.Meter(rate).integrated_loudness(signal.T)
        assert ours == pytest.approx(reference, abs=0.1)


def test_render_loudness_matches_pyloudnorm_and_meets_the_targets(approved: Path):
    import pyloudnorm

    sample = read_media(approved / "out" / GAME / "preview.mp4", [1.0])
    stats = measure(sample.audio, sample.sample_rate)
    reference = pyloudnorm.Meter(sample.sample_rate).integrated_loudness(sample.audio.T)
    assert stats.integrated_lufs == pytest.approx(reference, abs=0.1)
    assert stats.integrated_lufs == pytest.approx(-16.0, abs=0.3)
    assert stats.true_peak_dbtp <= -1.0


def test_true_peak_sees_intersample_peaks_like_polyphase_resampling():
    from scipy.signal import resample_poly

    rate = 48000
    t = np.arange(rate) / rate
    # a quarter-rate sine sampled at 45 degrees: every sample sits at 0.707 of the real peak (-3 dB)
    tone = 0.5 * np.sin(2 * np.pi * 12000 * t + np.pi / 4)[None]
    sample_peak = 20 * np.log10(np.abs(tone).max())
    reference = 20 * np.log10(np.abs(resample_poly(tone, 4, 1, axis=1)).max())
    assert true_peak(tone, rate) == pytest.approx(reference, abs=0.1)
    assert true_peak(tone, rate) > sample_peak + 2.5


def test_loudness_range_of_a_two_level_signal():
    rate = 48000
    t = np.arange(rate * 20) / rate
    tone = np.sin(2 * np.pi * 1000 * t)
    level = np.where(t < 10, 0.05, 0.2)  # two halves 12 dB apart
    lra = loudness_range(np.stack([tone * level, tone * level]), rate)
    assert 10.0 < lra < 12.5


def test_gaussian_blur_matches_scipy_gaussian_filter_including_edges() -> None:
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from mobius.measure.ssim import gaussian_blur

    plane = np.random.default_rng(7).integers(0, 256, size=(54, 96)).astype(np.float64)
    expected = gaussian_filter(plane, sigma=1.5, truncate=3.5, mode="reflect")
    assert np.abs(gaussian_blur(plane) - expected).max() < 1e-9


def _ssim_map_filtering_everything(x, y):
    """The SSIM map by the definition: the five statistics blurred over the whole plane, then the formula."""
    from mobius.measure.ssim import DATA_RANGE, K1, K2, gaussian_blur

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mu_x, mu_y, xx, yy, xy = (gaussian_blur(m) for m in (x, y, x * x, y * y, x * y))
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * (xy - mu_x * mu_y) + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * ((xx - mu_x * mu_x) + (yy - mu_y * mu_y) + c2))


@pytest.mark.parametrize("rows", [(0,), (36,), (37,), (31, 32), (100, 101, 102), (539,), (270, 5)])
def test_ssim_map_of_a_local_change_is_the_whole_plane_filtering_to_the_bit(rows: tuple[int, ...]) -> None:
    """Rows whose window holds equal pixels are set to 1.0 without filtering: the map must still be, bit for
    bit, the one filtering every row gives (a change just inside or outside a chunk's window included)."""
    from mobius.measure.ssim import ssim_map

    rng = np.random.default_rng(sum(rows))
    golden = rng.integers(0, 256, size=(540, 64), dtype=np.uint8)
    current = golden.copy()
    for row in rows:
        current[row, int(rng.integers(0, 64))] ^= 0x5A
    expected = _ssim_map_filtering_everything(golden, current)
    got = ssim_map(golden, current)
    assert got.tobytes() == expected.tobytes()
    assert (expected != 1.0).any()


def test_ssim_map_of_a_boxed_frame_is_the_whole_plane_filtering_to_the_bit(frames: dict) -> None:
    from mobius.measure.ssim import ssim_map

    for other in (frames["boxed"], frames["jpeg"]):
        assert ssim_map(frames["golden"], other).tobytes() == \
            _ssim_map_filtering_everything(frames["golden"], other).tobytes()


def _blended(backdrop, level, threshold: float):
    """The heat-map definition: HEAT's colour where level > threshold, else the backdrop at 35 %, both as
    full-size float pictures, + 0.5, clipped and truncated to 8 bits."""
    from mobius.golden.report import HEAT

    xs = [p for p, _ in HEAT]
    rgb = np.stack([np.interp(level, xs, [c[k] for _, c in HEAT]) for k in range(3)], axis=-1)
    backdrop = np.asarray(backdrop, dtype=np.float64)[..., None] * 0.35
    return np.clip(np.where(level[..., None] > threshold, rgb, backdrop) + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_heat_maps_are_the_blend_of_two_full_size_pictures_to_the_bit(seed: int, tmp_path: Path) -> None:
    """The heat maps colour only the pixels they show and dim the rest by a table: the bytes must still be
    those of blending a full-size colour picture with a full-size dimmed one."""
    from mobius.golden.report import block_debug_images, heatmap
    from mobius.measure.ssim import ssim_map

    rng = np.random.default_rng(seed)
    golden = rng.integers(0, 256, size=(540, 960), dtype=np.uint8)
    current = golden.copy()
    current[200:330, 370:590] = rng.integers(0, 256, size=(130, 220))
    if seed == 3:
        current = rng.integers(0, 256, size=golden.shape, dtype=np.uint8)
    similarity = ssim_map(golden, current)
    level = np.clip(np.clip(1.0 - similarity, 0.0, 1.0) / 0.5, 0.0, 1.0)
    assert heatmap(golden, current, similarity).tobytes() == _blended(golden, level, 0.02).tobytes()

    blocks = {p: rng.integers(0, 256, size=s, dtype=np.uint8) for p, s in (("y", (36, 64)), ("u", (18, 32)),
                                                                           ("v", (18, 32)))}
    mine = {p: b.copy() for p, b in blocks.items()}
    mine["y"][5:9, 10:20] = np.clip(mine["y"][5:9, 10:20].astype(int) + 9 * (seed + 1), 0, 255)
    mine["u"][3:5, 20:25] = 255 - mine["u"][3:5, 20:25]
    loss = np.abs(blocks["y"].astype(np.float32) - mine["y"].astype(np.float32))
    for plane in ("u", "v"):
        chroma = np.abs(blocks[plane].astype(np.float32) - mine[plane].astype(np.float32))
        loss = np.maximum(loss, np.kron(chroma, np.ones((2, 2), dtype=np.float32)))
    rows = np.arange(540) * 36 // 540
    cols = np.arange(960) * 64 // 960
    expected = _blended(current, np.clip(loss[rows][:, cols] / 64.0, 0.0, 1.0), 0.05)
    written = block_debug_images(tmp_path, "range", current, blocks, mine)
    assert np.asarray(Image.open(written["diff"])).tobytes() == expected.tobytes()

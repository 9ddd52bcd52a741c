"""Structural similarity on luma, defined once so that verdicts do not depend on a tool's defaults.

SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) on the 8-bit luma plane (Y of the decoded yuv420p
frame), data range L = 255, K1 = 0.01, K2 = 0.03, local statistics weighted by an 11x11 Gaussian
window with sigma 1.5 (the weights and mirrored edges of scipy.ndimage.gaussian_filter with truncate
3.5, computed here as two separable numpy passes: importing scipy.ndimage cost 0.4 s per check), population
(co)variances. The score is the mean of the SSIM map after cropping 5 pixels at each edge -- the
same convention as scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255). Identical planes score exactly 1.0.
"""

from __future__ import annotations

SIGMA = 1.5
TRUNCATE = 3.5
WINDOW = 2 * int(TRUNCATE * SIGMA + 0.5) + 1  # 11
K1, K2, DATA_RANGE = 0.01, 0.03, 255.0


def gaussian_blur(plane):
    """scipy.ndimage.gaussian_filter(plane, 1.5, truncate=3.5, mode="reflect"), as separable passes."""
    import numpy as np

    radius = (WINDOW - 1) // 2
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / SIGMA) ** 2)
    weights /= weights.sum()
    padded = np.pad(plane, radius, mode="symmetric")  # scipy's "reflect": d c b a | a b c d | d c b a
    height, width = plane.shape
    rows = sum(w * padded[i : i + height, :] for i, w in enumerate(weights))
    return sum(w * rows[:, i : i + width] for i, w in enumerate(weights))


def ssim_map(golden, current):
    """The per-pixel SSIM map (float64, same shape as the planes, edges included)."""
    import numpy as np

    x = np.asarray(golden, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"planes differ in size: {x.shape} vs {y.shape}")

    mu_x, mu_y = gaussian_blur(x), gaussian_blur(y)
    var_x = gaussian_blur(x * x) - mu_x * mu_x
    var_y = gaussian_blur(y * y) - mu_y * mu_y
    cov = gaussian_blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))


def ssim(golden, current) -> float:
    """Mean SSIM over the valid region (5-pixel border cropped); 1.0 exactly for identical planes."""
    return ssim_and_map(golden, current)[0]


def ssim_and_map(golden, current):
    """(score, map); the map is None when the planes are identical (no filtering done)."""
    import numpy as np

    x = np.asarray(golden)
    y = np.asarray(current)
    if x.shape == y.shape and np.array_equal(x, y):
        return 1.0, None
    pad = (WINDOW - 1) // 2
    full = ssim_map(x, y)
    return float(full[pad:-pad, pad:-pad].mean(dtype=np.float64)), full

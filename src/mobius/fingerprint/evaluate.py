"""Accuracy of a hash version: precision and recall on near-duplicates made from known images.

Each source image yields five edited copies a library really receives (re-encoded at JPEG quality
40, resized to half, 5% cropped, 10% brighter, mirrored). A pair (source, its copy) should match;
any pair of images from different sources should not. Reported per distance, for exact mode, fast
mode, and exact mode with the flip/rotation variants (imagededup's harness does the same for its
hashes; ImageHash has none).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from mobius.fingerprint.algorithm import EXACT, FAST, Algorithm, dhash_image

EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg40": lambda im: im,
    "resize50": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.BICUBIC),
    "crop5": lambda im: im.crop((round(im.width * 0.025), round(im.height * 0.025),
                                 round(im.width * 0.975), round(im.height * 0.975))),
    "bright10": lambda im: ImageEnhance.Brightness(im).enhance(1.10),
    "flip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}
DISTANCES = (4, 6, 8, 10)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_set(sources: Sequence[Image.Image]) -> tuple[list[bytes], np.ndarray, list[str]]:
    """JPEG bytes of every source and its edits; `group[k]` is the source index, `edit[k]` the edit name."""
    images, group, edit = [], [], []
    for n, source in enumerate(sources):
        images.append(_jpeg(source, 90))
        group.append(n)
        edit.append("original")
        for name, change in EDITS.items():
            images.append(_jpeg(change(source), 40 if name == "jpeg40" else 90))
            group.append(n)
            edit.append(name)
    return images, np.array(group), edit


def _hashes(images: list[bytes], algorithm: Algorithm, variants: bool) -> np.ndarray:
    out = []
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            out.append(dhash_image(image, algorithm, variants=variants))
    return np.array(out, dtype=np.uint64)


def _score(hashes: np.ndarray, group: np.ndarray, edit: list[str]) -> dict[int, dict[str, float]]:
    primary = hashes[:, 0]
    # distance[i, j]: best over image i's variants against image j's plain hash (variants: 8 columns)
    dist = np.min(np.bitwise_count(hashes[:, :, None] ^ primary[None, None, :]), axis=1)
    dist = np.minimum(dist, dist.T)
    originals = np.array([e == "original" for e in edit])
    positive = originals[:, None] & (group[:, None] == group[None, :]) & ~np.eye(len(group), dtype=bool)
    negative = group[:, None] != group[None, :]
    upper = np.triu(np.ones_like(positive), 1)
    scores = {}
    for d in DISTANCES:
        match = dist <= d
        tp = int((match & positive).sum())
        fp = int((match & negative & upper).sum())
        total = int(positive.sum())
        scores[d] = {"precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
                     "recall": round(tp / total, 4) if total else 0.0, "false_pairs": fp}
    return scores


def evaluate(sources: Sequence[Image.Image]) -> dict[str, Any]:
    """Precision/recall at distances 4, 6, 8, 10 for exact, fast and exact+variants, and recall per edit."""
    images, group, edit = make_set(sources)
    modes = {"exact": (EXACT, False), "fast": (FAST, False), "exact+variants": (EXACT, True)}
    result: dict[str, Any] = {"sources": len(sources), "images": len(images), "edits": list(EDITS), "modes": {}}
    for name, (algorithm, variants) in modes.items():
        hashes = _hashes(images, algorithm, variants)
        per_edit = {}
        for edit_name in EDITS:
            rows = [k for k, e in enumerate(edit) if e == edit_name]
            originals = [group.tolist().index(group[k]) for k in rows]
            d = np.min(np.bitwise_count(hashes[rows] ^ hashes[originals, :1]), axis=1)
            per_edit[edit_name] = {"mean_bits": round(float(d.mean()), 2), "recall@6": round(float((d <= 6).mean()), 4)}
        result["modes"][name] = {"algorithm": algorithm.id, "by_distance": _score(hashes, group, edit),
                                 "by_edit": per_edit}
    return result

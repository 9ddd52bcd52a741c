"""Deterministic test images: the same bytes on every machine (NumPy's seeded PCG64 and Pillow encoders)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth random picture with a few shapes: uncorrelated dHashes for different seeds."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y = (int(v) for v in rng.integers(0, size[0] - 40, 2))
        r = int(rng.integers(10, 60))
        draw.ellipse((x, y, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def golden_images() -> dict[str, bytes]:
    """The images whose hashes are pinned in test_algorithm.GOLDEN: JPEG, PNG, grayscale, palette, 16-bit, RGBA."""
    out = {}
    for seed in range(4):
        out[f"jpeg-{seed}"] = encode(picture(seed, (1024, 768)), "JPEG", quality=85)
        out[f"png-{seed}"] = encode(picture(100 + seed), "PNG")
    out["gray"] = encode(picture(7).convert("L"), "PNG")
    out["palette"] = encode(picture(8).convert("P", palette=Image.Palette.ADAPTIVE, colors=32), "PNG")
    out["gray16"] = encode(Image.fromarray(np.asarray(picture(9).convert("L"), dtype=np.uint16)), "PNG")
    out["cmyk-jpeg"] = encode(picture(10).convert("CMYK"), "JPEG", quality=90)
    out["rgba"] = encode(transparent_card(11), "PNG")
    out["gradient"] = encode(Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((300, 200)), "PNG")
    out["flat"] = encode(Image.new("RGB", (64, 64), (120, 30, 200)), "PNG")
    return out


def transparent_card(seed: int) -> Image.Image:
    """A drawing on a transparent background whose hidden RGB is black (what ImageHash hashes)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, 250)), int(rng.integers(0, 150))
        draw.rectangle((x, y, x + 50, y + 40), fill=(*(int(c) for c in rng.integers(0, 256, 3)), 255))
    return image


def write_library(root: Path, count: int = 6) -> dict[str, Path]:
    """A small library: `count` distinct pictures (PNG and JPEG), a re-encoded and a resized near-duplicate."""
    files = {}
    for n in range(count):
        rel = f"cards/card-{n}.png" if n % 2 else f"boards/board-{n}.jpg"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(picture(200 + n), "PNG" if n % 2 else "JPEG", quality=90))
        files[rel] = path
    near = root / "scans/board-0 (rescan).jpg"
    near.parent.mkdir(parents=True, exist_ok=True)
    near.write_bytes(encode(picture(200).resize((256, 192)), "JPEG", quality=60))
    files["scans/board-0 (rescan).jpg"] = near
    return files

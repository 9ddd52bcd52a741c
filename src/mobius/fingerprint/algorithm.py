"""dHash, defined once: ImageHash's `dhash` is the reference, and every hash names the algorithm that made it.

Exact mode is ImageHash's definition bit for bit (grayscale, resize to 9x8 with LANCZOS, a bit per
horizontally adjacent pair that gets brighter, 64 bits, first bit most significant as ImageHash's
`str()` writes it), except that transparent images are composited on white first (ImageHash drops
the alpha channel, so a transparent background hashes as whatever colour hides under it, often black).

Fast mode asks the JPEG decoder for a reduced-size grayscale image (`Image.draft`: libjpeg scales by
1/2, 1/4 or 1/8 while it decodes) before the same resize. It is several times faster and differs from
exact mode in a fraction of a bit on average, so it is a different algorithm version and the two are
never compared with each other.

A resize's output depends on Pillow's resampling code, which has changed between releases
(ImageHash#32, #169), so the Pillow major version is part of the algorithm id: a hash computed under
another Pillow is a different version, and golden vectors in the tests pin each one.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from mobius.errors import InputError

HASH_SIZE = 8
MODES = ("exact", "fast")
RESAMPLERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
              "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}
PILLOW_MAJOR = int(PIL.__version__.split(".")[0])
WHITE = (255, 255, 255, 255)
# The eight symmetries of a square (identity first); variant k of an image is dhash(transpose_k(image)).
VARIANTS: tuple[Image.Transpose | None, ...] = (
    None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE)


@dataclass(frozen=True)
class Algorithm:
    """One hash definition; its `id` is stored with every hash (`dhash8-exact-lanczos-pil13`)."""

    mode: str = "exact"
    resampler: str = "lanczos"
    pillow_major: int = PILLOW_MAJOR
    size: int = HASH_SIZE

    @property
    def id(self) -> str:
        return f"dhash{self.size}-{self.mode}-{self.resampler}-pil{self.pillow_major}"

    @property
    def computable(self) -> bool:
        """Only the running Pillow can compute a version (another major may resample differently)."""
        return self.pillow_major == PILLOW_MAJOR

    @classmethod
    def parse(cls, text: str) -> Algorithm:
        """An id (`dhash8-fast-lanczos-pil13`) or a mode name (`exact`, `fast`) for the running Pillow."""
        if text in MODES:
            return cls(mode=text)
        parts = text.split("-")
        try:
            size_part, mode, resampler, pil = parts
            size = int(size_part.removeprefix("dhash"))
            major = int(pil.removeprefix("pil"))
            if not size_part.startswith("dhash") or not pil.startswith("pil"):
                raise ValueError
        except ValueError:
            raise InputError(f"not a hash algorithm version: {text!r}",
                             hint=f"use exact, fast or an id like {cls().id}") from None
        if size != HASH_SIZE or mode not in MODES or resampler not in RESAMPLERS:
            raise InputError(f"unsupported hash algorithm {text!r}",
                             hint=f"size {HASH_SIZE}, mode {'/'.join(MODES)}, resampler {'/'.join(RESAMPLERS)}")
        return cls(mode=mode, resampler=resampler, pillow_major=major, size=size)


EXACT = Algorithm("exact")
FAST = Algorithm("fast")


def to_hex(value: int) -> str:
    """16 hex digits, as ImageHash's `str()` writes a 64-bit hash."""
    return f"{value:016x}"


def to_signed(value: int) -> int:
    """The unsigned 64-bit hash as the signed BIGINT both databases store."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def flatten(image: Image.Image) -> Image.Image:
    """Opaque pixels: transparent images composited on white (never on the black under a transparent pixel)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, WHITE)
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def _grayscale(image: Image.Image, algorithm: Algorithm) -> Image.Image:
    if algorithm.mode == "fast" and image.format == "JPEG":
        # The smallest 1/2^k scale still at least 4x the output keeps the resize's input representative.
        image.draft("L", (algorithm.size * 4 + 4, algorithm.size * 4))
    return flatten(image).convert("L")


def _bits(gray: Image.Image, algorithm: Algorithm) -> int:
    small = gray.resize((algorithm.size + 1, algorithm.size), RESAMPLERS[algorithm.resampler])
    pixels = np.asarray(small)
    diff = pixels[:, 1:] > pixels[:, :-1]
    return int.from_bytes(np.packbits(diff.ravel()).tobytes(), "big")


def require_computable(algorithm: Algorithm) -> None:
    """Refuse (exit 1) a version this Pillow cannot reproduce."""
    if not algorithm.computable:
        raise InputError(f"{algorithm.id} needs Pillow {algorithm.pillow_major}; this is Pillow {PIL.__version__}",
                         hint=f"hash with {Algorithm(algorithm.mode, algorithm.resampler).id} instead")


def dhash_image(image: Image.Image, algorithm: Algorithm = EXACT, *, variants: bool = False) -> list[int]:
    """[hash] or, with `variants`, the hashes of the 8 flips/rotations (the plain hash first)."""
    require_computable(algorithm)
    gray = _grayscale(image, algorithm)
    if not variants:
        return [_bits(gray, algorithm)]
    return [_bits(gray if op is None else gray.transpose(op), algorithm) for op in VARIANTS]


def dhash(source: str | Path | bytes | Image.Image, algorithm: Algorithm = EXACT) -> int:
    """The 64-bit dHash of an image file, bytes or PIL image."""
    if isinstance(source, Image.Image):
        return dhash_image(source, algorithm)[0]
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return dhash_image(image, algorithm)[0]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One file's outcome: a hash (and variants), or the reason it could not be read as an image."""

    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    hash: int | None
    variants: tuple[int, ...] | None
    error: str | None
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "hash": None if self.hash is None else to_hex(self.hash),
                "error": self.error, "seconds": round(self.seconds, 6)}


def hash_file(path: str | Path, algorithm: Algorithm = EXACT, *, variants: bool = False,
              label: str | None = None) -> Fingerprint:
    """Read a file once (sha256 over the same bytes), hash it; a failure becomes the Fingerprint's reason."""
    started = time.perf_counter()
    label = label or str(path)
    try:
        st = Path(path).stat()
        data = Path(path).read_bytes()
    except OSError as exc:
        return Fingerprint(label, 0, 0, None, None, None, f"unreadable: {exc.strerror or exc}",
                           time.perf_counter() - started)
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            hashes = dhash_image(image, algorithm, variants=variants)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        error = f"too large: {exc}"
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        error = "not an image" if isinstance(exc, Image.UnidentifiedImageError) else \
            f"undecodable: {type(exc).__name__}: {exc}"
    else:
        return Fingerprint(label, st.st_size, st.st_mtime_ns, digest, hashes[0],
                           tuple(hashes) if variants else None, None, time.perf_counter() - started)
    return Fingerprint(label, st.st_size, st.st_mtime_ns, digest, None, None, error, time.perf_counter() - started)


def hash_batch(paths: Iterable[str | Path | tuple[str, str]], mode: str,
               variants: bool = False) -> list[Fingerprint]:
    """Hash files with algorithm `mode` (exact, fast or an id); an item is a path or (path, library path).

    A plain top-level function of picklable arguments, so a process pool or a shared executor can run it.
    """
    algorithm = Algorithm.parse(mode)
    out = []
    for item in paths:
        absolute, label = item if isinstance(item, tuple) else (item, str(item))
        out.append(hash_file(absolute, algorithm, variants=variants, label=label))
    return out


def hash_task(ws: object, task: tuple[list[tuple[str, str]], str, bool]) -> list[Fingerprint]:
    """`hash_batch` as an executor task (`run_items` calls fn(ws, value)): value is (items, mode, variants)."""
    items, mode, variants = task
    return hash_batch(items, mode, variants)

"""The hash definition: ImageHash's dhash bit for bit, pinned by golden vectors per Pillow major version."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from mobius.errors import InputError
from mobius.fingerprint.algorithm import (
    EXACT,
    FAST,
    PILLOW_MAJOR,
    Algorithm,
    dhash,
    dhash_image,
    hash_batch,
    hash_file,
    to_hex,
)

sys.path.insert(0, str(Path(__file__).parent))

from images import encode, golden_images, picture, transparent_card  # noqa: E402

# (exact, fast) per golden image, per algorithm id. A Pillow upgrade changes the ids (pilNN): add the
# new goldens only after checking `library rehash --to exact` on a real library says what changed.
GOLDEN = {
    ("dhash8-exact-lanczos-pil13", "dhash8-fast-lanczos-pil13"): {
        "jpeg-0": ("b0b3366c4c4727a5", "b0b3366c4c4727a5"),
        "png-0": ("599da4258f9b9b3d", "599da4258f9b9b3d"),
        "jpeg-1": ("1986c6663f353178", "1986c6663f353178"),
        "png-1": ("4dcf266679706ca1", "4dcf266679706ca1"),
        "jpeg-2": ("7227a69619cee633", "7227a69619cee633"),
        "png-2": ("a13b6e6e3393c4cd", "a13b6e6e3393c4cd"),
        "jpeg-3": ("2093db723435634c", "2093db723435634c"),
        "png-3": ("3219981838cc9c33", "3219981838cc9c33"),
        "gray": ("999b9124c9f026cf", "999b9124c9f026cf"),
        "palette": ("8dc9d19386266425", "8dc9d19386266425"),
        "gray16": ("c95869696cb7b3ce", "c95869696cb7b3ce"),
        "cmyk-jpeg": ("c66739d9cd6d4ece", "c66739d9cd6d4ece"),
        "rgba": ("6968691166461e16", "6968691166461e16"),
        "gradient": ("ffffffffffffffff", "ffffffffffffffff"),
        "flat": ("0000000000000000", "0000000000000000"),
    },
}


def test_golden_vectors_pin_the_definition():
    key = (EXACT.id, FAST.id)
    assert key in GOLDEN, f"no golden vectors for {key}: Pillow {PILLOW_MAJOR} may resample differently"
    got = {name: (to_hex(dhash(data, EXACT)), to_hex(dhash(data, FAST))) for name, data in golden_images().items()}
    assert got == GOLDEN[key]


def test_exact_mode_is_bit_identical_to_imagehash():
    images = {name: data for name, data in golden_images().items() if name != "rgba"}
    for seed in range(20):
        images[f"extra-{seed}"] = encode(picture(500 + seed, (200 + 13 * seed, 150 + 7 * seed)),
                                         "JPEG" if seed % 2 else "PNG", quality=70 + seed)
    for name, data in images.items():
        reference = str(imagehash.dhash(Image.open(io.BytesIO(data))))
        assert to_hex(dhash(data, EXACT)) == reference, name


def test_transparent_image_is_hashed_on_white_not_black():
    card = transparent_card(11)
    on_white = Image.new("RGB", card.size, (255, 255, 255))
    on_white.paste(card, mask=card.getchannel("A"))
    assert dhash(card) == dhash(on_white)
    assert to_hex(dhash(card)) != str(imagehash.dhash(card))  # ImageHash sees the black under the alpha
    palette = card.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert bin(dhash(palette) ^ dhash(on_white)).count("1") <= 2


def test_fast_mode_is_another_version_close_to_exact():
    assert FAST.id != EXACT.id and "fast" in FAST.id and f"pil{PILLOW_MAJOR}" in EXACT.id
    bits = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        noisy = np.asarray(picture(seed, (1024, 768)), dtype=np.int16) + rng.normal(0, 6, (768, 1024, 1))
        data = encode(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), "JPEG", quality=85)
        bits.append(bin(dhash(data, EXACT) ^ dhash(data, FAST)).count("1"))
    assert np.mean(bits) <= 1.0


def test_variants_are_the_hashes_of_the_flipped_and_rotated_image():
    image = picture(3)
    hashes = dhash_image(image, EXACT, variants=True)
    assert len(hashes) == 8 and hashes[0] == dhash(image)
    assert hashes[1] == dhash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert hashes[4] == dhash(image.transpose(Image.Transpose.ROTATE_90))
    assert len(set(hashes)) == 8


def test_versions_parse_and_another_pillow_is_refused():
    assert Algorithm.parse("fast") == FAST
    assert Algorithm.parse(EXACT.id) == EXACT
    other = Algorithm.parse(f"dhash8-exact-lanczos-pil{PILLOW_MAJOR - 1}")
    assert not other.computable
    with pytest.raises(InputError, match=f"needs Pillow {PILLOW_MAJOR - 1}"):
        dhash(picture(1), other)
    for bad in ("dhash16-exact-lanczos-pil13", "phash", "dhash8-exact-nearest-pil13"):
        with pytest.raises(InputError):
            Algorithm.parse(bad)


def test_unreadable_and_non_image_files_become_reasons(tmp_path: Path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(picture(1), "PNG"))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(encode(picture(2), "JPEG")[:400])
    results = hash_batch([(str(p), p.name) for p in (good, text, truncated, tmp_path / "gone.png")], "exact")
    assert [r.error is None for r in results] == [True, False, False, False]
    assert results[1].error == "not an image"
    assert results[2].error.startswith("undecodable")
    assert results[3].error.startswith("unreadable")
    assert results[0].hash == dhash(good) and results[0].sha256 and results[0].size == good.stat().st_size
    assert hash_file(good, EXACT, variants=True).variants[0] == results[0].hash
    assert hash_batch([good], "fast")[0].path == str(good)

"""The per-frame signature: a small picture of each frame, made of exact block means.

Each decoded frame is cut into a GRID of 36 x 64 blocks on the luma plane and 18 x 32 on each chroma
plane (15 x 15 pixels for a 960 x 540 yuv420p frame, the remainder at the right and bottom edges
cropped), and every block is replaced by its mean, rounded to 8 bits. Block means average away the
compression noise of a re-encode (hundreds of pixels per block) while a change a viewer notices (an
object drawn, a colour shift, a wrong picture) moves whole blocks by tens of levels. Chroma is kept
because a colour shift can leave the luma untouched.

Differences are in 8-bit levels (0-255), the unit people read off a picture:
- `content_difference`: the mean over the most-changed 1 % of the blocks of the worst plane. A change
  covering less than 1 % of the picture is diluted in proportion (docs/golden.md gives the numbers).
- `largest_block_difference`: the largest single block difference, used for motion (a progress bar
  advancing one pixel moves one block by ~10 levels) when telling frozen frames from moving ones.
"""

from __future__ import annotations

LUMA_GRID = (36, 64)
CHROMA_GRID = (18, 32)
TOP_FRACTION = 0.01
PLANES = ("y", "u", "v")


def block_means(plane, grid: tuple[int, int]):
    """Exact block means of a 2-D uint8 plane on `grid` (rows, columns), as float32."""
    import numpy as np

    rows, cols = grid
    height, width = plane.shape
    bh, bw = max(1, height // rows), max(1, width // cols)
    if height < rows or width < cols:  # smaller than the grid: stretch by repetition (tiny test videos)
        plane = np.repeat(np.repeat(plane, -(-rows // height), axis=0), -(-cols // width), axis=1)
        bh, bw = plane.shape[0] // rows, plane.shape[1] // cols
    cropped = plane[: rows * bh, : cols * bw]
    # two contiguous integer sums: 5x faster than .mean(axis=(1, 3)) over the strided 4-D view (measured);
    # in 16 bits when a block's sum cannot overflow them (bh * bw <= 257, 15 x 15 for 960 x 540): the
    # same exact sums in half the memory, 0.17 -> 0.11 ms for a 960 x 540 luma plane (measured)
    # the columns' sums after a transposing copy: numpy then adds whole rows of 2304 values, not 2304 runs
    # of 15 (0.10 -> 0.075 ms for a 960 x 540 luma plane, measured; the same integers)
    wide = np.uint16 if plane.dtype == np.uint8 and bh * bw * 255 <= 0xFFFF else np.uint32
    columns = cropped.reshape(rows, bh, cols * bw).sum(axis=1, dtype=wide)
    sums = columns.reshape(rows * cols, bw).T.copy().sum(axis=0, dtype=wide).reshape(rows, cols)
    return (sums / float(bh * bw)).astype(np.float32)


def _plane_array(plane):
    import numpy as np

    rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def frame_thumbnails(frame) -> tuple[object, object, object]:
    """(y, u, v) block means of a decoded PyAV frame; planar 8-bit YUV is read without conversion."""
    fmt = frame.format.name
    if fmt not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"):
        frame = frame.reformat(format="yuv420p")
    y, u, v = (_plane_array(frame.planes[k]) for k in range(3))
    return block_means(y, LUMA_GRID), block_means(u, CHROMA_GRID), block_means(v, CHROMA_GRID)


def _per_frame(golden, current, reduce):
    import numpy as np

    n = min(len(golden), len(current))
    g, c = np.asarray(golden[:n]), np.asarray(current[:n])
    if g.dtype == np.uint8 and c.dtype == np.uint8:
        # 8-bit thumbnails (what goldens store and checks decode): |g - c| as max - min in 8 bits, the very
        # whole levels the float32 path computes, without its float copies (measured: the content difference
        # and one motion pass of 900 frames, 17 -> 13 ms CPU)
        diff = np.maximum(g, c)
        diff -= np.minimum(g, c)
    else:
        diff = np.abs(np.asarray(g, dtype=np.float32) - np.asarray(c, dtype=np.float32))
    return reduce(diff.reshape(n, -1))


def _top_mean(flat):
    """Mean of each row's largest 1 %, from differences held to 1/16 level: numpy sorts 16-bit integers by
    radix, 6x faster than a float partition here (measured). Whole levels (8-bit) are exact sixteenths."""
    import numpy as np

    k = max(1, int(round(flat.shape[1] * TOP_FRACTION)))
    if flat.dtype == np.uint8:
        sixteenths = flat.astype(np.uint16) << 4
    else:
        sixteenths = np.minimum(np.rint(flat * 16.0), 65535).astype(np.uint16)
    return np.sort(sixteenths, axis=1, kind="stable")[:, -k:].mean(axis=1) / 16.0


def content_difference(golden: dict, current: dict):
    """Per frame pair (index-aligned), the mean difference of the most-changed 1 % of blocks, worst plane."""
    import numpy as np

    return np.max([_per_frame(golden[p], current[p], _top_mean) for p in PLANES], axis=0)


def largest_block_difference(golden: dict, current: dict):
    """Per frame pair, the largest difference of any one block in any plane."""
    import numpy as np

    return np.max([_per_frame(golden[p], current[p], lambda flat: flat.max(axis=1)) for p in PLANES],
                  axis=0).astype(np.float32)


def take(signature: dict, index) -> dict:
    """The frames of `signature` at `index` (an integer array), plane by plane."""
    return {p: signature[p][index] for p in PLANES}

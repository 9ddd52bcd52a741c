"""Hamming-distance search over 64-bit hashes, without brute force at a million.

Queries use multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with
multi-index hashing", CVPR 2012): the 64 bits are cut into 4 chunks of 16; two hashes within
distance d differ by at most d // 4 bits in at least one chunk, so probing each chunk's buckets
within that radius finds every match, and only those candidates are checked with `bitwise_count`.

All pairs use the same pigeonhole with 8 blocks of 8 bits: hashes within distance d <= 6 agree
exactly on at least 8 - d blocks, so on at least one of the 28 pairs of blocks. For each pair of
blocks the hashes are sorted by those 16 bits (a radix sort) and only neighbours in a bucket are
compared. Equal hashes are collapsed first, so a thousand blank images cost one comparison.
Larger distances fall back to one block (a bucket scan), still exact.

Everything is pure NumPy; measured against FAISS in benchmarks/fingerprint.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

CHUNKS = 4
CHUNK_BITS = 16
LINEAR_BELOW = 1 << 15
MASK16 = np.uint64(0xFFFF)


def as_hashes(values: object) -> np.ndarray:
    """Any sequence of unsigned 64-bit ints (or signed BIGINTs from a database) as a uint64 array."""
    if isinstance(values, np.ndarray) and values.dtype == np.uint64:
        return values
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        return values.view(np.uint64)
    # Never np.asarray on Python ints: a list mixing values above and below 2**63 becomes float64.
    items = values.ravel().tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[call-overload]
    return np.array([int(v) & 0xFFFF_FFFF_FFFF_FFFF for v in items], dtype=np.uint64)


def distances(hashes: np.ndarray, query: int) -> np.ndarray:
    """Hamming distance from `query` to every hash."""
    return np.bitwise_count(hashes ^ np.uint64(query))


def _flip_masks(radius: int) -> np.ndarray:
    """Every 16-bit mask with at most `radius` bits set (the probes around a key)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in itertools.combinations(range(CHUNK_BITS), r)]
    return np.array(masks, dtype=np.int64)


@dataclass
class Matches:
    """Query `query[k]` matched hash number `index[k]` at distance `distance[k]`."""

    query: np.ndarray
    index: np.ndarray
    distance: np.ndarray


class HashIndex:
    """Hashes with a multi-index for radius queries; exact (finds every hash within the distance)."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = as_hashes(hashes)
        self.size = len(self.hashes)
        self._order: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        if self.size >= LINEAR_BELOW:
            index_type = np.int32 if self.size < 2**31 else np.int64
            for c in range(CHUNKS):
                keys = ((self.hashes >> np.uint64(c * CHUNK_BITS)) & MASK16).astype(np.uint16)
                order = np.argsort(keys, kind="stable").astype(index_type)
                counts = np.bincount(keys, minlength=1 << CHUNK_BITS)
                offsets = np.zeros((1 << CHUNK_BITS) + 1, dtype=np.int64)
                np.cumsum(counts, out=offsets[1:])
                self._order.append(order)
                self._offsets.append(offsets)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + sum(a.nbytes for a in self._order) + sum(a.nbytes for a in self._offsets)

    def search(self, queries: object, distance: int) -> Matches:
        """Every (query, hash) pair within `distance`, sorted by query then distance."""
        q = as_hashes(queries)
        if not self._order or distance >= CHUNKS * 4 or len(q) == 0:
            return self._linear(q, distance)
        probes = _flip_masks(distance // CHUNKS)
        found_q, found_i = [], []
        for c in range(CHUNKS):
            keys = ((q >> np.uint64(c * CHUNK_BITS)) & MASK16).astype(np.int64)
            probe = (keys[:, None] ^ probes[None, :]).ravel()
            owner = np.repeat(np.arange(len(q)), len(probes))
            starts = self._offsets[c][probe]
            lengths = self._offsets[c][probe + 1] - starts
            total = int(lengths.sum())
            if total == 0:
                continue
            run_start = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
            positions = run_start + np.arange(total)
            found_q.append(np.repeat(owner, lengths))
            found_i.append(self._order[c][positions].astype(np.int64))
        if not found_q:
            return Matches(*(np.empty(0, dtype=np.int64) for _ in range(3)))
        cq, ci = np.concatenate(found_q), np.concatenate(found_i)
        d = np.bitwise_count(self.hashes[ci] ^ q[cq])
        keep = d <= distance
        return _sorted_unique(cq[keep], ci[keep], d[keep].astype(np.int64))

    def _linear(self, q: np.ndarray, distance: int) -> Matches:
        parts = []
        for k, value in enumerate(q):
            d = np.bitwise_count(self.hashes ^ value)
            hit = np.flatnonzero(d <= distance)
            parts.append((np.full(len(hit), k), hit, d[hit].astype(np.int64)))
        if not parts:
            return Matches(*(np.empty(0, dtype=np.int64) for _ in range(3)))
        return _sorted_unique(*(np.concatenate([p[n] for p in parts]).astype(np.int64) for n in range(3)))


def _sorted_unique(query: np.ndarray, index: np.ndarray, distance: np.ndarray) -> Matches:
    key = query.astype(np.int64) * (1 << 32) + index
    _, first = np.unique(key, return_index=True)
    query, index, distance = query[first], index[first], distance[first]
    order = np.lexsort((index, distance, query))
    return Matches(query[order], index[order], distance[order])


BLOCKS = 8
BIG_BUCKET = 64


def near_pairs(unique_hashes: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, d) with i < j and d = hamming(h[i], h[j]) <= distance, for distinct hashes.

    No brute force: candidates share one pair of 8-bit blocks exactly (distance <= 6) or one
    16-bit chunk within radius (larger distances, through HashIndex).
    """
    h = as_hashes(unique_hashes)
    n = len(h)
    if n < 2:
        return (np.empty(0, dtype=np.int64),) * 3
    if distance > BLOCKS - 2:
        index = HashIndex(h)
        found = index.search(h, distance) if index._order else index._linear(h, distance)
        keep = found.query < found.index
        return found.query[keep], found.index[keep], found.distance[keep]
    blocks = [((h >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.uint16) for b in range(BLOCKS)]
    found_i, found_j = [], []
    for first, second in itertools.combinations(range(BLOCKS), 2):
        keys = (blocks[first] << np.uint16(8)) | blocks[second]
        order = np.argsort(keys, kind="stable")
        sk, sh = keys[order], h[order]
        counts = np.bincount(keys, minlength=1 << 16)
        widest = int(counts.max())
        for step in range(1, min(widest, BIG_BUCKET)):
            same = sk[:-step] == sk[step:]
            close = np.bitwise_count(sh[:-step] ^ sh[step:]) <= distance
            hit = np.flatnonzero(same & close)
            if len(hit):
                found_i.append(order[hit])
                found_j.append(order[hit + step])
        if widest > BIG_BUCKET:
            offsets = np.concatenate([[0], np.cumsum(counts)])
            for key in np.flatnonzero(counts > BIG_BUCKET):
                members = order[offsets[key]:offsets[key + 1]]
                a, b = _bucket_pairs(h, members, distance)
                found_i.append(a)
                found_j.append(b)
    if not found_i:
        return (np.empty(0, dtype=np.int64),) * 3
    i, j = np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    pair = np.unique(lo * n + hi)
    lo, hi = pair // n, pair % n
    return lo, hi, np.bitwise_count(h[lo] ^ h[hi]).astype(np.int64)


def _bucket_pairs(h: np.ndarray, members: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within one large bucket, compared block by block (bounded memory)."""
    out_a, out_b = [], []
    values = h[members]
    for start in range(0, len(members), 1024):
        block = values[start:start + 1024]
        d = np.bitwise_count(block[:, None] ^ values[None, :])
        a, b = np.nonzero(d <= distance)
        a += start
        keep = a < b
        out_a.append(members[a[keep]])
        out_b.append(members[b[keep]])
    return np.concatenate(out_a), np.concatenate(out_b)


def duplicate_groups(hashes: object, distance: int, *, variants: np.ndarray | None = None) -> np.ndarray:
    """A group label per hash: connected components of "within `distance`" (equal hashes always together).

    `variants` (n x 8, the flips/rotations of each image) also links an image whose flipped or
    rotated hash is within `distance` of another image's hash.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    h = as_hashes(hashes)
    if not len(h):
        return np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(h, return_inverse=True)
    i, j, _ = near_pairs(unique, distance)
    m = len(unique)
    if variants is not None and len(h):
        index = HashIndex(unique)
        extra = as_hashes(np.asarray(variants)[:, 1:].ravel())
        found = index.search(extra, distance)
        owner = inverse[found.query // (variants.shape[1] - 1)]
        i, j = np.concatenate([i, owner]), np.concatenate([j, found.index])
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    return labels[inverse]

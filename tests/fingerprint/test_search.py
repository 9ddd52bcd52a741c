"""Search finds exactly what brute force finds, without brute force."""

from __future__ import annotations

import numpy as np
import pytest

from mobius.fingerprint.search import HashIndex, duplicate_groups, near_pairs


def planted(n: int, pairs: int, seed: int = 0, max_bits: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    for _ in range(pairs):
        a, b = rng.integers(n, size=2)
        value = int(h[a])
        for bit in rng.choice(64, int(rng.integers(0, max_bits + 1)), replace=False):
            value ^= 1 << int(bit)
        h[b] = value
    return h


def brute_pairs(h: np.ndarray, distance: int) -> set[tuple[int, int]]:
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    i, j = np.nonzero(np.triu(d <= distance, 1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("distance", [0, 3, 6, 8, 10])
def test_all_pairs_equal_brute_force(distance: int):
    h = np.unique(planted(3000, 600, seed=distance, max_bits=distance + 2))
    i, j, d = near_pairs(h, distance)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == brute_pairs(h, distance)
    assert np.array_equal(d, np.bitwise_count(h[i] ^ h[j]))


def test_all_pairs_handle_a_huge_bucket():
    rng = np.random.default_rng(5)
    low_bits = rng.integers(0, 2**16, 1500, dtype=np.uint64)  # 1500 hashes sharing 48 zero bits
    h = np.unique(np.concatenate([low_bits, planted(500, 50)]))
    i, j, _ = near_pairs(h, 6)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == brute_pairs(h, 6)


@pytest.mark.parametrize("distance", [2, 6, 9])
def test_multi_index_search_equals_a_linear_scan(distance: int):
    h = planted(40_000, 2_000, seed=1)
    index = HashIndex(h)
    assert index._order, "40k hashes should use the multi-index"
    queries = np.concatenate([h[:200], planted(50, 0, seed=9)])
    fast, slow = index.search(queries, distance), index._linear(queries, distance)
    for name in ("query", "index", "distance"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name))
    assert len(fast.query) >= 200  # every stored hash finds itself


def test_groups_join_equal_near_and_flipped_hashes():
    a, b, far = 0x0F0F_0F0F_0F0F_0F0F, 0x0F0F_0F0F_0F0F_0F0E, 0xFFFF_0000_FFFF_0000
    flipped = 0x1234_5678_9ABC_DEF0
    hashes = [a, a, b, far, flipped]
    labels = duplicate_groups(hashes, 4)
    assert labels[0] == labels[1] == labels[2] and len({labels[2], labels[3], labels[4]}) == 3
    variants = np.array([[h] + [h ^ (1 << 40)] * 7 for h in hashes], dtype=np.uint64)
    variants[4, 1] = far  # image 4's mirror image is `far`
    labels = duplicate_groups(hashes, 4, variants=variants)
    assert labels[3] == labels[4] != labels[0]

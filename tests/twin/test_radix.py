"""Tests of twin._radix: prefix matching, locking and LRU eviction."""

from __future__ import annotations

from twin._radix import RadixCache


def test_match_insert_split() -> None:
    cache = RadixCache()
    assert cache.insert([1, 2, 3, 4]) == 4
    assert cache.insert([1, 2, 5]) == 1
    assert cache.total == 5
    length, _ = cache.match([1, 2, 3, 9])
    assert length == 3
    assert cache.match([7])[0] == 0
    assert cache.insert([1, 2, 3, 4]) == 0


def test_locked_prefix_is_not_evicted() -> None:
    cache = RadixCache()
    cache.insert([1, 2, 3])
    cache.insert([4, 5])
    _, node = cache.match([1, 2, 3])
    cache.lock(node, 1)
    assert cache.locked == 3
    assert cache.evict(10) == 2
    assert cache.total == 3
    cache.lock(node, -1)
    assert cache.locked == 0
    assert cache.evict(10) == 3 and cache.total == 0


def test_eviction_is_least_recently_used_first() -> None:
    cache = RadixCache()
    cache.insert([1, 1])
    cache.insert([2, 2])
    cache.match([1, 1])  # touch
    assert cache.evict(1) == 2
    assert cache.match([1, 1])[0] == 2
    assert cache.match([2, 2])[0] == 0

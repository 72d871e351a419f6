"""CappedCache: a dict that empties itself when it is full, so a cache keyed by records cannot
grow without bound."""

from __future__ import annotations

from server.core._capped_cache import CappedCache


def test_put_keeps_and_returns_the_value() -> None:
    cache: CappedCache[str, int] = CappedCache(max_entries=3)
    assert cache.put("a", 1) == 1
    assert cache.get("a") == 1
    assert cache.get("b") is None


def test_a_full_cache_is_emptied_before_the_next_put() -> None:
    cache: CappedCache[int, int] = CappedCache(max_entries=3)
    for n in range(3):
        cache.put(n, n)
    assert len(cache) == 3
    cache.put(99, 99)
    assert dict(cache) == {99: 99}

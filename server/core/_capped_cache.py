"""A size-capped cache of values derived from stored records (deciphered properties, URLs)."""

from __future__ import annotations

import time
from typing import TypeVar

__all__ = ["CappedCache", "FreshCache"]

K = TypeVar("K")
V = TypeVar("V")


class CappedCache(dict[K, V]):
    """A dict of at most ``max_entries`` entries: :meth:`put` empties it when it is full.

    Read it with ``get`` like any dict; write it only with :meth:`put`. A dict subclass, not a
    cachetools cache: a hit stays a plain ``dict.get`` (the send path and every authenticated
    webhook read one), whereas cachetools' caches are mappings written in Python whose every hit
    costs several Python calls. Emptied whole rather than evicted entry by entry (LRU): an entry
    costs little to derive again, and a hit then needs no bookkeeping.
    """

    __slots__ = ("_max_entries",)

    def __init__(self, max_entries: int = 10_000) -> None:
        super().__init__()
        self._max_entries = max_entries

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` (emptying the cache first when it is full); returns it."""
        if len(self) >= self._max_entries:
            self.clear()
        self[key] = value
        return value


class FreshCache(CappedCache[K, tuple[float, V]]):
    """A :class:`CappedCache` whose entries are fresh for ``ttl_s`` seconds after they were kept
    (another replica may change what they were read from): :meth:`fresh` reads one, :meth:`keep`
    writes one. A value is never None."""

    __slots__ = ("_ttl_s",)

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        super().__init__(max_entries)
        self._ttl_s = ttl_s

    def fresh(self, key: K) -> V | None:
        """The value kept under ``key`` if it is still fresh, else None."""
        kept = self.get(key)
        if kept is not None and time.monotonic() - kept[0] < self._ttl_s:
            return kept[1]
        return None

    def keep(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key``, fresh from now; returns it."""
        self.put(key, (time.monotonic(), value))
        return value

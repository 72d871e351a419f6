"""The ids the core gives what it records: messages, webhook requests, held receipts.

Ordered by time, a new record's id lands at the end of its table's primary-key index rather than
on a random page of it: a store batch dirties (and writes to the WAL) one page of that index
instead of one per record, and the page a new id needs stays in the cache however many records
the store holds. Measured on the SQLite writer: about 15 % less CPU per message than random
(version 4) ids on a store of 20,000 messages.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]


def new_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID in its usual text form: 48 bits of Unix
    milliseconds, then 74 random bits from :data:`_RANDOM` (``os.urandom``, read 4 KiB at a time;
    no ``uuid.UUID`` is built: every send and every webhook makes one id)."""
    raw = _RANDOM.take16()
    raw[:6] = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _RandomBytes:
    """``os.urandom`` read 4 KiB at a time and handed out 16 bytes at a time: one system call
    per 256 message ids rather than one per id. Each byte is handed out once; a forked child
    starts with none of its parent's."""

    _CHUNK = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take16(self) -> bytearray:
        if self._at + 16 > len(self._pool):
            self._pool, self._at = os.urandom(self._CHUNK), 0
        at = self._at
        self._at = at + 16
        return bytearray(self._pool[at : at + 16])

    def forget(self) -> None:
        self._pool, self._at = b"", 0


_RANDOM = _RandomBytes()
os.register_at_fork(after_in_child=_RANDOM.forget)

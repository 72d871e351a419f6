"""The id of a message or a webhook request: a time-ordered (version 7, RFC 9562) UUID in
canonical text form."""

from __future__ import annotations

import time
import uuid

from server.core._ids import new_id


def _milliseconds(text: str) -> int:
    return uuid.UUID(text).int >> 80


def test_an_id_is_a_canonical_version_7_uuid() -> None:
    ids = [new_id() for _ in range(2000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower-case hex, dashes at 8-4-4-4-12
    assert len(set(ids)) == len(ids)


def test_an_id_starts_with_the_unix_milliseconds_it_was_made_at() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= _milliseconds(made) <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert _milliseconds(first) < _milliseconds(second)
    assert first < second  # as text too: the store's index orders them by time

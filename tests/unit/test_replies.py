"""server.api._replies alone: records cut to a size limit, and pages and batches filled by bytes."""

from __future__ import annotations

import pytest

from msgbridge.v1 import gateway_pb2
from server.api._replies import (
    RECORD_LIMIT,
    REPLY_BUDGET,
    Page,
    ReadLimit,
    capped,
    clip_text,
    entry_size,
    split_by_size,
)


def test_a_record_that_fits_is_left_alone() -> None:
    event = gateway_pb2.Event(text="hello", metadata={"k": "v"})
    assert capped(event) is event
    assert (event.text, event.truncated) == ("hello", False)


def test_the_longest_texts_are_cut_evenly_and_the_record_flagged() -> None:
    event = gateway_pb2.Event(
        text="é" * 2_000_000,  # 4 MB of UTF-8: cut between characters
        error="x" * 1_500_000,
        metadata={"note": "m" * 400_000, "short": "kept"},
        users=["101"],
    )
    capped(event)
    assert event.truncated
    assert RECORD_LIMIT - 64 <= event.ByteSize() <= RECORD_LIMIT
    # Only the text is longer than the length that removes enough: the rest is whole.
    assert set(event.text) == {"é"} and len(event.text.encode()) > 1_500_000
    assert event.error == "x" * 1_500_000
    assert dict(event.metadata) == {"note": "m" * 400_000, "short": "kept"}
    assert list(event.users) == ["101"]


def test_several_long_texts_are_cut_to_one_length() -> None:
    event = gateway_pb2.Event(text="t" * 3_000_000, error="e" * 3_000_000, status="s" * 100)
    capped(event)
    assert abs(len(event.text) - len(event.error)) <= 1
    assert event.status == "s" * 100


def test_bytes_and_nested_texts_are_cut_too() -> None:
    webhook = gateway_pb2.UnmatchedWebhook(body=b"b" * 5_000_000, reason="why")
    installation = gateway_pb2.Installation(
        properties=[gateway_pb2.PropertyValue(name="note", value="v" * 5_000_000)]
    )
    for record in (webhook, installation):
        capped(record)
        assert record.truncated and record.ByteSize() <= RECORD_LIMIT
    assert webhook.reason == "why"
    assert installation.properties[0].name == "note"


def test_very_many_short_values_lose_elements_quickly() -> None:
    event = gateway_pb2.Event(
        media_urls=["u"] * 2_000_000, metadata={str(n): "m" for n in range(500_000)}
    )
    # Dropped in bulk rather than weighed one value at a time (which took about 20 s).
    capped(event, limit=1_000_000)
    assert event.truncated and event.ByteSize() <= 1_000_000
    assert 0 < len(event.media_urls) < 2_000_000
    assert len(event.metadata) < 500_000


def test_clip_text_never_splits_a_character() -> None:
    assert clip_text("aé", 2) == "a"
    assert clip_text("aé", 3) == "aé"


@pytest.mark.parametrize("size", [1, 900_000, 2_000_000, 5_000_000])
def test_batches_fit_the_budget_keep_order_and_lose_nothing(size: int) -> None:
    events = [gateway_pb2.Event(cursor=n, text="t" * size) for n in range(1, 8)]
    parts = list(split_by_size(events))
    assert [e.cursor for part in parts for e in part] == list(range(1, 8))
    for part in parts:
        reply = gateway_pb2.StreamEventsResponse(events=part)
        assert reply.ByteSize() <= REPLY_BUDGET
        assert sum(entry_size(e) for e in part) >= reply.ByteSize()


def test_a_page_ends_at_its_count_or_its_budget_and_reads_less_once_records_are_big() -> None:
    by_count: Page[gateway_pb2.Event] = Page(2)
    assert by_count.read_limit() == 2
    assert by_count.add(gateway_pb2.Event(cursor=1)) and not by_count.full
    assert by_count.add(gateway_pb2.Event(cursor=2)) and by_count.full and not by_count.cut

    by_size: Page[gateway_pb2.Event] = Page(100)
    assert by_size.read_limit() == 32  # before any record is seen
    assert by_size.add(gateway_pb2.Event(cursor=1, text="t" * 1_000_000))
    assert by_size.read_limit() == 3  # two more fit, and one to learn the page is full
    assert by_size.add(gateway_pb2.Event(cursor=2, text="t" * 1_000_000))
    assert by_size.add(gateway_pb2.Event(cursor=3, text="t" * 1_000_000))
    assert not by_size.add(gateway_pb2.Event(cursor=4, text="t" * 1_000_000))
    assert by_size.full and by_size.cut and len(by_size.items) == 3


def test_a_stream_reads_about_a_reply_of_large_records_at_a_time() -> None:
    limit = ReadLimit(500)
    assert limit() == 32  # before any record is seen
    small = [gateway_pb2.Event(text="s")] * 32
    seen = []
    for _ in range(5):
        limit.saw(small)
        seen.append(limit())
    assert seen == [64, 128, 256, 500, 500]  # at most doubling, at most the batch
    limit.saw([gateway_pb2.Event(text="t" * 1_000_000)] * 3)
    assert limit() == 3
    limit.saw([gateway_pb2.Event(text="t" * 5_000_000)])
    assert limit() == 1
    assert ReadLimit(10)() == 10

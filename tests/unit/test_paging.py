"""server.api._paging alone: page tokens, pages read from a source in parts, and next tokens."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from msgbridge.v1 import gateway_pb2
from server.api._paging import as_async, list_page, page_request
from server.api._replies import REPLY_BUDGET
from server.errors import InvalidRequest


def test_a_page_request_is_a_position_and_a_size_within_bounds() -> None:
    assert page_request(0, "") == (0, 100)
    assert page_request(5, "40") == (40, 5)
    assert page_request(10**6, "") == (0, 1000)


@pytest.mark.parametrize(
    ("size", "token", "field"), [(-1, "", "page_size"), (1, "x", "page_token")]
)
def test_a_negative_size_or_a_token_not_ours_is_refused(size: int, token: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        page_request(size, token)
    assert [v[0] for v in refused.value.violations] == [field]


class Source:
    """Events with cursors 1..n, read through ``read`` (which counts its calls)."""

    def __init__(self, count: int, text: str = "") -> None:
        self.events = [gateway_pb2.Event(cursor=c, text=text) for c in range(1, count + 1)]
        self.reads: list[tuple[int, int]] = []

    async def by_offset(self, offset: int, limit: int) -> Sequence[gateway_pb2.Event]:
        self.reads.append((offset, limit))
        return self.events[offset : offset + limit]

    async def after_cursor(self, after: int, limit: int) -> Sequence[gateway_pb2.Event]:
        self.reads.append((after, limit))
        return [e for e in self.events if e.cursor > after][:limit]


def _same(event: gateway_pb2.Event) -> gateway_pb2.Event:
    return event


async def _pages_by_offset(source: Source, size: int) -> list[list[int]]:
    pages, token = [], ""
    while True:
        position, size = page_request(size, token)
        listing = await list_page(source.by_offset, position, size, as_async(_same))
        pages.append([e.cursor for e in listing.page.items])
        token = listing.next_token
        if not token:
            return pages


async def test_offset_pages_cover_the_source_once_and_the_last_has_no_token() -> None:
    assert await _pages_by_offset(Source(5), 2) == [[1, 2], [3, 4], [5]]
    # One more than the page is read: a page that ends with the source says so.
    assert await _pages_by_offset(Source(4), 2) == [[1, 2], [3, 4]]
    assert await _pages_by_offset(Source(0), 2) == [[]]


async def test_a_page_is_read_in_parts_of_what_is_likely_to_fit() -> None:
    source = Source(100)
    listing = await list_page(source.by_offset, 0, 100, as_async(_same))
    assert len(listing.page.items) == 100 and not listing.more
    assert source.reads[0] == (0, 33)  # the first read is small: records of unknown size
    assert source.reads[1][0] == 32  # the next goes on after what the page took


async def test_a_page_cut_by_size_goes_on_at_the_first_record_it_left() -> None:
    source = Source(4, text="x" * (REPLY_BUDGET // 3))
    listing = await list_page(source.by_offset, 0, 100, as_async(_same))
    assert [e.cursor for e in listing.page.items] == [1, 2]
    assert listing.page.cut and listing.more and listing.next_token == "2"


async def test_cursor_pages_go_on_after_the_last_record_taken() -> None:
    source = Source(5)
    listing = await list_page(
        source.after_cursor, 2, 2, as_async(_same), cursor=lambda e: int(e.cursor)
    )
    assert [e.cursor for e in listing.page.items] == [3, 4]
    assert (listing.end, listing.more) == (4, True)

"""Paging of the List RPCs: one way to read a token, fill a page and say where the next starts.

A List RPC gives :func:`list_page` a ``read(position, limit)`` callback over its source, where
it starts (:func:`page_request`: the page token, else the request's own start) and a converter.
Pages are read from the source a few records at a time (:meth:`Page.read_limit`: no more than
are likely to fit the reply), each read one record longer than wanted to learn whether anything
follows, and converted only while the page takes them.

The position is a cursor for ``ListEvents`` (whose token is the cursor to go on after), and for
every other listing the index of a key held by :func:`server.api._keysets.keyed_page` (each page
read from the store after the key of the previous one: no listing skips an offset or slices a
whole table in memory); :func:`list_page` advances it by count, or by the ``cursor`` of the last
record taken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from ..errors import InvalidRequest
from ._replies import Page

__all__ = ["Listing", "Read", "as_async", "fill", "list_page", "page_request"]

_Record = TypeVar("_Record")
_Pb = TypeVar("_Pb", bound=Message)

Read = Callable[[int, int], Awaitable[Sequence[_Record]]]
"""``read(position, limit)``: at most ``limit`` records of the source from ``position`` on (an
offset, or the cursor to read after), in the order the listing gives them."""

_DEFAULT_PAGE = 100
_MAX_PAGE = 1000


def page_request(page_size: int, page_token: str) -> tuple[int, int]:
    """``(position, size)`` of the page a request asks for: where it starts (0 without a token)
    and at most how many records it holds."""
    if page_size < 0:
        raise InvalidRequest("page_size must not be negative", violations=[("page_size", "< 0")])
    # Larger than the maximum is the maximum (asking for much means wanting much).
    size = min(page_size, _MAX_PAGE) if page_size > 0 else _DEFAULT_PAGE
    if not page_token:
        return 0, size
    if not page_token.isdigit():
        raise InvalidRequest("page_token is not valid", violations=[("page_token", "not valid")])
    return int(page_token), size


@dataclass(slots=True)
class Listing(Generic[_Pb]):
    """One page of a listing, and where the listing goes on."""

    page: Page[_Pb]
    #: Whether anything follows the page (it was full and the source had more, or the reply's
    #: size ended it before a record it could not take).
    more: bool
    #: Where the next page starts: past the page's last record (its offset or its cursor).
    end: int

    @property
    def next_token(self) -> str:
        """The ``next_page_token`` of a listing whose last page has none."""
        return str(self.end) if self.more else ""


async def fill(
    page: Page[_Pb], records: Sequence[_Record], convert: Callable[[_Record], Awaitable[_Pb]]
) -> int:
    """Add ``records``, converted, to ``page`` until it is full (by count or by bytes); how
    many it took."""
    before = len(page.items)
    for record in records:
        if page.full or not page.add(await convert(record)):
            break
    return len(page.items) - before


async def list_page(
    read: Read[_Record],
    position: int,
    size: int,
    convert: Callable[[_Record], Awaitable[_Pb]],
    *,
    cursor: Callable[[_Record], int] | None = None,
) -> Listing[_Pb]:
    """The page of at most ``size`` records from ``position`` on, read through ``read``.

    ``cursor``, when given, is where the source goes on after a record (the position is a
    cursor); without it the position is an offset.
    """
    page: Page[_Pb] = Page(size)
    more = True
    while more and not page.full:
        limit = page.read_limit()
        # One more than wanted tells whether anything follows.
        records = await read(position, limit + 1)
        taken = await fill(page, records[:limit], convert)
        if taken:
            position = cursor(records[taken - 1]) if cursor else position + taken
        more = len(records) > limit or page.cut
    return Listing(page, more, position)


def as_async(convert: Callable[[_Record], _Pb]) -> Callable[[_Record], Awaitable[_Pb]]:
    """A plain converter in the form :func:`fill` and :func:`list_page` take."""

    async def converted(record: _Record) -> _Pb:
        return convert(record)

    return converted

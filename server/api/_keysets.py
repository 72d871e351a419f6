"""Paging a List RPC whose source goes on after a key rather than an offset or a cursor.

The store's listings page by a key of their sort order — ``(created_at, id, …)`` of the last
record of the previous page — so that a page does not shift when records are added or removed
before it, and so that each page is one range of an index, whatever the size of the store (no
offset to skip: ``server/store/_keyset_sql.py``). The
page itself is filled by :func:`server.api._paging.list_page` like every other listing (its size,
its reply budget, whether more follows); here the keys are held for it, so that its position
stays an int: position ``n`` is the ``n``-th key seen during the call (0: the request's own).

A key's page token is opaque to the caller: URL-safe base64 of a JSON array, the time in
microseconds since the epoch, then the key's strings (or, for a listing ordered by a name alone,
the name). A token gives only where a page starts: the request's filters and the caller's scope
are applied again to every page, so a token written by hand shows nothing its caller may not
see, and one not of this form is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message

from ..errors import InvalidRequest
from ._paging import Listing, list_page

__all__ = [
    "key_token",
    "keyed_page",
    "name_token",
    "read_key_token",
    "read_name_token",
    "read_time_id_token",
]

_Record = TypeVar("_Record")
_Key = TypeVar("_Key")
_Pb = TypeVar("_Pb", bound=Message)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def key_token(moment: datetime, *strings: str) -> str:
    """The page token of the key ``(moment, *strings)``."""
    return _token([(moment - _EPOCH) // _MICROSECOND, *strings])


def name_token(name: str) -> str:
    """The page token of a listing ordered by a name alone (integrations, by id)."""
    return _token([name])


def _token(value: list[object]) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _read(token: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise _invalid() from None


def _invalid() -> InvalidRequest:
    return InvalidRequest("page_token is not valid", violations=[("page_token", "not valid")])


def read_key_token(token: str, strings: int) -> tuple[datetime, tuple[str, ...]] | None:
    """The key a page token holds, as its time and its ``strings`` strings (None for no token);
    INVALID_ARGUMENT for anything else."""
    if not token:
        return None
    value = _read(token)
    if (
        not isinstance(value, list)
        or len(value) != strings + 1
        or type(value[0]) is not int
        or not all(isinstance(item, str) for item in value[1:])
    ):
        raise _invalid()
    try:
        moment = _EPOCH + value[0] * _MICROSECOND
    except OverflowError:
        raise _invalid() from None
    return moment, tuple(value[1:])


def read_name_token(token: str) -> str | None:
    """The name a page token of :func:`name_token` holds (None for no token); INVALID_ARGUMENT
    for anything else."""
    if not token:
        return None
    value = _read(token)
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
        raise _invalid()
    return value[0]


def read_time_id_token(token: str) -> tuple[datetime, str] | None:
    """The ``(time, id)`` key a page token holds — the key of the listings ordered by a time,
    then an id (installations, messages, webhook requests) — or None for no token."""
    key = read_key_token(token, 1)
    if key is None:
        return None
    moment, (record_id,) = key
    return moment, record_id


async def keyed_page(
    read: Callable[[_Key | None, int], Awaitable[Sequence[_Record]]],
    after: _Key | None,
    size: int,
    convert: Callable[[_Record], Awaitable[_Pb]],
    key: Callable[[_Record], _Key],
) -> tuple[Listing[_Pb], _Key | None]:
    """The page of at most ``size`` records after the key ``after`` (None: from the start),
    read through ``read(after, limit)``, with the key the next page goes on after (None when
    nothing follows); ``key`` is a record's key."""
    keys: list[_Key | None] = [after]

    def position(record: _Record) -> int:
        keys.append(key(record))
        return len(keys) - 1

    listing = await list_page(
        lambda at, limit: read(keys[at], limit), 0, size, convert, cursor=position
    )
    return listing, keys[listing.end] if listing.more else None

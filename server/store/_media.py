"""The store's media records (docs/media.md): files the gateway keeps, and inbound messages held
until their files are kept.

A :class:`MediaRecord` describes one stored file; its bytes live in the blob store under
``blob_key`` (:mod:`server.media`), never in the database. A :class:`MediaHold` is an inbound
event whose files are still being fetched: it is written in the webhook's own transaction (so
the 2xx never waits for a fetch, and nothing is lost if the process dies before the fetch), and
becomes an event — with the next cursor, so readers still miss nothing — when its files are
kept or its wait is over (:meth:`~server.store.Store.release_media_hold`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ._base import EventMedia, NewEvent
from ._rows import Rows, decode_held_event, decode_media, encode_held_event, encode_media

__all__ = [
    "HOLD_COLUMNS",
    "MEDIA_COLUMNS",
    "MediaHold",
    "MediaOrigin",
    "MediaRecord",
    "hold_params",
    "media_hold",
    "media_params",
    "media_record",
]


class MediaOrigin(enum.StrEnum):
    """Where a stored file came from."""

    #: Fetched from a provider's URL of an inbound message.
    INBOUND = "inbound"
    #: Uploaded by a caller (UploadMedia), to be sent with SendFile.
    UPLOAD = "upload"


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaRecord:
    """A stored file. ``installation_id`` and ``integration_id`` are ``""`` when unknown (an
    upload names no installation). ``source`` is the provider's URL of an inbound file, or the
    uploader's file name (for their records only: it never reaches a path)."""

    id: str
    org_id: str
    installation_id: str
    integration_id: str
    origin: MediaOrigin
    blob_key: str
    content_type: str
    size: int
    sha256: str
    source: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaHold:
    """An inbound event waiting for its files (``event.media_urls``).

    ``progress`` holds what is known of each file so far, in the order of ``media_urls`` (a
    file kept has its ``media_id``; one that failed for good its ``error``; one still to fetch
    neither). ``release_by`` is when the event is released whatever is missing; ``next_attempt_at``
    when a fetch is next due; ``attempts`` how many fetch rounds were made. A hold being worked
    on is leased (``lease_owner`` until ``lease_until``), so one process fetches it at a time
    and another takes over when that one dies.
    """

    id: str
    event: NewEvent
    progress: tuple[EventMedia, ...]
    held_at: datetime
    release_by: datetime
    next_attempt_at: datetime
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None


# ---------------------------------------------------------------------------------------------
# Rows (as :mod:`server.store._rows` does for the other records; the order of these lists is the
# order of every row)

MEDIA_COLUMNS: Final = (
    "id",
    "org_id",
    "installation_id",
    "integration_id",
    "origin",
    "blob_key",
    "content_type",
    "size",
    "sha256",
    "source",
    "created_at",
)

HOLD_COLUMNS: Final = (
    "id",
    "event_json",
    "progress_json",
    "held_at",
    "release_by",
    "next_attempt_at",
    "attempts",
    "lease_owner",
    "lease_until",
)


def media_params(rows: Rows[Any], record: MediaRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.org_id,
        record.installation_id,
        record.integration_id,
        MediaOrigin(record.origin).value,
        record.blob_key,
        record.content_type,
        record.size,
        record.sha256,
        record.source,
        rows.time_param(record.created_at),
    )


def media_record(rows: Rows[Any], row: Any) -> MediaRecord:
    return MediaRecord(
        id=row[0],
        org_id=row[1],
        installation_id=row[2],
        integration_id=row[3],
        origin=MediaOrigin(row[4]),
        blob_key=row[5],
        content_type=row[6],
        size=int(row[7]),
        sha256=row[8],
        source=row[9],
        created_at=rows.time_value(row[10]),
    )


def hold_params(rows: Rows[Any], hold: MediaHold) -> tuple[Any, ...]:
    time_param = rows.time_param
    return (
        hold.id,
        encode_held_event(hold.event),
        encode_media(hold.progress),
        time_param(hold.held_at),
        time_param(hold.release_by),
        time_param(hold.next_attempt_at),
        hold.attempts,
        hold.lease_owner,
        None if hold.lease_until is None else time_param(hold.lease_until),
    )


def media_hold(rows: Rows[Any], row: Any) -> MediaHold:
    time_value = rows.time_value
    return MediaHold(
        id=row[0],
        event=decode_held_event(row[1]),
        progress=decode_media(row[2]),
        held_at=time_value(row[3]),
        release_by=time_value(row[4]),
        next_attempt_at=time_value(row[5]),
        attempts=int(row[6]),
        lease_owner=row[7],
        lease_until=None if row[8] is None else time_value(row[8]),
    )

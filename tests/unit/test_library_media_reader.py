"""The in-process sidecar's media reader (server/app.py ``LibraryMediaReader``): the record its
``head`` verified is handed to the ``read`` of the same URL, which never reads a file without a
verified record (docs/media.md, "Serving")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

from server.app import LibraryMediaReader
from server.core.media import MediaLibrary
from server.store import MediaOrigin, MediaRecord

RECORD = MediaRecord(
    id="a" * 32,
    org_id="org",
    installation_id="",
    integration_id="",
    origin=MediaOrigin.UPLOAD,
    blob_key="media/org/" + "a" * 32,
    content_type="image/png",
    size=3,
    sha256="0" * 64,
    source="photo.png",
    created_at=datetime.now(UTC),
)


class CountingLibrary:
    """A MediaLibrary stand-in: one valid signature, ``good``; counts its verifications."""

    def __init__(self) -> None:
        self.verified_calls = 0

    async def verified(self, media_id: str, expires_at: int, signature: str) -> MediaRecord | None:
        self.verified_calls += 1
        return RECORD if signature == "good" else None

    async def read(
        self, record: MediaRecord, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        yield b"abc"[start:end]


def reader_of(library: CountingLibrary) -> LibraryMediaReader:
    return LibraryMediaReader(cast(MediaLibrary, library))


async def read_all(reader: LibraryMediaReader, signature: str) -> bytes:
    chunks: Any = reader.read(RECORD.id, 10**10, signature, 0, None)
    return b"".join([chunk async for chunk in chunks])


async def test_a_get_verifies_its_url_once() -> None:
    library = CountingLibrary()
    reader = reader_of(library)
    head = await reader.head(RECORD.id, 10**10, "good")
    assert head is not None and head.size == 3
    assert await read_all(reader, "good") == b"abc"
    assert library.verified_calls == 1


async def test_a_read_without_its_head_verifies_again() -> None:
    library = CountingLibrary()
    reader = reader_of(library)
    assert await read_all(reader, "good") == b"abc"
    assert await read_all(reader, "forged") == b""
    assert library.verified_calls == 2


async def test_a_head_hands_its_record_to_one_read_only() -> None:
    library = CountingLibrary()
    reader = reader_of(library)
    assert await reader.head(RECORD.id, 10**10, "good") is not None
    assert await read_all(reader, "good") == b"abc"
    assert await read_all(reader, "good") == b"abc"
    assert library.verified_calls == 2
    assert await reader.head(RECORD.id, 10**10, "forged") is None
    assert await read_all(reader, "forged") == b""

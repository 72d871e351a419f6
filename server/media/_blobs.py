"""Media bytes behind one interface: what a blob store promises, whatever keeps the bytes.

A :class:`BlobStore` keeps blobs under keys the gateway makes (``media/<org hash>/<random id>``),
never under a URL or a file name from outside: :func:`check_key` refuses every other shape. A put
is atomic (a reader sees the whole blob or none of it) and capped (:class:`BlobTooLarge`, nothing
left behind); it returns the blob's size and SHA-256, counted while writing. ``open`` gives the
bytes of a range in chunks as a :class:`BlobStream`. The backends: files under the data
directory (:mod:`server.media._file_blobs`), an S3-compatible object store
(:mod:`server.media._s3`); what they share is in :mod:`server.media._blob_backend`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_KEY_LENGTH",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStream",
    "BlobTooLarge",
    "ChunkSource",
    "StoredBlob",
    "blob_key",
    "check_key",
    "check_range",
]

DEFAULT_CHUNK_SIZE: Final = 64 * 1024
MAX_KEY_LENGTH: Final = 512
# A segment stays well under the 255 bytes a file name may have on every common filesystem.
_MAX_SEGMENT_LENGTH: Final = 200
_KEY_CHARACTERS: Final = re.compile(r"[A-Za-z0-9._/-]+")


class BlobStoreError(Exception):
    """A blob store failed: the disk or the object store refused or could not be reached."""


class BlobNotFound(BlobStoreError):
    """No blob is stored under the key."""


class BlobTooLarge(BlobStoreError):
    """A put brought more bytes than its ``max_size``; nothing was stored."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"the blob is larger than {max_size} bytes")
        self.max_size = max_size


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob as a put wrote it: its key, its size in bytes and the hex SHA-256 of its bytes."""

    key: str
    size: int
    sha256: str


def check_key(key: str) -> str:
    """``key`` when the gateway could have made it, else ValueError.

    Only ``[A-Za-z0-9._/-]``, segments separated by single slashes, no leading or trailing slash,
    no ``..`` anywhere and no ``.`` segment: a key is a relative path that stays under the store's
    root on any backend. A temporary file's name has a character keys never have, so no key names
    one.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"a blob key has 1 to {MAX_KEY_LENGTH} characters")
    if _KEY_CHARACTERS.fullmatch(key) is None:
        raise ValueError("a blob key has only the characters A-Z a-z 0-9 . _ / -")
    if ".." in key:
        raise ValueError("a blob key has no '..'")
    for segment in key.split("/"):
        if segment in ("", "."):
            raise ValueError("a blob key has no empty or '.' segment (nor a leading '/')")
        if len(segment) > _MAX_SEGMENT_LENGTH:
            raise ValueError(f"a blob key's segment has at most {_MAX_SEGMENT_LENGTH} characters")
    return key


def blob_key(org_id: str, media_id: str) -> str:
    """The key of a stored file: ``media/<org hash>/<media id>`` — the organisation hashed (its id
    is the caller's and may hold any character), the id the gateway's own."""
    org = hashlib.sha256(org_id.encode()).hexdigest()[:16]
    return check_key(f"media/{org}/{media_id}")


def check_range(start: int, end: int | None, chunk_size: int) -> None:
    """ValueError unless ``[start, end)`` and ``chunk_size`` can be read."""
    if start < 0:
        raise ValueError("a range starts at 0 or later")
    if end is not None and end < start:
        raise ValueError("a range ends at or after its start")
    if chunk_size < 1:
        raise ValueError("a chunk holds at least one byte")


class ChunkSource(Protocol):
    """One opened blob range, read by a :class:`BlobStream`: what each backend provides."""

    async def read(self) -> bytes:
        """The next chunk, ``b""`` at the end of the range."""
        ...

    def close(self) -> None:
        """Release the file or connection at once (it may be called while the task is being
        cancelled, or when the stream is collected); called once."""
        ...


class BlobStream:
    """The bytes of one blob range, in chunks of at most the chunk size asked for.

    Opened on first use: ``stream = await store.open(key)`` opens it at once (so a missing blob
    raises :class:`BlobNotFound` before anything is sent), or ``async for chunk in
    store.open(key)`` opens it on the first chunk. It is released at its end, on an error, by
    ``aclose()``, by leaving ``async with``, or at the latest when it is collected.
    """

    __slots__ = ("_closed", "_opener", "_source")

    def __init__(self, opener: Callable[[], Awaitable[ChunkSource]]) -> None:
        self._opener = opener
        self._source: ChunkSource | None = None
        self._closed = False

    async def _open(self) -> ChunkSource:
        if self._closed:
            raise BlobStoreError("the blob stream is closed")
        if self._source is None:
            self._source = await self._opener()
        return self._source

    async def _opened(self) -> BlobStream:
        await self._open()
        return self

    def __await__(self) -> Generator[Any, None, BlobStream]:
        return self._opened().__await__()

    def __aiter__(self) -> BlobStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk = await (await self._open()).read()
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Release the blob; later reads end at once. Closing twice is fine."""
        self._release()

    def _release(self) -> None:
        self._closed = True
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def __del__(self) -> None:
        # A stream left before its end without aclose (a ``break``, a client gone): its file or
        # connection is released when it is collected rather than left to warn.
        self._release()

    async def __aenter__(self) -> BlobStream:
        return await self._opened()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class BlobStore(Protocol):
    """Where media bytes are kept (docs/architecture.md; issue 17's storage)."""

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        """Store ``chunks`` under ``key``, replacing a blob there, atomically: a reader sees the
        old blob or the whole new one, never a part. :class:`BlobTooLarge` (nothing stored) when
        more than ``max_size`` bytes come. ValueError for a key :func:`check_key` refuses."""
        ...

    def open(
        self,
        key: str,
        *,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> BlobStream:
        """The bytes ``[start, end)`` (``end`` exclusive; None, or past the blob's end, reads to
        its end; a start at or past the end reads nothing) in chunks of at most ``chunk_size``.
        :class:`BlobNotFound` when opened and no blob is there; ValueError at once for a bad key
        or range."""
        ...

    async def size(self, key: str) -> int | None:
        """The blob's size in bytes, None when absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; an absent one is fine."""
        ...

    async def aclose(self) -> None:
        """Release the store's clients; called once, at shutdown."""
        ...

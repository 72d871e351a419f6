"""What the blob backends share: a put's count, hash and cap; ``open``'s checks; worker threads.

:class:`Meter` and :func:`metered` count and hash a put's bytes as they pass, refusing them past
the cap, and hand them on in batches. :class:`BlobOpener` is ``open`` for every backend.
:func:`in_thread` and :func:`disk_io` run blocking file calls on a backend's own threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import ParamSpec, TypeVar

from ._blobs import (
    DEFAULT_CHUNK_SIZE,
    BlobStoreError,
    BlobStream,
    BlobTooLarge,
    ChunkSource,
    StoredBlob,
    check_key,
    check_range,
)

__all__ = ["BlobOpener", "Meter", "disk_io", "in_thread", "metered"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Meter:
    """Counts and hashes the bytes of one put, and refuses them past the cap (``max_size`` is 0
    or more: ValueError otherwise)."""

    __slots__ = ("_hash", "max_size", "size")

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError("max_size is 0 or more")
        self.max_size = max_size
        self.size = 0
        self._hash = hashlib.sha256()

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_size:
            raise BlobTooLarge(self.max_size)
        self._hash.update(data)

    def stored(self, key: str) -> StoredBlob:
        return StoredBlob(key=key, size=self.size, sha256=self._hash.hexdigest())


async def metered(
    chunks: AsyncIterable[bytes], meter: Meter, *, batch: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """The bytes of ``chunks`` in batches of at least ``batch`` bytes (the last may be shorter),
    counted and hashed by ``meter``, which raises :class:`BlobTooLarge` past its cap: a writer
    hands each batch to a worker thread, so one-byte chunks do not cost a thread hop each."""
    pending = bytearray()
    async for chunk in chunks:
        meter.add(chunk)
        pending += chunk
        if len(pending) >= batch:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


async def in_thread(
    executor: concurrent.futures.Executor,
    function: Callable[_P, _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """``function(*args, **kwargs)`` on one of a backend's worker threads.

    A thread cannot be stopped: when the caller is cancelled this waits for the call to end
    before passing the cancellation on, so the caller may then close the file the call used.
    """
    loop = asyncio.get_running_loop()
    try:
        future = loop.run_in_executor(executor, functools.partial(function, *args, **kwargs))
    except RuntimeError as exc:  # the executor is shut down
        raise BlobStoreError("the blob store is closed") from exc
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the caller is cancelled and will not see it
        raise


async def disk_io(
    executor: concurrent.futures.Executor,
    action: str,
    function: Callable[_P, _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """:func:`in_thread` for a call on a file the store writes: its OSError becomes a
    :class:`BlobStoreError` saying what could not be done (``action``)."""
    try:
        return await in_thread(executor, function, *args, **kwargs)
    except OSError as exc:
        raise BlobStoreError(f"cannot {action}: {exc.strerror or exc}") from exc


class BlobOpener(ABC):
    """``open`` for a backend: checks the key and the range at once, and makes the stream that
    calls the backend's ``_open_range`` when it is first used."""

    def open(
        self,
        key: str,
        *,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> BlobStream:
        check_key(key)
        check_range(start, end, chunk_size)
        return BlobStream(functools.partial(self._open_range, key, start, end, chunk_size))

    @abstractmethod
    async def _open_range(
        self, key: str, start: int, end: int | None, chunk_size: int
    ) -> ChunkSource:
        """The range opened (key and range checked); :class:`BlobNotFound` when absent."""

"""The default blob store: one file per blob under the data directory (``<data-dir>/media``).

A put writes a temporary file in the blob's own directory, syncs it, and renames it over the
blob's path (``os.replace``, atomic on POSIX): a reader opens the old file or the whole new one.
Directories are made 0700 and files 0600, since media are as private as the messages they came
with. Every blocking call runs on the store's own worker threads, in chunks, so neither the event
loop nor the default executor (where name lookups run) waits for the disk, and no blob is ever
read into memory whole.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, Final, ParamSpec, TypeVar

from ._blob_backend import (
    BlobOpener,
    Meter,
    disk_io,
    in_thread,
    metered,
)
from ._blobs import (
    BlobNotFound,
    BlobStoreError,
    ChunkSource,
    StoredBlob,
    check_key,
)

__all__ = ["FileBlobStore"]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

# "~" is not a key character (check_key), so no key ever names a file being written.
_DRAFT_PREFIX: Final = ".~put-"
_DIRECTORY_MODE: Final = 0o700

_Runner = Callable[[Callable[[], bytes]], Awaitable[bytes]]


class FileBlobStore(BlobOpener):
    """Blobs as files under ``root``, which is made (0700) when missing."""

    def __init__(self, root: Path, *, workers: int = 4) -> None:
        self._root = Path(root)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="blobs"
        )

    @property
    def root(self) -> Path:
        return self._root

    async def start(self) -> None:
        """Make the root directory now, rather than at the first put."""
        await disk_io(self._executor, "make the media directory", self._make_root)

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        path = self._path(key)
        meter = Meter(max_size)
        draft = _Draft(path)
        try:
            # Inside the try: a put cancelled while its file is made still closes and removes it.
            await self._disk(draft.begin, self._root)
            async for batch in metered(chunks, meter):
                await self._disk(draft.write, batch)
            await self._disk(draft.commit)
        except BaseException:
            # The thread that used the file has finished (_run waits for it even when
            # cancelled), so closing and removing it here cannot race with a write.
            draft.discard()
            raise
        return meter.stored(key)

    async def _open_range(
        self, key: str, start: int, end: int | None, chunk_size: int
    ) -> ChunkSource:
        path = self._path(key)
        try:
            return await self._run(_FileChunks.open, path, start, end, chunk_size, self._run)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise BlobStoreError(f"cannot read a blob: {exc.strerror}") from exc

    async def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            status = await self._run(os.stat, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise BlobStoreError(f"cannot read a blob's size: {exc.strerror}") from exc
        return status.st_size if stat.S_ISREG(status.st_mode) else None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await self._run(os.unlink, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise BlobStoreError(f"cannot delete a blob: {exc.strerror}") from exc

    async def aclose(self) -> None:
        # Calls still running finish; no new one starts.
        self._executor.shutdown(wait=False)

    # -----------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key).split("/"))

    def _make_root(self) -> None:
        self._root.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)

    async def _disk(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``_run`` for a write; the errors of the chunks being written pass through as they
        are."""
        return await disk_io(self._executor, "write a blob", function, *args, **kwargs)

    async def _run(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await in_thread(self._executor, function, *args, **kwargs)


class _Draft:
    """A blob being written: a temporary file beside the blob's path. Sync; run on a worker."""

    __slots__ = ("_file", "_path", "_temp")

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO | None = None
        self._temp: Path | None = None
        self._path = path

    def begin(self, root: Path) -> None:
        path = self._path
        root.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)
        # Each directory below the root is made here with 0700: mkdir(parents=True) would make
        # the intermediate ones with the default mode.
        directory = root
        for part in path.parent.relative_to(root).parts:
            directory = directory / part
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=_DIRECTORY_MODE)
        fd, temp = tempfile.mkstemp(prefix=_DRAFT_PREFIX, dir=path.parent)  # mode 0600
        self._temp = Path(temp)
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        assert self._file is not None, "begin() first"
        self._file.write(data)

    def commit(self) -> None:
        assert self._file is not None and self._temp is not None, "begin() first"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self._path)
        _sync_directory(self._path.parent)

    def discard(self) -> None:
        """Close and remove what begin() made, however far it got."""
        if self._file is not None:
            self._file.close()
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: sync the directory that holds the new name."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileChunks:
    """An opened range of a blob file, read a chunk at a time on a worker thread.

    The first chunk is read by the call that opens the file, and the end of the range is known
    without asking the thread: a file of one chunk costs one thread hop, not three."""

    __slots__ = ("_chunk_size", "_file", "_first", "_left", "_run")

    def __init__(
        self,
        file: BinaryIO,
        left: int,
        chunk_size: int,
        run: _Runner,
    ) -> None:
        self._file = file
        self._left = left
        self._chunk_size = chunk_size
        self._run = run
        self._first: bytes | None = None

    @classmethod
    def open(
        cls, path: Path, start: int, end: int | None, chunk_size: int, run: _Runner
    ) -> _FileChunks:
        file = path.open("rb")
        try:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise FileNotFoundError(path)
            stop = status.st_size if end is None else min(end, status.st_size)
            file.seek(start)
            chunks = cls(file, max(0, stop - start), chunk_size, run)
            chunks._first = chunks._read()
        except BaseException:
            file.close()
            raise
        return chunks

    def _read(self) -> bytes:
        size = min(self._chunk_size, self._left)
        if size <= 0:
            return b""
        data = self._file.read(size)
        # A file cut short from outside ends the range rather than reading on.
        self._left = self._left - len(data) if data else 0
        return data

    async def read(self) -> bytes:
        first, self._first = self._first, None
        if first is not None:
            return first
        if self._left <= 0:
            return b""
        try:
            return await self._run(self._read)
        except OSError as exc:
            raise BlobStoreError(f"cannot read a blob: {exc.strerror}") from exc

    def close(self) -> None:
        # A quick call on a file opened for reading, made on the loop so that it happens even
        # while the reader is being cancelled; _run let any read of it end first.
        self._file.close()

"""Files to and from the gateway (docs/media.md), for both clients.

An upload's source — bytes, a path, an open binary file, or an iterable of bytes — is sent in
chunks of at most 1 MiB (a path or a file is read a chunk at a time, never whole; a larger chunk
from an iterable is split). What was sent is counted and hashed, and the ``MediaInfo`` the
gateway returns must agree with it. A download is checked the same way against the ``MediaInfo``
that comes first, and a file it is written to is either complete or not there (see
:class:`DownloadTarget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final, TypeAlias, TypeGuard

import grpc

from msgbridge.v1 import gateway_pb2

from ._errors import MsgbridgeError

__all__ = [
    "CHUNK_BYTES",
    "AsyncUploadSource",
    "DownloadTarget",
    "MediaDestination",
    "Received",
    "Sent",
    "SyncUploadFeed",
    "UploadSource",
    "async_source_chunks",
    "filename_of",
    "get_media_request",
    "source_chunks",
    "upload_start",
]

#: The largest chunk of a file in one message, both ways (docs/media.md).
CHUNK_BYTES: Final = 1 << 20

#: What :meth:`Client.upload_media` reads: the bytes themselves, a path, a binary file open for
#: reading, or chunks of bytes (of any size).
UploadSource: TypeAlias = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes] | Iterable[bytes]
)
#: :meth:`AsyncClient.upload_media` takes asynchronous chunks too.
AsyncUploadSource: TypeAlias = UploadSource | AsyncIterable[bytes]
#: Where a download goes: a path, or a binary file open for writing (``sys.stdout.buffer``).
MediaDestination: TypeAlias = str | os.PathLike[str] | IO[bytes]

_Bytes = bytes | bytearray | memoryview


def filename_of(source: object, filename: str | None) -> str:
    """The name given, else a path's last part, else none."""
    if filename is not None:
        return filename
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    return ""


def upload_start(
    org_id: str, source: object, filename: str | None, integration_id: str
) -> gateway_pb2.UploadMediaRequest:
    """An upload's first message: the file named ``filename``, else by its path."""
    return gateway_pb2.UploadMediaRequest(
        start=gateway_pb2.UploadMediaRequest.Start(
            org_id=org_id,
            filename=filename_of(source, filename),
            integration_id=integration_id,
        )
    )


def get_media_request(org_id: str, media_id: str) -> gateway_pb2.GetMediaRequest:
    return gateway_pb2.GetMediaRequest(org_id=org_id, media_id=media_id)


def _data_loss(message: str) -> MsgbridgeError:
    return MsgbridgeError(grpc.StatusCode.DATA_LOSS, message)


# -- sources ----------------------------------------------------------------------------------


def _split(chunk: _Bytes) -> Iterator[bytes]:
    """``chunk`` in pieces of at most CHUNK_BYTES; nothing for an empty one."""
    view = memoryview(chunk).cast("B")
    for at in range(0, len(view), CHUNK_BYTES):
        yield bytes(view[at : at + CHUNK_BYTES])


def _read_chunks(file: IO[bytes]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def _is_file(source: object) -> TypeGuard[IO[bytes]]:
    # A binary file iterates by lines, which may be of any length: it is read in chunks instead.
    return not isinstance(source, _Bytes) and callable(getattr(source, "read", None))


def _chunks(source: _Bytes | IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield from _split(source)
    elif _is_file(source):
        yield from _read_chunks(source)
    else:
        for chunk in source:
            yield from _split(chunk)


@contextlib.contextmanager
def source_chunks(source: UploadSource) -> Iterator[Iterator[bytes]]:
    """The source's chunks; a path is opened here (``OSError`` before anything is sent) and
    closed on leaving."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            yield _read_chunks(file)
    else:
        yield _chunks(source)


async def _read_chunks_async(file: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
        yield chunk


async def _split_async(source: AsyncIterable[_Bytes]) -> AsyncIterator[bytes]:
    async for chunk in source:
        for piece in _split(chunk):
            yield piece


async def _as_async(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    return open(path, "rb")


@contextlib.asynccontextmanager
async def async_source_chunks(source: AsyncUploadSource) -> AsyncIterator[AsyncIterator[bytes]]:
    """:func:`source_chunks` for the asyncio client: files are opened and read on a worker
    thread."""
    if isinstance(source, str | os.PathLike):
        file = await asyncio.to_thread(_open, source)
        try:
            yield _read_chunks_async(file)
        finally:
            await asyncio.to_thread(file.close)
    elif isinstance(source, AsyncIterable):
        yield _split_async(source)
    elif _is_file(source):
        yield _read_chunks_async(source)
    else:
        yield _as_async(_chunks(source))


# -- checks -----------------------------------------------------------------------------------


class Sent:
    """The bytes an upload sent, counted and hashed, to check the gateway's ``MediaInfo``."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def add(self, chunk: bytes) -> gateway_pb2.UploadMediaRequest:
        """Count ``chunk``; its message."""
        self._hash.update(chunk)
        self._size += len(chunk)
        return gateway_pb2.UploadMediaRequest(chunk=chunk)

    def checked(self, info: gateway_pb2.MediaInfo) -> gateway_pb2.MediaInfo:
        if (info.size, info.sha256) != (self._size, self._hash.hexdigest()):
            raise _data_loss(
                f"the gateway kept {info.size} bytes (sha256 {info.sha256}), "
                f"not the {self._size} sent (sha256 {self._hash.hexdigest()})"
            )
        return info


class Received:
    """GetMedia's parts in order: the ``MediaInfo`` first, then the bytes it describes."""

    def __init__(self) -> None:
        self._info: gateway_pb2.MediaInfo | None = None
        self._hash = hashlib.sha256()
        self._size = 0

    def take(self, part: gateway_pb2.GetMediaResponse) -> bytes:
        """The part's bytes (none for the description)."""
        if part.HasField("info"):
            if self._info is not None:
                raise _data_loss("GetMedia sent a second description")
            self._info = part.info
            return b""
        if self._info is None:
            raise _data_loss("GetMedia sent bytes before the file's description")
        self._hash.update(part.chunk)
        self._size += len(part.chunk)
        if self._size > self._info.size:
            raise _data_loss(f"GetMedia sent more than the file's {self._info.size} bytes")
        return part.chunk

    def finish(self) -> gateway_pb2.MediaInfo:
        """The description, once every byte came and matches it."""
        info = self._info
        if info is None:
            raise _data_loss("GetMedia ended without the file's description")
        if (self._size, self._hash.hexdigest()) != (info.size, info.sha256):
            raise _data_loss(
                f"GetMedia sent {self._size} bytes (sha256 {self._hash.hexdigest()}), "
                f"not the file's {info.size} (sha256 {info.sha256})"
            )
        return info


# -- sync uploads -----------------------------------------------------------------------------


class SyncUploadFeed:
    """A sync upload's messages, for the thread grpc sends them from.

    grpc would log a source's exception as its own and end the call UNKNOWN; instead the call is
    cancelled (so nothing is kept) and the exception kept in ``failure`` for the caller to raise.
    """

    def __init__(
        self, start: gateway_pb2.UploadMediaRequest, chunks: Iterator[bytes], sent: Sent
    ) -> None:
        self._start = start
        self._chunks = chunks
        self._sent = sent
        self._call: Any = None
        self._attached = threading.Event()
        self.failure: Exception | None = None

    def attach(self, call: Any) -> None:
        """The call (a grpc future) to cancel when the source fails."""
        self._call = call
        self._attached.set()

    def __iter__(self) -> Iterator[gateway_pb2.UploadMediaRequest]:
        yield self._start
        try:
            for chunk in self._chunks:
                yield self._sent.add(chunk)
        except Exception as exc:  # handed to the caller by the call's result
            self.failure = exc
            self._attached.wait()
            self._call.cancel()


# -- downloads --------------------------------------------------------------------------------


class DownloadTarget:
    """Where a download's bytes go, written as they come.

    A path is refused when it exists (``FileExistsError``, before anything is fetched) unless
    ``overwrite``; a download that fails leaves no file there, and one that overwrites a regular
    file replaces it only when complete (it is written beside it first). An open file is written
    to as it is and left open. Every method blocks: the asyncio client calls them on a thread.
    """

    def __init__(self, destination: MediaDestination, *, overwrite: bool = False) -> None:
        if isinstance(destination, str | os.PathLike):
            self._path: Path | None = Path(os.fspath(destination))
            self._given: IO[bytes] | None = None
        else:
            self._path, self._given = None, destination
        self._overwrite = overwrite
        self._file: IO[bytes] | None = None
        self._partial: Path | None = None  # the file that goes when the download fails

    def open(self) -> None:
        path = self._path
        if path is None:
            self._file = self._given
        elif not self._overwrite:
            self._file = open(path, "xb")  # noqa: SIM115 - closed by close()
            self._partial = path
        elif _replaceable(path):
            self._partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            self._file = open(self._partial, "xb")  # noqa: SIM115 - closed by close()
        else:  # a device or a pipe (/dev/stdout, say): written in place, never replaced
            self._file = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "open() first"
        self._file.write(chunk)

    def close(self, *, complete: bool) -> None:
        """Flush and close the file (an open file given is only flushed); a complete download
        written beside its destination takes its place, an incomplete one is removed."""
        file, self._file = self._file, None
        if file is None:
            return
        try:
            if file is self._given:
                file.flush()
            else:
                file.close()
        except BaseException:
            complete = False
            raise
        finally:
            partial, path = self._partial, self._path
            if partial is not None and not complete:
                partial.unlink(missing_ok=True)
            elif partial is not None and path is not None and partial != path:
                os.replace(partial, path)


def _replaceable(path: Path) -> bool:
    """True when a new file may take the path's place: nothing there, or a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return True
    return stat.S_ISREG(mode)

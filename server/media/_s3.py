"""Blobs in any S3-compatible object store, for replicas that share their media (issue 17).

One aiobotocore client serves the store for its whole life (made by ``start`` or the first call,
closed by ``aclose``). A put first spools the bytes to a temporary file (in memory up to 1 MiB),
counting and hashing them, so the cap is applied before anything is uploaded and a refused put
leaves nothing in the bucket; then one PutObject, or a multipart upload for a large blob (aborted
on any failure). Either becomes visible whole, at once, as S3 promises. ``open`` is one ranged
GetObject whose body is read a chunk at a time; ``size`` is a HeadObject.

Credentials are handed to the client and kept nowhere else; nothing here logs them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterable, Callable
from typing import IO, TYPE_CHECKING, Final, Literal, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ._blob_backend import (
    BlobOpener,
    Meter,
    disk_io,
    metered,
)
from ._blobs import (
    BlobNotFound,
    BlobStoreError,
    ChunkSource,
    StoredBlob,
    check_key,
)

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = ["S3BlobStore"]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

_MIB: Final = 1024 * 1024
# S3 takes parts of 5 MiB to 5 GiB (all but the last) and at most 10,000 of them.
_MIN_PART_SIZE: Final = 5 * _MIB
_NOT_FOUND: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_RANGE_NOT_SATISFIABLE: Final = frozenset({"416", "InvalidRange"})

AddressingStyle = Literal["auto", "path", "virtual"]


class S3BlobStore(BlobOpener):
    """Blobs as objects in ``bucket`` (which must exist), under ``key_prefix`` when given.

    ``endpoint_url`` names an S3-compatible service (MinIO, Ceph, R2, a local moto); None is AWS.
    With no access key the client's usual credential chain applies (environment, instance role).
    ``addressing_style`` "path" (the default) puts the bucket in the path, which every
    S3-compatible service understands; "virtual" or "auto" suit AWS.
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        key_prefix: str = "",
        addressing_style: AddressingStyle = "path",
        multipart_threshold: int = 8 * _MIB,
        part_size: int = 8 * _MIB,
        timeout_s: float = 60.0,
        max_connections: int = 10,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket")
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both the access key id and the secret access key, or neither")
        if part_size < _MIN_PART_SIZE:
            raise ValueError(f"an S3 multipart part is at least {_MIN_PART_SIZE} bytes")
        if multipart_threshold < 0:
            raise ValueError("the multipart threshold is 0 or more")
        prefix = key_prefix.strip("/")
        self._prefix = check_key(prefix) + "/" if prefix else ""
        self._bucket = bucket
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._region = region
        self._endpoint_url = endpoint_url
        self._credentials = (access_key_id, secret_access_key)
        # aiobotocore is imported by the S3 store only: it takes a third of a second, which a
        # gateway keeping its media on disk need not spend.
        from aiobotocore.config import AioConfig

        self._config = AioConfig(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            max_pool_connections=max_connections,
            retries={"mode": "standard"},
            s3={"addressing_style": addressing_style},
            # Checksums only where S3 requires them: several S3-compatible services refuse or
            # mishandle the CRC headers newer clients send by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._closed = False
        # Spooled bytes past 1 MiB are on disk: their reads and writes run here, off the loop.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="s3-spool"
        )

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def key_prefix(self) -> str:
        """What every object key starts with: the prefix given and a slash, or nothing."""
        return self._prefix

    async def start(self) -> None:
        """Make the client now rather than at the first call."""
        await self._client_now()

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        name = self._name(key)
        meter = Meter(max_size)
        with tempfile.SpooledTemporaryFile(max_size=_MIB) as spool:
            async for batch in metered(chunks, meter):
                await self._spool(spool.write, batch)
            stored = meter.stored(key)
            await self._spool(spool.seek, 0)
            client = await self._client_now()
            try:
                if stored.size <= self._multipart_threshold:
                    body = await self._spool(spool.read)
                    await client.put_object(
                        Bucket=self._bucket, Key=name, Body=body, ContentLength=stored.size
                    )
                else:
                    await self._upload_parts(client, name, spool)
            except (BotoCoreError, ClientError) as exc:
                raise _failed("store a blob", exc) from exc
        return stored

    async def _open_range(
        self, key: str, start: int, end: int | None, chunk_size: int
    ) -> ChunkSource:
        name = self._name(key)
        if end == start:
            # Nothing to read (a GetObject cannot ask for no bytes), but the blob must exist.
            if await self.size(key) is None:
                raise BlobNotFound(key)
            return _NoChunks()
        client = await self._client_now()
        try:
            if start == 0 and end is None:
                response = await client.get_object(Bucket=self._bucket, Key=name)
            else:
                last = "" if end is None else str(end - 1)  # HTTP ranges end inclusive
                response = await client.get_object(
                    Bucket=self._bucket, Key=name, Range=f"bytes={start}-{last}"
                )
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                raise BlobNotFound(key) from exc
            if code in _RANGE_NOT_SATISFIABLE:
                return _NoChunks()  # the range starts at or past the blob's end
            raise _failed("read a blob", exc) from exc
        except BotoCoreError as exc:
            raise _failed("read a blob", exc) from exc
        return _BodyChunks(response["Body"], chunk_size)

    async def size(self, key: str) -> int | None:
        name = self._name(key)
        client = await self._client_now()
        try:
            head = await client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise _failed("read a blob's size", exc) from exc
        except BotoCoreError as exc:
            raise _failed("read a blob's size", exc) from exc
        return head["ContentLength"]

    async def delete(self, key: str) -> None:
        name = self._name(key)
        client = await self._client_now()
        try:
            await client.delete_object(Bucket=self._bucket, Key=name)  # absent: S3 answers 204
        except (BotoCoreError, ClientError) as exc:
            raise _failed("delete a blob", exc) from exc

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            self._client = None
            await self._exit.aclose()
        self._executor.shutdown(wait=False)

    # -----------------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self._prefix + check_key(key)

    async def _client_now(self) -> S3Client:
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._closed:
                raise BlobStoreError("the blob store is closed")
            if self._client is None:
                from aiobotocore.session import get_session

                access_key_id, secret_access_key = self._credentials
                self._client = await self._exit.enter_async_context(
                    get_session().create_client(
                        "s3",
                        region_name=self._region,
                        endpoint_url=self._endpoint_url,
                        aws_access_key_id=access_key_id,
                        aws_secret_access_key=secret_access_key,
                        config=self._config,
                    )
                )
            client = self._client
        return client

    async def _upload_parts(self, client: S3Client, name: str, spool: IO[bytes]) -> None:
        upload = await client.create_multipart_upload(Bucket=self._bucket, Key=name)
        upload_id = upload["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            while data := await self._spool(spool.read, self._part_size):
                number = len(parts) + 1
                part = await client.upload_part(
                    Bucket=self._bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
            await client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            try:
                await client.abort_multipart_upload(
                    Bucket=self._bucket, Key=name, UploadId=upload_id
                )
            except (BotoCoreError, ClientError) as exc:
                # The bucket's lifecycle rule for incomplete uploads (if any) removes the parts.
                logger.warning("could not abort a multipart upload: %s", _code_of(exc))
            raise

    async def _spool(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await disk_io(self._executor, "spool a blob", function, *args, **kwargs)


class _BodyChunks:
    """A GetObject body, read a chunk at a time."""

    __slots__ = ("_body", "_chunk_size")

    def __init__(self, body: StreamingBody, chunk_size: int) -> None:
        self._body = body
        self._chunk_size = chunk_size

    async def read(self) -> bytes:
        try:
            return await self._body.read(self._chunk_size)
        except (BotoCoreError, ClientError) as exc:
            raise _failed("read a blob", exc) from exc

    def close(self) -> None:
        self._body.close()


class _NoChunks:
    """An empty range."""

    async def read(self) -> bytes:
        return b""

    def close(self) -> None:
        return None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _code_of(exc: BotoCoreError | ClientError) -> str:
    return _code(exc) if isinstance(exc, ClientError) else type(exc).__name__


def _failed(action: str, exc: BotoCoreError | ClientError) -> BlobStoreError:
    # The error code or class only: a message could quote a request's signed header.
    return BlobStoreError(f"the object store could not {action}: {_code_of(exc)}")

"""The sidecar's media route: ``GET`` and ``HEAD /media/{media_id}?e=<expiry>&s=<signature>``.

The route knows no store: a :class:`MediaReader` verifies the signed URL and gives the item's
content type and size (:meth:`MediaReader.head`), then its bytes (:meth:`MediaReader.read`); the
core's store in-process, or the core over gRPC for a separate sidecar. The body is streamed as
the reader yields it, never held whole.

Answers:

- 200 with the whole item; ``HEAD`` the same head without the body (a ``Range`` is ignored, RFC
  9110 §14.2: range requests are defined for GET only);
- 206 with ``Content-Range`` for one byte range (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), a
  last position past the end meaning the end (RFC 9110 §14.1.2);
- 416 with ``Content-Range: bytes */<size>`` when the one range starts past the end (or the item
  is empty);
- the whole item (200) for several ranges, a unit other than ``bytes``, a malformed ``Range`` or
  an ``If-Range`` (this route gives no validator it could match): RFC 9110 §14.2 lets a server
  ignore any ``Range``;
- 404 (never 403: nothing tells whether the id exists) for an unknown id, a bad or expired
  signature, or a query with anything but one ``e`` (decimal, as signed) and one ``s``; an
  expired URL without asking the reader;
- 503 with ``Retry-After`` when the core is unavailable, 500 when the reader failed.

Every item goes out with ``X-Content-Type-Options: nosniff``, ``Content-Security-Policy:
default-src 'none'; sandbox``, and ``Content-Disposition: attachment`` unless it is an image,
audio or video that is not XML (SVG): a browser never renders or runs what a provider sent.
``Cache-Control: private, max-age=<seconds until the URL expires>``.

Logs never carry the path or query (the signature is a bearer credential): the status and the
reader's error class only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

from aiohttp import web
from multidict import MultiMapping

from msgbridge.v1 import ingest_pb2

from ._forward import CoreUnavailable, GrpcIngestForwarder
from ._routes import MEDIA_EXPIRES_PARAM, MEDIA_SIGNATURE_PARAM, is_media_id

__all__ = [
    "GrpcMediaReader",
    "MediaHead",
    "MediaRange",
    "MediaReader",
    "MediaRoute",
    "RangeNotSatisfiable",
    "byte_range",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MediaRange:
    """Bytes ``start`` to ``end`` of an item, ``end`` exclusive."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class MediaHead:
    """What is served of an item before its bytes."""

    #: As sniffed from the bytes when the item was stored (never a provider's).
    content_type: str
    #: In bytes.
    size: int


class MediaReader(Protocol):
    """The stored media, as the route reads it."""

    async def head(self, media_id: str, expires_at: int, signature: str) -> MediaHead | None:
        """The item's head when ``signature`` is valid for ``media_id`` and ``expires_at`` and
        the URL has not expired; None for an unknown id or a bad or expired signature.
        May raise :class:`CoreUnavailable`."""
        ...

    def read(
        self, media_id: str, expires_at: int, signature: str, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        """The item's bytes from ``start`` to ``end`` (exclusive; None: to the end), in chunks.
        Only called after :meth:`head` accepted the URL; the URL's signature comes again, so
        that a reader across a network (a separate sidecar's) is asked with it each time."""
        ...


class GrpcMediaReader:
    """The :class:`MediaReader` of a separate sidecar: the core's ``ReadMedia``, which checks
    the signature and reads the file (docs/media.md)."""

    def __init__(self, forwarder: GrpcIngestForwarder) -> None:
        self._forwarder = forwarder

    async def head(self, media_id: str, expires_at: int, signature: str) -> MediaHead | None:
        request = ingest_pb2.MediaRead(
            media_id=media_id, expires_at=expires_at, signature=signature, head_only=True
        )
        parts = self._forwarder.read_media(request, deadline=True)
        async with contextlib.aclosing(parts):
            async for part in parts:
                if not part.head.found:
                    return None
                return MediaHead(content_type=part.head.content_type, size=part.head.size)
        return None

    async def read(
        self, media_id: str, expires_at: int, signature: str, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        request = ingest_pb2.MediaRead(
            media_id=media_id, expires_at=expires_at, signature=signature, start=start, end=end or 0
        )
        parts = self._forwarder.read_media(request, deadline=False)
        async with contextlib.aclosing(parts):
            async for part in parts:
                if part.WhichOneof("part") == "chunk":
                    yield part.chunk
                elif not part.head.found:
                    return


class RangeNotSatisfiable(Exception):
    """A byte range that starts at or past the end of the item (416)."""


# RFC 9110 §14.1.2: ranges-specifier = range-unit "=" range-set; one int-range or suffix-range.
_RANGE = re.compile(r"([0-9]*)-([0-9]*)")
# A position longer than this is past the end of any item (and Python limits int() of long
# digit strings).
_MAX_DIGITS = 19
_FAR = 10**_MAX_DIGITS


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else _FAR


def byte_range(header: str | None, size: int) -> MediaRange | None:
    """The one byte range ``header`` (a ``Range`` value) asks of an item of ``size`` bytes.

    None when the whole item is to be served: no header, another unit, several ranges or a
    malformed one. :class:`RangeNotSatisfiable` when the range starts past the end.
    """
    if header is None:
        return None
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    match = _RANGE.fullmatch(specs[0])
    if match is None or match.group(0) == "-":
        return None
    first, last = match.groups()
    if not first:  # a suffix: the last n bytes
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return MediaRange(max(0, size - suffix), size)
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid: ignored like any malformed range
    if start >= size:
        raise RangeNotSatisfiable
    end = min(size, _position(last) + 1) if last else size
    return MediaRange(start, end)


# Decimal as signed: no sign, no leading zero (another spelling of the same expiry is another URL).
_EXPIRY = re.compile(r"0|[1-9][0-9]{0,18}")


def _signed_query(query: MultiMapping[str]) -> tuple[int, str] | None:
    """``(expires_at, signature)`` of a media URL's query; None unless it is exactly one ``e``
    (decimal) and one ``s``."""
    if set(query) != {MEDIA_EXPIRES_PARAM, MEDIA_SIGNATURE_PARAM} or len(query) != 2:
        return None
    expiry = query[MEDIA_EXPIRES_PARAM]
    if _EXPIRY.fullmatch(expiry) is None:
        return None
    return int(expiry), query[MEDIA_SIGNATURE_PARAM]


def _inline(content_type: str) -> bool:
    essence = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = essence.partition("/")
    return kind in ("image", "audio", "video") and not subtype.endswith("+xml")


def _plain(status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    response = web.Response(
        status=status, text=HTTPStatus(status).phrase, content_type="text/plain", headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    return response


class MediaRoute:
    """The handler of the media route, over a :class:`MediaReader`; ``clock`` is Unix time."""

    def __init__(self, reader: MediaReader, *, clock: Callable[[], float] = time.time) -> None:
        self._reader = reader
        self._clock = clock

    async def serve(self, request: web.Request) -> web.StreamResponse:
        media_id = request.match_info["media_id"]
        signed = _signed_query(request.rel_url.query)
        if signed is None or not is_media_id(media_id):
            return _plain(HTTPStatus.NOT_FOUND)
        expires_at, signature = signed
        now = self._clock()
        if now >= expires_at:
            return _plain(HTTPStatus.NOT_FOUND)  # expired: the reader need not be asked
        try:
            head = await self._reader.head(media_id, expires_at, signature)
        except CoreUnavailable as exc:
            logger.warning("core unavailable", extra={"error": str(exc)})
            return _plain(
                HTTPStatus.SERVICE_UNAVAILABLE, headers={"Retry-After": str(exc.retry_after_s)}
            )
        except Exception as exc:
            logger.error("media head failed", extra={"error": type(exc).__name__})
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        if head is None:
            return _plain(HTTPStatus.NOT_FOUND)
        if head.size < 0:
            logger.error("media head has a negative size")
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)

        headers = {
            "Content-Type": head.content_type,
            "Accept-Ranges": "bytes",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": f"private, max-age={max(0, expires_at - int(now))}",
        }
        if not _inline(head.content_type):
            headers["Content-Disposition"] = "attachment"
        wanted: MediaRange | None = None
        ranges = request.headers.getall("Range", [])
        if request.method == "GET" and len(ranges) == 1 and "If-Range" not in request.headers:
            try:
                wanted = byte_range(ranges[0], head.size)
            except RangeNotSatisfiable:
                return _plain(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    headers={"Content-Range": f"bytes */{head.size}", "Accept-Ranges": "bytes"},
                )
        if wanted is not None:
            headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end - 1}/{head.size}"
        response = web.StreamResponse(
            status=HTTPStatus.PARTIAL_CONTENT if wanted is not None else HTTPStatus.OK,
            headers=headers,
        )
        response.content_length = wanted.length if wanted is not None else head.size
        await response.prepare(request)
        if request.method == "GET":
            await self._stream(response, (media_id, expires_at, signature), wanted, head.size)
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        signed: tuple[str, int, str],
        wanted: MediaRange | None,
        size: int,
    ) -> None:
        """Writes the bytes; when the reader fails or gives fewer bytes than the head said, the
        connection is closed, so the client sees a cut body, never a short one taken as whole."""
        start, end = (wanted.start, wanted.end) if wanted is not None else (0, None)
        remaining = (end if end is not None else size) - start
        if remaining <= 0:
            return
        chunks = self._reader.read(*signed, start, end)
        failed = False
        try:
            async for chunk in chunks:
                part = chunk[:remaining]
                remaining -= len(part)
                await response.write(part)
                if remaining <= 0:
                    break
        except ConnectionError:
            response.force_close()  # the client went away: nothing to tell it
            return
        except Exception as exc:
            failed = True
            logger.error("media read failed", extra={"error": type(exc).__name__})
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if remaining > 0:
            if not failed:
                logger.error("media item shorter than its head said")
            response.force_close()

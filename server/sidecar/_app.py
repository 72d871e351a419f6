"""The sidecar's HTTP application: receive a provider's request, forward it raw, answer the verdict.

It does no matching and knows nothing of definitions: every webhook (and the OAuth callback) is
turned into one :class:`~server.sidecar._delivery.Delivery` and handed to the
:class:`IngestHandler`; its :class:`~server.sidecar._delivery.Verdict` is the answer.

Statuses of its own: 404 (unknown path), 413 (body over ``max_body``, declared or counted), 415
(a ``Content-Encoding`` other than ``identity``), 408 (the request not received within
``request_timeout_s``), 503 with ``Retry-After`` (core unavailable), 500 (the handler failed or
gave no valid status). Media (``/media/…``, when a reader is given) is served by
:class:`~server.sidecar._media.MediaRoute`, with statuses of its own. 431 and the head's share
of the 408 need the connection layer that :class:`SidecarServer` installs.

A body is forwarded as it was received (aiohttp's decompression is off: a signature covers the
bytes sent), so ``max_body`` counts the bytes on the wire. A compressed body is refused before
any of it is read rather than inflated: a small gzip body can inflate to gigabytes, and the core
would only misread the compressed bytes as a form or fail to parse them.

Logs carry the method, integration id, status and duration only: paths carry installation tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web
from multidict import CIMultiDict

from ..tracing import note_http_status, webhook_span
from ._connection import HEAD_STARTED_AT
from ._delivery import Delivery, Header, Verdict
from ._forward import CoreUnavailable, IngestHandler
from ._media import MediaReader, MediaRoute
from ._routes import FORWARDED_PATHS, HEALTH_PATH, MEDIA_ROUTE, READY_PATH

__all__ = ["SIDECAR_LIMITS", "SidecarLimits", "build_sidecar_app"]

logger = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, kw_only=True, slots=True)
class SidecarLimits:
    """The limits the sidecar enforces on every request."""

    #: Largest body accepted, bytes (413 above).
    max_body: int
    #: Time from a request's first byte to its last, seconds (408 after).
    request_timeout_s: float
    #: Longest request line or header field (name and value), bytes (431 above).
    max_field_size: int = 8190
    #: Most header fields in one request (431 above).
    max_headers: int = 100

    def __post_init__(self) -> None:
        if self.max_body < 0:
            raise ValueError(f"max_body must not be negative, not {self.max_body}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be positive, not {self.request_timeout_s}")
        if self.max_field_size <= 0 or self.max_headers <= 0:
            raise ValueError("max_field_size and max_headers must be positive")


#: Where the application keeps its :class:`SidecarLimits` (read by :class:`SidecarServer`).
SIDECAR_LIMITS = web.AppKey("msgbridge_sidecar_limits", SidecarLimits)

_READINESS_TIMEOUT_S = 5.0


def _plain(
    status: int, *, close: bool = False, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.Response(
        status=status, text=HTTPStatus(status).phrase, content_type="text/plain", headers=headers
    )
    if close:
        response.force_close()
    return response


class _BodyRefused(Exception):
    """A body refused with ``status``; the connection is closed after the answer (what is left
    of the body on it is not the next request's head)."""

    def __init__(self, status: HTTPStatus) -> None:
        self.response = _plain(status, close=True)


def _decode_header(raw: bytes) -> str:
    # Proto strings are UTF-8. A value that is not UTF-8 is obs-text (RFC 9110 §5.5): read it as
    # Latin-1, which maps each byte to one code point and so loses nothing.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _content_coded(request: web.Request) -> bool:
    """Whether the body has a content coding (gzip, deflate, br…) other than ``identity``."""
    return any(
        coding.strip().lower() not in ("", "identity")
        for header in request.headers.getall("Content-Encoding", ())
        for coding in header.split(",")
    )


def _where(exc: BaseException) -> str:
    """Where the exception was raised, as ``file:line`` (no text from it)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class _Sidecar:
    """The request handlers, sharing the handler, the public URL and the limits."""

    def __init__(
        self,
        handler: IngestHandler,
        *,
        public_url: str,
        limits: SidecarLimits,
        readiness: Readiness | None,
    ) -> None:
        self._handler = handler
        self._public_url = public_url.rstrip("/")
        self._limits = limits
        self._readiness = readiness

    async def healthz(self, request: web.Request) -> web.Response:
        return _plain(HTTPStatus.OK)

    async def readyz(self, request: web.Request) -> web.Response:
        if self._readiness is None:
            return _plain(HTTPStatus.OK)
        try:
            async with asyncio.timeout(_READINESS_TIMEOUT_S):
                ready = await self._readiness()
        except Exception as exc:
            logger.warning("readiness check failed", extra={"error": type(exc).__name__})
            ready = False
        return _plain(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE)

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Any webhook (or OAuth callback), in its ``webhook`` span (docs/operations.md,
        "Traces"): forward it raw and answer with the core's verdict."""
        integration = request.match_info.get("integration_id", "")
        with webhook_span(request.method, integration) as span:
            response = await self._forward(request)
            note_http_status(span, response.status, failed_from=500)
            return response

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if _content_coded(request):
            return _plain(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, close=True)
        try:
            body = await self._read_body(request)
        except _BodyRefused as refused:
            return refused.response
        delivery = self._delivery(request, body)
        try:
            verdict = await self._handler.ingest(delivery)
        except CoreUnavailable as exc:
            logger.warning("core unavailable", extra={"error": str(exc)})
            return _plain(
                HTTPStatus.SERVICE_UNAVAILABLE, headers={"Retry-After": str(exc.retry_after_s)}
            )
        except Exception as exc:
            # Not the exception's text nor its traceback: either may quote the request.
            logger.error("ingest failed", extra={"error": type(exc).__name__, "where": _where(exc)})
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        return self._answer(verdict)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._limits.max_body
        declared = request.content_length
        if declared is not None and declared > limit:
            raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        if request.content.is_eof():
            # All of it arrived with the head, as a webhook's body usually does: nothing to
            # wait for, so no deadline to keep.
            try:
                body = request.content.read_nowait(-1)
            except web.RequestPayloadError:
                raise _BodyRefused(HTTPStatus.BAD_REQUEST) from None
            if len(body) > limit:
                raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return body
        loop = asyncio.get_running_loop()
        # The deadline runs from the head's first byte (stamped by the connection layer).
        started = request.get(HEAD_STARTED_AT, loop.time())
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(started + self._limits.request_timeout_s):
                # iter_any yields what has arrived, so a chunked body is counted as it comes.
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                    chunks.append(chunk)
        except TimeoutError:
            raise _BodyRefused(HTTPStatus.REQUEST_TIMEOUT) from None
        except web.RequestPayloadError:
            # A broken chunked or compressed encoding, or a body shorter than declared.
            raise _BodyRefused(HTTPStatus.BAD_REQUEST) from None
        return b"".join(chunks)

    def _delivery(self, request: web.Request, body: bytes) -> Delivery:
        path = request.rel_url.raw_path
        query = request.rel_url.raw_query_string
        url = f"{self._public_url}{path}?{query}" if query else f"{self._public_url}{path}"
        return Delivery(
            method=request.method,
            path=path,
            query=query,
            headers=tuple(
                Header(_decode_header(name), _decode_header(value))
                for name, value in request.raw_headers
            ),
            body=body,
            url=url,
            remote_addr=request.remote or "",
        )

    def _answer(self, verdict: Verdict) -> web.Response:
        status = verdict.http_status
        if not HTTPStatus.OK <= status <= 599:
            logger.error("the core's verdict has no valid status", extra={"status": status})
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        if status in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            return web.Response(status=status)
        headers = CIMultiDict(verdict.headers)
        if verdict.content_type:
            headers["Content-Type"] = verdict.content_type
        return web.Response(status=status, body=verdict.body, headers=headers)


@web.middleware
async def _log_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """One log line per request (never the path: it carries tokens); keep-alive only when the
    body was read whole, so that what follows on the connection is the next request's head."""
    started = time.perf_counter()
    status = HTTPStatus.INTERNAL_SERVER_ERROR.value
    try:
        response = await handler(request)
        status = response.status
        if not request.content.is_eof():
            response.force_close()
        return response
    except web.HTTPException as exc:  # aiohttp's own answers: 404, 405 …
        status = exc.status
        if not request.content.is_eof():
            exc.force_close()
        raise
    finally:
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            level = logging.WARNING
        elif status >= HTTPStatus.BAD_REQUEST:
            level = logging.INFO
        else:
            level = logging.DEBUG
        if logger.isEnabledFor(level):  # the line's fields are made only when it is written
            extra = {
                "method": request.method,
                "integration": request.match_info.get("integration_id", ""),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            logger.log(level, "request answered", extra=extra)


def build_sidecar_app(
    handler: IngestHandler,
    *,
    public_url: str,
    max_body: int,
    request_timeout_s: float,
    readiness: Readiness | None = None,
    max_field_size: int = 8190,
    max_headers: int = 100,
    media: MediaReader | None = None,
) -> web.Application:
    """The sidecar's application; serve it with :class:`SidecarServer` (for 431 and the head's 408).

    ``public_url`` is the base the providers call (``https://hooks.example.com``); a delivery's
    ``url`` is it plus the path and query received. ``readiness`` says whether the core can take
    deliveries (``/readyz``); None means always (the core in-process). ``media`` serves stored
    media at ``/media/{media_id}`` (signed URLs); without it that path is 404 like any other.
    """
    limits = SidecarLimits(
        max_body=max_body,
        request_timeout_s=request_timeout_s,
        max_field_size=max_field_size,
        max_headers=max_headers,
    )
    sidecar = _Sidecar(handler, public_url=public_url, limits=limits, readiness=readiness)
    # The body is read (and limited) by the handler itself, never by aiohttp's request.read().
    app = web.Application(middlewares=[_log_requests], client_max_size=max(max_body, 1))
    app[SIDECAR_LIMITS] = limits
    app.router.add_get(HEALTH_PATH, sidecar.healthz)
    app.router.add_get(READY_PATH, sidecar.readyz)
    for path in FORWARDED_PATHS:
        app.router.add_route("*", path, sidecar.forward)
    if media is not None:
        app.router.add_get(MEDIA_ROUTE, MediaRoute(media).serve)  # and HEAD
    return app

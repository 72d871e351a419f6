"""The sidecar's HTTP connections: aiohttp's own protocol, with three things changed.

aiohttp answers every malformed request head with 400, has no deadline for receiving a head and
logs the parser's error, which quotes the offending header. Here:

1. a head that exceeds the header limits (a line longer than ``max_field_size``, more than
   ``max_headers`` fields) is answered 431 instead of 400;
2. a request whose head is not complete ``request_timeout_s`` after its first byte is answered
   408 and the connection closed (the body's share of the same deadline is enforced by the app,
   which finds the head's start under :data:`HEAD_STARTED_AT`);
3. a malformed request is logged by status and error class only, never its content.

The hooks are public aiohttp API except one: :meth:`SidecarRunner._make_server`, the runner's
abstract factory method, which builds a :class:`SidecarServer` around the application.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

__all__ = ["HEAD_STARTED_AT", "SidecarConnection", "SidecarRunner", "SidecarServer"]

logger = logging.getLogger(__name__)

#: The event loop's time at which the request's first byte arrived.
HEAD_STARTED_AT = web.RequestKey("msgbridge_head_started_at", float)

# Sent when a client does not finish its request head in time. There is no request object to
# answer through at that point, so the bytes are written directly.
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 15\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"Request Timeout"
)


def _head_too_large(exc: BaseException | None) -> bool:
    # aiohttp's parsers (C and Python) raise LineTooLong for a request line or header field over
    # the limit and a plain BadHttpMessage for too many header fields; the message is the only
    # thing that tells the latter apart (the sidecar's tests pin it).
    if isinstance(exc, LineTooLong):
        return True
    return isinstance(exc, BadHttpMessage) and exc.message.startswith("Too many headers")


class SidecarConnection(RequestHandler):
    """One HTTP connection: aiohttp's protocol with the head deadline, 431, and quiet errors."""

    __slots__ = ("_awaiting_head", "_body", "_head_started_at", "_head_timer", "_timeout_s")

    def __init__(self, manager: web.Server, *, request_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._timeout_s = request_timeout_s
        self._awaiting_head = True
        self._head_started_at: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None

    # -- the head deadline ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        previous_body_done = self._body is None or self._body.is_eof()
        if (
            self._awaiting_head
            and self._head_timer is None
            and previous_body_done
            and self.transport is not None
        ):
            # The first bytes of a head (the previous request's body is complete, so these
            # are not its tail).
            loop = asyncio.get_running_loop()
            self._head_started_at = loop.time()
            self._head_timer = loop.call_at(
                self._head_started_at + self._timeout_s, self._head_timed_out
            )

    def head_received(self, body: StreamReader) -> float:
        """The head is complete and its request about to be handled: when it started."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        started = self._head_started_at
        self._head_started_at = None
        self._awaiting_head = False
        self._body = body
        return started if started is not None else asyncio.get_running_loop().time()

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        # Called once the response is written: what comes next on this connection is a head.
        super().log_access(request, response, time)
        self._awaiting_head = True

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport is None:
            return
        logger.info("request head not received in time", extra={"status": 408})
        self.transport.write(_REQUEST_TIMEOUT)
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    # -- malformed requests -----------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request aiohttp could not parse or handle; closes the connection.

        Unlike aiohttp's, it logs no exception text (the parser quotes the offending header) and
        answers 431 when the head exceeded the header limits.
        """
        if status == HTTPStatus.BAD_REQUEST and _head_too_large(exc):
            status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        log = logger.error if status >= HTTPStatus.INTERNAL_SERVER_ERROR else logger.info
        log(
            "request refused",
            extra={"status": status, "error": type(exc).__name__ if exc is not None else None},
        )
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; the connection is dropped")
        response = web.Response(
            status=status, text=HTTPStatus(status).phrase, content_type="text/plain"
        )
        response.force_close()
        return response


class SidecarServer(web.Server):
    """aiohttp's low-level server making :class:`SidecarConnection` connections.

    ``request_factory`` is the application's; each request it makes is stamped with
    :data:`HEAD_STARTED_AT`. ``connection_options`` are :class:`RequestHandler`'s keyword
    arguments (``max_field_size``, ``keepalive_timeout`` …).
    """

    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any,
        request_timeout_s: float,
        connection_options: Mapping[str, Any],
        loop: asyncio.AbstractEventLoop,
        handler_cancellation: bool = False,
    ) -> None:
        self._app_request_factory = request_factory
        self._request_timeout_s = request_timeout_s
        self._connection_options = dict(connection_options)
        self._connection_loop = loop
        super().__init__(
            handler,
            request_factory=self._make_stamped_request,
            handler_cancellation=handler_cancellation,
            loop=loop,
        )

    def _make_stamped_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        request: web.BaseRequest = self._app_request_factory(
            message, payload, protocol, writer, task
        )
        if isinstance(protocol, SidecarConnection):
            request[HEAD_STARTED_AT] = protocol.head_received(payload)
        return request

    def __call__(self) -> RequestHandler:
        return SidecarConnection(
            self,
            loop=self._connection_loop,
            request_timeout_s=self._request_timeout_s,
            **self._connection_options,
        )


class SidecarRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server makes :class:`SidecarConnection` s."""

    def __init__(
        self,
        app: web.Application,
        *,
        request_timeout_s: float,
        connection_options: Mapping[str, Any],
        shutdown_timeout: float = 10.0,
    ) -> None:
        super().__init__(app, access_log=None, shutdown_timeout=shutdown_timeout)
        self._sidecar_timeout_s = request_timeout_s
        self._sidecar_options = dict(connection_options)

    async def _make_server(self) -> web.Server:
        # The application's own server (after its startup signal) supplies the request handler
        # and factory; only the connections differ.
        plain = await super()._make_server()
        return SidecarServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            request_timeout_s=self._sidecar_timeout_s,
            connection_options=self._sidecar_options,
            loop=asyncio.get_running_loop(),
            handler_cancellation=plain.handler_cancellation,
        )

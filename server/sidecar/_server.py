"""Serving the sidecar's application: :class:`SidecarServer`, with the connection layer that
enforces the head's limits (431, and the head's share of the 408)."""

from __future__ import annotations

import socket
from typing import Any

from aiohttp import web

from ._app import SIDECAR_LIMITS
from ._connection import SidecarRunner

__all__ = ["SidecarServer"]

# An idle keep-alive connection is closed after this long (aiohttp's own default is an hour).
_KEEPALIVE_TIMEOUT_S = 75.0


class SidecarServer:
    """Serves ``app`` (from :func:`build_sidecar_app`) on ``host:port``; port 0 picks a free one.

    :meth:`start` binds and serves (``OSError`` when the address cannot be bound); :attr:`port`
    is then the port bound. With ``sock``, a socket already listening, it serves that one
    instead (``msgbridge serve`` binds its ports before it makes anything else) and owns it.
    :meth:`aclose` stops listening, lets the requests in flight finish
    (up to ``shutdown_timeout_s``) and closes.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        shutdown_timeout_s: float = 10.0,
        sock: socket.socket | None = None,
    ) -> None:
        try:
            self._limits = app[SIDECAR_LIMITS]
        except KeyError:
            raise TypeError("SidecarServer serves an application from build_sidecar_app") from None
        self._app = app
        self._host = host
        self._requested_port = port
        self._sock = sock
        self._shutdown_timeout_s = shutdown_timeout_s
        self._runner: SidecarRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port bound (known once started)."""
        if self._port is None:
            raise RuntimeError("the sidecar is not serving")
        return self._port

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("SidecarServer already started")
        limits = self._limits
        options: dict[str, Any] = {
            "max_line_size": limits.max_field_size,
            "max_field_size": limits.max_field_size,
            "max_headers": limits.max_headers,
            # Forward the body as received: a signature covers the bytes sent, not a decompression.
            "auto_decompress": False,
            "keepalive_timeout": _KEEPALIVE_TIMEOUT_S,
            # Keep reading an unread body after an early answer (413, 408) at most this long, so
            # that the client sees the answer rather than a reset.
            "lingering_time": min(10.0, limits.request_timeout_s),
            "access_log": None,
        }
        runner = SidecarRunner(
            self._app,
            request_timeout_s=limits.request_timeout_s,
            connection_options=options,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(runner, self._sock)
        else:
            site = web.TCPSite(runner, self._host, self._requested_port, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        """Stop listening, let in-flight requests finish (up to the shutdown timeout), close.
        Idempotent."""
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()
        elif self._sock is not None:
            self._sock.close()

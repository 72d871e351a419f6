"""Serving the sidecar: :func:`start_sidecar` / :func:`stop_sidecar`, and :func:`run_sidecar`, the
body of ``msgbridge sidecar`` (the sidecar alone, forwarding to a core over gRPC)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import grpc
from aiohttp import web

from ._app import SIDECAR_LIMITS, build_sidecar_app
from ._connection import SidecarRunner
from ._forward import GrpcIngestForwarder

__all__ = ["run_sidecar", "split_host_port", "start_sidecar", "stop_sidecar"]

logger = logging.getLogger(__name__)

# An idle keep-alive connection is closed after this long (aiohttp's own default is an hour).
_KEEPALIVE_TIMEOUT_S = 75.0


async def start_sidecar(
    app: web.Application, host: str, port: int, *, shutdown_timeout_s: float = 10.0
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` (from :func:`build_sidecar_app`) on ``host:port``; port 0 picks a free one.

    Returns the runner (for :func:`stop_sidecar`) and the port bound. ``OSError`` when the address
    cannot be bound.
    """
    try:
        limits = app[SIDECAR_LIMITS]
    except KeyError:
        raise TypeError("start_sidecar serves an application from build_sidecar_app") from None
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
        app,
        request_timeout_s=limits.request_timeout_s,
        connection_options=options,
        shutdown_timeout=shutdown_timeout_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, int(bound)


async def stop_sidecar(runner: web.AppRunner) -> None:
    """Stop listening, let in-flight requests finish (up to the shutdown timeout), close."""
    await runner.cleanup()


def split_host_port(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:8080"`` for IPv6) as ``(host, port)``; ``ValueError`` if not."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected HOST:PORT, not {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


async def run_sidecar(
    *,
    core: str,
    http_listen: str,
    public_url: str,
    max_body: int,
    request_timeout_s: float,
    core_token: str | None = None,
    core_credentials: grpc.ChannelCredentials | None = None,
    core_timeout_s: float = 10.0,
) -> None:
    """``msgbridge sidecar``: serve webhooks, forwarding them to the core at ``core``, until
    SIGINT or SIGTERM."""
    host, port = split_host_port(http_listen)
    forwarder = GrpcIngestForwarder(
        core, credentials=core_credentials, token=core_token, timeout_s=core_timeout_s
    )
    try:
        app = build_sidecar_app(
            forwarder,
            public_url=public_url,
            max_body=max_body,
            request_timeout_s=request_timeout_s,
            readiness=forwarder.ready,
        )
        runner, bound = await start_sidecar(app, host, port)
        logger.info("webhook sidecar serving", extra={"host": host, "port": bound})
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        logger.info("webhook sidecar shutting down")
        await stop_sidecar(runner)
    finally:
        await forwarder.aclose()

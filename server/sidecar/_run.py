""":func:`run_sidecar`, the body of ``msgbridge sidecar`` (the sidecar alone, forwarding to a core
over gRPC), and :func:`split_host_port`, reading its listen address."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

import grpc

from ._app import build_sidecar_app
from ._forward import GrpcIngestForwarder
from ._media import GrpcMediaReader
from ._server import SidecarServer

__all__ = ["run_sidecar", "split_host_port"]

logger = logging.getLogger(__name__)


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
    cores: Sequence[str],
    http_listen: str,
    public_url: str,
    max_body: int,
    request_timeout_s: float,
    core_token: str | None = None,
    core_credentials: grpc.ChannelCredentials | None = None,
    core_timeout_s: float = 10.0,
) -> None:
    """``msgbridge sidecar``: serve webhooks, forwarding them to the first of ``cores`` that
    answers, until SIGINT or SIGTERM."""
    host, port = split_host_port(http_listen)
    forwarder = GrpcIngestForwarder(
        cores, credentials=core_credentials, token=core_token, timeout_s=core_timeout_s
    )
    try:
        app = build_sidecar_app(
            forwarder,
            public_url=public_url,
            max_body=max_body,
            request_timeout_s=request_timeout_s,
            readiness=forwarder.ready,
            media=GrpcMediaReader(forwarder),
        )
        server = SidecarServer(app, host, port)
        await server.start()
        logger.info("webhook sidecar serving", extra={"host": host, "port": server.port})
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
        await server.aclose()
    finally:
        await forwarder.aclose()

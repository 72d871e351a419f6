"""The metrics listener: ``GET /metrics`` in Prometheus' text format, on its own address
(``metrics_listen``; docs/operations.md, "Metrics").

An aiohttp app on the service's event loop rather than prometheus_client's HTTP server in a
thread: the queue and consumer gauges are read from the store at each scrape, and the store is
asynchronous — a handler on the loop awaits those reads, a thread could not. It is also one
server fewer to stop, and aiohttp already serves the sidecar.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ._metrics import PrometheusMetrics

__all__ = ["MetricsServer", "StoreGauges", "build_metrics_app"]

logger = logging.getLogger(__name__)

# A scrape waits this long at most for the store's gauges; they keep their last values then.
_READ_TIMEOUT_S = 5.0


class _GaugeSource(Protocol):
    """What the scrape reads from the store (server/store's Store has these)."""

    async def queue_depth(self) -> int: ...

    async def next_due_at(self) -> datetime | None: ...

    async def latest_cursor(self) -> int: ...

    async def consumer_frontiers(self) -> dict[str, int]: ...


class StoreGauges:
    """Sets the gauges the store knows — the delivery queue's depth and the age of its most
    overdue message (docs/delivery.md), the durable consumers' lag — at each scrape: a few
    indexed reads every scrape interval, nothing on the send or ingest paths."""

    def __init__(self, store: _GaugeSource, metrics: PrometheusMetrics) -> None:
        self._store = store
        self._metrics = metrics

    async def read(self) -> None:
        depth = await self._store.queue_depth()
        due = await self._store.next_due_at()
        age = (datetime.now(UTC) - due).total_seconds() if due is not None else 0.0
        self._metrics.queue(depth, max(0.0, age))
        frontiers = await self._store.consumer_frontiers()
        latest = await self._store.latest_cursor()
        lag = max((latest - f for f in frontiers.values()), default=0)
        self._metrics.consumers(len(frontiers), max(0, lag))


def build_metrics_app(metrics: PrometheusMetrics, gauges: StoreGauges | None) -> web.Application:
    """The app: ``/metrics`` only."""

    async def scrape(request: web.Request) -> web.Response:
        if gauges is not None:
            try:
                await asyncio.wait_for(gauges.read(), _READ_TIMEOUT_S)
            except Exception:  # the other metrics are still worth serving
                logger.warning("reading the store's gauges for a scrape failed", exc_info=True)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


class MetricsServer:
    """Serves the metrics app on a socket bound beforehand (server/_listen.py)."""

    def __init__(self, app: web.Application, sock: socket.socket) -> None:
        self._app = app
        self._sock = sock
        self._runner: web.AppRunner | None = None
        self.port = int(sock.getsockname()[1])

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        logger.info("metrics serving", extra={"port": self.port})

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        else:
            self._sock.close()  # built, never started

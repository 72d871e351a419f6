"""One service process, from its settings to its exit status: ``msgbridge serve`` itself, and
each worker of ``msgbridge serve --workers N`` (server/_supervisor.py).

    traces (off unless OTEL_* asks) → two malloc arenas → run the service on its event loop
    until SIGINT or SIGTERM → 0; a setting it cannot use → 2; an address or file it cannot
    open → 1 (one line on stderr, ``msgbridge serve: …``)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._process import run_process
from .app import Companion, GatewayServer, run
from .config import Settings, SettingsError

__all__ = ["serve_process"]


def serve_process(
    settings: Settings,
    *,
    companion: Callable[[GatewayServer], Awaitable[Companion]] | None = None,
    shared_ports: bool = False,
    on_serving: Callable[[GatewayServer], None] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM (:func:`server.app.run`, with its arguments); the process's
    exit status (:func:`server._process.run_process`). Logging is configured by the caller."""
    return run_process(
        "serve",
        settings.event_loop,
        lambda: run(
            settings, companion=companion, shared_ports=shared_ports, on_serving=on_serving
        ),
        refusals=(SettingsError,),
    )

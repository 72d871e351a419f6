"""One service process, from its settings to its exit status: ``msgbridge serve`` itself, and
each worker of ``msgbridge serve --workers N`` (server/_supervisor.py).

    traces (off unless OTEL_* asks) → two malloc arenas → run the service on its event loop
    until SIGINT or SIGTERM → 0; a setting it cannot use → 2; an address or file it cannot
    open → 1 (one line on stderr, ``msgbridge serve: …``)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable

from ._event_loop import run_on
from ._memory import limit_malloc_arenas
from .app import Companion, GatewayServer, run
from .config import Settings, SettingsError
from .tracing import TracingError, configure_tracing

__all__ = ["serve_process"]


def serve_process(
    settings: Settings,
    *,
    companion: Callable[[GatewayServer], Awaitable[Companion]] | None = None,
    shared_ports: bool = False,
    on_serving: Callable[[GatewayServer], None] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM (:func:`server.app.run`, with its arguments); the process's
    exit status. Logging is configured by the caller."""
    try:
        tracing = configure_tracing(os.environ)  # off unless OTEL_* asks (docs/operations.md)
    except TracingError as exc:
        print(f"msgbridge serve: {exc}", file=sys.stderr)
        return 2
    limit_malloc_arenas()
    try:
        serving = run(
            settings, companion=companion, shared_ports=shared_ports, on_serving=on_serving
        )
        run_on(settings.event_loop, serving)
    except SettingsError as exc:
        print(f"msgbridge serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"msgbridge serve: {exc}", file=sys.stderr)
        return 1
    finally:
        if tracing is not None:
            tracing.shutdown()  # exports the spans still waiting
    return 0

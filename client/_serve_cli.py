"""``msgbridge serve``: run the service (gRPC API, and the webhook sidecar in-process)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ._arguments import HelpFormatter

__all__ = ["add_parsers"]


def add_parsers(subparsers: Any) -> None:
    from server.config import add_settings_arguments

    serve = subparsers.add_parser(
        "serve",
        help="run the service",
        description="Run msgbridge: the gRPC API and, in-process, the webhook sidecar. Every "
        "setting can also come from an MSGBRIDGE_* environment variable or the --config file.",
        formatter_class=HelpFormatter,
    )
    add_settings_arguments(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from server._event_loop import run_on
    from server._logging import configure_logging
    from server._memory import limit_malloc_arenas
    from server.app import run
    from server.config import SettingsError, load_settings
    from server.tracing import TracingError, configure_tracing

    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"msgbridge serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        tracing = configure_tracing(os.environ)  # off unless OTEL_* asks (docs/operations.md)
    except TracingError as exc:
        print(f"msgbridge serve: {exc}", file=sys.stderr)
        return 2
    limit_malloc_arenas()
    companion = None
    if settings.demo:
        from server.demo import start_demo

        companion = start_demo
    try:
        run_on(settings.event_loop, run(settings, companion=companion))
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

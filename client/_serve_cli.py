"""``msgbridge serve``: run the service (gRPC API, and the webhook sidecar in-process)."""

from __future__ import annotations

import argparse
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
    from server._logging import configure_logging
    from server._serving import serve_process
    from server.config import SettingsError, load_settings

    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"msgbridge serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from server._supervisor import supervise

        try:
            return supervise(settings)
        except OSError as exc:  # a port is taken: refused before any worker starts
            print(f"msgbridge serve: {exc}", file=sys.stderr)
            return 1
    companion = None
    if settings.demo:
        from server.demo import start_demo

        companion = start_demo
    return serve_process(settings, companion=companion)

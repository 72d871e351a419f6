"""The ``msgbridge`` command line.

Each group of subcommands lives in its own module and registers itself on the parser here:
``_check_cli`` (the integration author's linter, no server needed) and ``_service_cli`` (the
service's commands: serve, register, enable, send …). A subcommand's handler returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgbridge",
        description="Send and receive SMS/MMS through any provider described by a JSON definition.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import _check_cli

    _check_cli.add_parsers(subparsers)
    try:
        from . import _service_cli
    except ImportError:  # pragma: no cover - only while the service commands are being built
        pass
    else:
        _service_cli.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

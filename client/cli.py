"""The ``msgbridge`` command line.

Each group of subcommands lives in its own module and registers itself on the parser here:
``_serve_cli`` (``serve``) and ``_sidecar_cli`` (``sidecar``) run the service; ``_service_cli``
talks to a running service (register, enable, send …), and ``_media_cli`` (``media``) to its
files; ``_check_cli`` is the integration author's linter (no server needed); ``_test_cli`` runs
a definition's cases (``_cases``), offline (``_offline_cases``) or through a temporary gateway
(``_live_cases``). A subcommand's handler returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

# Command groups, in the order `--help` lists them.
_COMMAND_MODULES = (
    "._serve_cli",
    "._sidecar_cli",
    "._service_cli",
    "._media_cli",
    "._check_cli",
    "._test_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgbridge",
        description="Send and receive SMS/MMS through any provider described by a JSON definition.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMAND_MODULES:
        importlib.import_module(module, __package__).add_parsers(subparsers)
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

"""``msgbridge test``'s arguments (running the cases: ``_run_cases``, imported with the engine
only when the command runs, so that ``msgbridge --help`` and the service commands start without
loading them)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(subparsers: Any) -> None:
    test = subparsers.add_parser(
        "test",
        help="run a definition's cases (no server needed; --live starts one)",
        description="Run a definition's cases: install.json, send/, webhooks/ and subscribe/ "
        "in the case folder (default: the folder beside DEFINITION named after it, "
        "bulksms.json -> bulksms.cases/). Offline, each case goes through the engine; with "
        "--live, through a temporary gateway (SQLite in a temporary folder) and the fake "
        "provider on 127.0.0.1. Exit status: 0 every case passed, 1 a case failed or there "
        "is none, 2 the definition or a case file cannot be read.",
    )
    test.add_argument("definition", metavar="DEFINITION", help="the definition file")
    test.add_argument(
        "--cases",
        metavar="DIR|FILE",
        help="the case folder, or one case file in it (default: DEFINITION's stem + .cases/)",
    )
    test.add_argument(
        "--live",
        action="store_true",
        help="run the cases through a temporary gateway and the fake provider over real sockets",
    )
    test.add_argument(
        "--json", action="store_true", help="print the summary and results as one JSON line"
    )
    test.set_defaults(handler=_test)


def _test(args: argparse.Namespace) -> int:
    from ._run_cases import run_cases  # the engine loads for this command only

    return run_cases(args)

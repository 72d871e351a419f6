"""``python -m tests.adversarial [--only SUBSTRING] [--list]``: the adversarial suite; exit 1 when
a case failed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from . import all_cases
from ._monitor import MIB
from ._runner import run_cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.adversarial", description=__doc__)
    parser.add_argument(
        "--only", action="append", metavar="SUBSTRING",
        help="run only the cases whose name contains it (repeatable)",
    )  # fmt: skip
    parser.add_argument("--list", action="store_true", help="print the cases' names and stop")
    args = parser.parse_args(argv)
    cases = [
        case for case in all_cases()
        if not args.only or any(part in case.name for part in args.only)
    ]  # fmt: skip
    if not cases:
        parser.error(f"no case name contains {' or '.join(map(repr, args.only))}")
    if args.list:
        for case in cases:
            print(case.name)
        return 0

    def say(line: str) -> None:
        print(line, flush=True)

    summary = asyncio.run(run_cases(cases, say=say))
    say(
        f"ran in {summary.seconds:.0f} s; peak resident memory {summary.peak_rss / MIB:.0f} MB; "
        f"longest unrelated call {summary.max_probe_ms:.0f} ms"
    )
    say(summary.line())
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

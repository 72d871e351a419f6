"""``msgbridge test DEFINITION [--cases DIR|FILE] [--live] [--json]``: run a definition's cases
(docs/format.md, "Proving a definition").

Offline (the default), each case goes through the engine and the send, ingest and Subscribe
paths' pure functions (``_offline_cases``); with ``--live``, through a temporary gateway and the
fake provider over real sockets (``_live_cases``). One line per case, then ``N passed, M
failed``.
Exit codes: 0 every case passed, 1 a case failed (or there is none), 2 the definition or the
case set cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from server.engine import DefinitionError, load_definition

from ._cases import CaseResult, CasesUnreadable, default_cases, load_case_set

__all__ = ["run_cases"]

OK, FAILED, UNREADABLE = 0, 1, 2


def run_cases(args: argparse.Namespace) -> int:
    """``msgbridge test``'s handler (its arguments: ``_test_cli``)."""
    file = Path(args.definition)
    try:
        data = file.read_bytes()
    except OSError as exc:
        return _unreadable(f"{file}: cannot read: {exc.strerror or type(exc).__name__}")
    try:
        definition = load_definition(data)
    except DefinitionError as exc:
        for problem in exc.problems:
            print(f"{file}:{problem.pointer}: {problem.message}", file=sys.stderr)
        print(f"{file}: does not load (msgbridge check {file} says why)", file=sys.stderr)
        return UNREADABLE
    cases_path = Path(args.cases) if args.cases else default_cases(file)
    try:
        cases = load_case_set(cases_path)
    except CasesUnreadable as exc:
        hint = "" if args.cases else " (give --cases DIR)"
        return _unreadable(f"{exc}{hint}")
    doc = json.loads(data.decode("utf-8-sig"))
    if args.live:
        from ._live_cases import run_live  # starts a gateway: imported only when asked

        results = run_live(data.decode("utf-8-sig"), doc, definition, cases)
    else:
        from ._offline_cases import run_offline

        results = run_offline(doc, definition, cases)
    return _print(file, cases.folder, results, live=args.live, as_json=args.json)


def _unreadable(message: str) -> int:
    print(f"msgbridge test: error: {message}", file=sys.stderr)
    return UNREADABLE


def _print(
    file: Path, folder: Path, results: list[CaseResult], *, live: bool, as_json: bool
) -> int:
    passed = sum(r.passed for r in results)
    skipped = sum(r.skipped is not None for r in results)
    failed = len(results) - passed - skipped
    status = OK if results and not failed else FAILED
    if as_json:
        summary = {
            "definition": str(file),
            "cases": str(folder),
            "live": live,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "results": [r.as_json() for r in results],
        }
        print(json.dumps(summary, ensure_ascii=False))  # one object on one line: JSON Lines
        return status
    for result in results:
        print(_line(result))
    if not results:
        print(f"{folder}: no cases (send/, webhooks/ or subscribe/ *.json)")
    counts = f"{passed} passed, {failed} failed"
    print(counts + (f", {skipped} skipped" if skipped else ""))
    return status


def _line(result: CaseResult) -> str:
    if result.skipped is not None:
        return f"skip {result.name}: {result.skipped}"
    lines = [f"{'ok  ' if result.passed else 'FAIL'} {result.name}"]
    lines.extend(f"     {problem}" for problem in result.problems)
    lines.extend(f"     note: {note}" for note in result.notes)
    return "\n".join(lines)

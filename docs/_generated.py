"""What the scripts that write generated pages share: write the page, or (``--check``) exit 1
when the page differs from what they would write, so that a test keeps it from drifting."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(out: Path, text: str, argv: list[str], *, script: str) -> int:
    """Write ``text`` to ``out``; with ``--check`` in ``argv`` compare instead (0 when equal)."""
    if "--check" in argv:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(
                f"{out.relative_to(out.parents[1])} is out of date: run {script}", file=sys.stderr
            )
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    return 0

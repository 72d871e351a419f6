"""argparse types for the command line's numeric options.

Each value is checked against the range of the protobuf field or setting it feeds (an int64
cursor, an int32 page size, a deadline gRPC can represent), so that a value out of range is a
usage error — argparse's message and exit 2 — rather than a traceback from the protobuf runtime
or a call that fails for a reason the user cannot see.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Callable

__all__ = ["INT32_MAX", "INT64_MAX", "MAX_SECONDS", "HelpFormatter", "integer", "seconds"]

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# A year. Far larger deadlines overflow in grpc's arithmetic and fail at once as
# DEADLINE_EXCEEDED, which would look like a slow server.
MAX_SECONDS = 365 * 24 * 3600.0


def integer(what: str, *, low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``; ``what`` names it in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a whole number, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}, got {text}")
        return value

    return parse


def seconds(what: str, *, high: float = MAX_SECONDS) -> Callable[[str], float]:
    """A finite number of seconds, more than 0 and at most ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: seconds expected, got {text!r}") from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(
                f"{what} must be more than 0 and at most {high:g} seconds, got {text}"
            )
        return value

    return parse


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that a line never breaks inside a hyphenated word, so that a flag or
    a placeholder such as ``<data-dir>/secret.key`` reads (and greps) as written."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

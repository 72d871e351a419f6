"""Signed timestamps and the replay window around ``now``."""

from __future__ import annotations

import re

from ._failed import WebhookAuthFailed

__all__ = ["check_window", "parse_timestamp"]

_NUMBER = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")
# Unix seconds stay below this until the year 5138; a larger value is taken as milliseconds.
_MILLISECONDS_FROM = 1e11


def parse_timestamp(value: str) -> float:
    """Unix seconds from a header value: digits with an optional fraction; milliseconds when
    the number is too large to be seconds (some providers send them)."""
    if not _NUMBER.fullmatch(value):
        raise WebhookAuthFailed("the timestamp is not a number of seconds")
    seconds = float(value)
    return seconds / 1000 if seconds >= _MILLISECONDS_FROM else seconds


def check_window(seconds: float, *, now: float, tolerance: float) -> None:
    """Refuse a timestamp more than ``tolerance`` seconds before or after ``now``."""
    if not abs(now - seconds) <= tolerance:
        raise WebhookAuthFailed("the timestamp is outside the allowed window")

"""Phone numbers as the gateway stores and compares them (docs/format.md, "Numbers").

A number that ``phonenumbers`` can parse (with the installation's default region for national
formats) is stored in E.164. Anything else — short codes, alphanumeric sender ids, a national
number with no default region — is kept as given and compared by its digits (or, with none, by its
case-folded text).
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

__all__ = ["normalize_number"]


@lru_cache(maxsize=65536)
def normalize_number(number: str, default_region: str | None = None) -> str:
    """The stored form of ``number``: E.164 when it parses as a possible number, else its key."""
    text = number.strip()
    if not text:
        return ""
    region = (default_region or "").upper() or None
    candidate = text
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and len(digits) >= 11 and _valid("+" + digits, region is None):
        # "15551234567": international digits written without the plus sign.
        candidate = "+" + digits
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and phonenumbers.is_possible_number(parsed) and len(digits) > 6:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return digits or text.casefold()


def _valid(international: str, possible_is_enough: bool) -> bool:
    try:
        parsed = phonenumbers.parse(international, None)
    except phonenumbers.NumberParseException:
        return False
    if possible_is_enough:
        return bool(phonenumbers.is_possible_number(parsed))
    return bool(phonenumbers.is_valid_number(parsed))

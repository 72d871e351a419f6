"""Addresses as the gateway stores and compares them (docs/format.md, "Numbers").

An address is *phone-shaped* when, after an optional URI scheme (``tel:``, ``whatsapp:``), it is
written only with digits, whitespace and phone punctuation (``+ - . ( ) /`` and their Unicode
dashes and full-width forms). A phone-shaped address that ``phonenumbers`` can parse as a possible
number (with the installation's default region for national formats) is stored in E.164; any
other phone-shaped one — a short code, a national number with no default region — by its digits.
Anything else — an alphanumeric sender id such as ``A0PNCHHK2`` — is a *name*, kept verbatim:
trimmed, case preserved. Keying a name by its digits made different names collide (``A0PNCHHK2``
and ``B0PNCHHK2`` are both ``02``); the names are what the provider shows and sends back, so their
exact text is the only safe key. Migration ``0005_verbatim_addresses`` re-keys stored names the
same way, so keep the two in step.

(ext) A definition whose ``addresses`` are ``id`` or ``username`` (docs/format.md, "Addresses")
uses no phone numbers at all: a Telegram chat id (``-1001234567890``) or a ten-digit user id is
not a number to normalise (the first would lose its sign, the second become E.164 under a
default region). :func:`normalize_address` keeps such addresses verbatim, trimmed.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers

__all__ = ["as_stored", "is_phone_shaped", "normalize_address", "normalize_number"]

# A URI scheme before the number (RFC 3986: a letter, then letters, digits, "+", "-", ".").
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_PUNCTUATION = frozenset("+-.()/＋－．／（）")
# Written as a stored number is: "+", a country code (no leading 0), at most 15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def as_stored(text: str) -> str | None:
    """``text`` when it is written as a stored phone number is (E.164, nothing around it), to be
    compared with stored numbers as it is; else None (normalise it first)."""
    return text if _E164.fullmatch(text) else None


def normalize_number(number: str, default_region: str | None = None) -> str:
    """The stored form of ``number``: E.164 when it parses as a possible number, its digits for
    another phone-shaped address, else the address itself, trimmed (a name)."""
    text = number.strip()
    # An international number is read without the region: one cache entry, whoever asks.
    return _normalized(text, None if text.startswith("+") else default_region)


@lru_cache(maxsize=65536)
def _normalized(text: str, default_region: str | None) -> str:
    if not text:
        return ""
    if not is_phone_shaped(text):
        return text
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


def normalize_address(text: str, default_region: str | None, addresses: str) -> str:
    """The stored form of an address of a definition whose ``addresses`` is ``addresses``:
    :func:`normalize_number` for phone numbers, else the address itself, trimmed (docs/format.md,
    "Addresses")."""
    if addresses == "phone":
        return normalize_number(text, default_region)
    return text.strip()


def is_phone_shaped(text: str) -> bool:
    """Whether ``text`` (trimmed) is written as a phone number: an optional URI scheme, then only
    digits, whitespace and phone punctuation. Anything with a letter after the scheme is a name."""
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme else text
    return all(_phone_char(ch) for ch in rest)


def _phone_char(ch: str) -> bool:
    return ch.isdigit() or ch.isspace() or ch in _PUNCTUATION or unicodedata.category(ch) == "Pd"


def _valid(international: str, possible_is_enough: bool) -> bool:
    try:
        parsed = phonenumbers.parse(international, None)
    except phonenumbers.NumberParseException:
        return False
    if possible_is_enough:
        return bool(phonenumbers.is_possible_number(parsed))
    return bool(phonenumbers.is_valid_number(parsed))

"""How ``$from$``, ``$to$`` and ``$number$`` are written in requests: ``number_format``
(docs/format.md, "The file").

``as_given`` leaves the caller's text alone. The other formats parse the number with
``phonenumbers`` (a number without ``+`` needs the installation's default region) and write it as
E.164 (``+15551234567``), E.164 without the plus (``15551234567``) or in the national format's
digits (``5551234567``; ``07700900123`` in the UK, trunk prefix included, as dialled at home).
Anything that is not a possible phone number — short codes, alphanumeric sender ids, a national
number with no region — is sent exactly as given: the provider judges it, the gateway never refuses.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from ._model import NumberFormat

__all__ = ["NUMBER_VARIABLES", "format_number"]

#: The variables number_format applies to.
NUMBER_VARIABLES = ("from", "to", "number")

# Only digits and the usual separators: letters would be read as a vanity number ("1-800-FLOWERS"),
# which is never what an alphanumeric sender id ("ACME") means.
_PHONE_TEXT = re.compile(r"\+?[0-9 ().\-/]{3,40}")
_FORMATS = {
    "e164": lambda n: phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164),
    "e164_digits": lambda n: phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)[1:],
    "national": lambda n: "".join(
        c
        for c in phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.NATIONAL)
        if c.isdigit()
    ),
}


@lru_cache(maxsize=8192)
def format_number(text: str, number_format: NumberFormat, default_region: str | None = None) -> str:
    """``text`` written in ``number_format``, or ``text`` unchanged when it cannot be parsed."""
    write = _FORMATS.get(number_format)
    if write is None or _PHONE_TEXT.fullmatch(text) is None:
        return text
    region = None if text.startswith("+") else default_region
    if region is None and not text.startswith("+"):
        return text
    try:
        parsed = phonenumbers.parse(text, region.upper() if region else None)
        if not phonenumbers.is_possible_number(parsed):
            return text
        result: str = write(parsed)
    except Exception:  # phonenumbers' own errors; a number it cannot read is sent as given
        return text
    return result

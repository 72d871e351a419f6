"""The address rule (docs/format.md, "Numbers"): phone-shaped addresses are E.164 when possible,
else their digits; anything else is a name, kept trimmed with its case."""

from __future__ import annotations

import phonenumbers
import pytest

from server.core import normalize_number
from server.core._numbers import _normalized, as_stored, is_phone_shaped


@pytest.mark.parametrize(
    ("given", "region", "stored"),
    [
        # Alphanumeric sender ids: verbatim, never their digits ("02").
        ("A0PNCHHK2", None, "A0PNCHHK2"),
        ("B0PNCHHK2", "GB", "B0PNCHHK2"),
        ("MyShop", None, "MyShop"),
        ("myshop", None, "myshop"),  # case is kept: names compare exactly
        ("INFO1234567", "US", "INFO1234567"),  # letters make a name even with 7+ digits
        ("My Shop 9", None, "My Shop 9"),
        ("Zürich", None, "Zürich"),
        ("whatsapp:MyShop", None, "whatsapp:MyShop"),
        # Short codes: their digits.
        ("12345", None, "12345"),
        ("12345", "US", "12345"),
        ("123-45", None, "12345"),
        # E.164 with and without "+".
        ("+15551234567", None, "+15551234567"),
        ("+1 (555) 123-4567", "GB", "+15551234567"),
        ("15551234567", None, "+15551234567"),
        ("447911123456", None, "+447911123456"),
        # National formats with a default region; without one, digits.
        ("(555) 123-4567", "US", "+15551234567"),
        ("555.123.4567", "us", "+15551234567"),
        ("07911 123456", "GB", "+447911123456"),
        ("07911 123456", None, "07911123456"),
        # A URI scheme before a phone number does not make a name.
        ("tel:+1-555-123-4567", None, "+15551234567"),
        ("whatsapp:+14155238886", None, "+14155238886"),
        # Full-width and Unicode dashes are phone punctuation.
        ("＋1 555‐123‐4567", None, "+15551234567"),
        # Whitespace around anything is trimmed; inside a name it is kept.
        ("  A0PNCHHK2\t", None, "A0PNCHHK2"),
        (" \u00a0+15551234567\n", None, "+15551234567"),
        ("   ", None, ""),
        ("", "US", ""),
    ],
)
def test_the_stored_form(given: str, region: str | None, stored: str) -> None:
    assert normalize_number(given, region) == stored


def test_names_with_the_same_digits_stay_apart() -> None:
    assert normalize_number("A0PNCHHK2") != normalize_number("B0PNCHHK2")


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("+1 (555) 123-4567", True),
        ("12345", True),
        ("tel:5551234", True),
        ("x-sms.2+:555", True),  # any RFC 3986 scheme
        ("A0PNCHHK2", False),
        ("555 123 4567 ext 89", False),
        ("1-800-FLOWERS", False),
        ("*100#", False),
        (":555", False),  # not a scheme
    ],
)
def test_phone_shaped(text: str, phone: bool) -> None:
    assert is_phone_shaped(text) is phone


def test_a_long_address_is_linear_and_kept() -> None:
    name = "A" * 100_000 + "1"
    assert normalize_number(name) == name
    digits = "1" * 100_000
    assert normalize_number(digits) == digits  # too long to be a phone number: its digits


def _example_numbers() -> list[str]:
    """An example number of each kind phonenumbers knows, in every region, in E.164."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    return found


def test_a_stored_number_normalises_to_itself_so_one_written_as_stored_needs_no_parsing() -> None:
    """What lets routing compare a number written as stored (as_stored) without parsing it."""
    numbers = _example_numbers()
    assert len(numbers) > 500
    for region in (None, "US", "GB", "DE"):
        for number in numbers:
            stored = normalize_number(number, region)
            assert normalize_number(stored, region) == stored
            if as_stored(stored) is not None:
                assert stored == number


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("+15551234567", "+15551234567"),
        ("+447911123456", "+447911123456"),
        ("+1 555 123 4567", None),
        (" +15551234567", None),
        ("15551234567", None),
        ("+0123456789", None),
        ("+1234567890123456", None),
        ("A0PNCHHK2", None),
    ],
)
def test_only_a_number_written_as_stored_is_compared_as_it_is(
    text: str, stored: str | None
) -> None:
    assert as_stored(text) == stored


def test_an_international_number_is_parsed_once_whatever_the_region_asked() -> None:
    _normalized.cache_clear()
    for region in (None, "US", "GB", "de"):
        assert normalize_number("+15557654321", region) == "+15557654321"
    assert _normalized.cache_info().misses == 1
    # A national number depends on its region: one entry per region.
    for region in ("US", "GB"):
        normalize_number("5557654321", region)
    assert _normalized.cache_info().misses == 3

"""Hostile XML webhook bodies (docs/format.md, "XML bodies"): entity expansion, external
entities, deep nesting, huge attribute and element counts.

Every entity trick needs a DTD, and the hardened parser refuses a DTD before reading any of it:
such a body is answered 400 at once, whatever it would expand to. Nesting and counts are cut off
where they pass the limits (800 levels; 100,000 elements and attributes) — 400 — while a large
body within them is read off the event loop and kept as unmatched (200). Never 5xx.
"""

from __future__ import annotations

from ._case import Cases
from ._checks import HOSTILE_BODY, REFUSED_BODY, post_status
from ._env import Env

__all__ = ["CASES", "billion_laughs", "quadratic_blowup", "wide_attributes"]

cases = Cases("xml")
CASES = cases.all

XML = "application/xml"
_DTD_REFUSED = (400,)


def billion_laughs(levels: int = 10, fan_out: int = 10) -> bytes:
    """Entity ``l{levels}`` expands to ``fan_out ** levels`` copies of "lol" (10**10: 30 GB)."""
    declarations = ['<!ENTITY l0 "lol">']
    for level in range(1, levels + 1):
        declarations.append(f'<!ENTITY l{level} "{f"&l{level - 1};" * fan_out}">')
    dtd = "".join(declarations)
    return f'<?xml version="1.0"?><!DOCTYPE r [{dtd}]><r>&l{levels};</r>'.encode()


def quadratic_blowup(entity_size: int = 100_000, references: int = 100_000) -> bytes:
    """One flat entity of ``entity_size`` characters referenced ``references`` times: no
    nesting for a depth limit to catch, 10 GB once expanded."""
    return (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "{"x" * entity_size}">]><r>'
        + "&a;" * references
        + "</r>"
    ).encode()


def wide_attributes(per_element: int, elements: int = 1) -> bytes:
    """``elements`` elements with ``per_element`` distinct attributes each (short names)."""
    names = [_name(i) for i in range(per_element)]
    element = "<e " + " ".join(f'{name}=""' for name in names) + "/>"
    return ("<r>" + element * elements + "</r>").encode()


def _name(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    i += 1
    while i:
        i, digit = divmod(i - 1, len(letters))
        out = letters[digit] + out
    return out


def _xml_case(
    name: str, body: bytes, wanted: tuple[int, ...], content_type: str | None = XML
) -> None:
    async def run(env: Env) -> str:
        return await post_status(env, env.core_url(env.path()), body, content_type, wanted)

    cases.add(name, run)


# --- entities: refused with the DTD that declares them ----------------------------------------

_xml_case("billion-laughs", billion_laughs(), _DTD_REFUSED)
_xml_case("billion-laughs-text-xml", billion_laughs(), _DTD_REFUSED, "text/xml; charset=utf-8")
_xml_case("quadratic-blowup", quadratic_blowup(), _DTD_REFUSED)
_xml_case(
    "external-entity-file",
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    _DTD_REFUSED,
)
_xml_case(
    "external-entity-http",
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]><r>&x;</r>',
    _DTD_REFUSED,
)
_xml_case(
    "parameter-entity",
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><r/>',
    _DTD_REFUSED,
)
_xml_case("external-dtd", b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/r.dtd"><r/>', _DTD_REFUSED)
_xml_case("undeclared-entity", b"<r>" + b"&nope;" * 100_000 + b"</r>", HOSTILE_BODY)
# Without a Content-Type a body is only guessed to be XML: refused as XML, it is read as a form.
_xml_case("billion-laughs-no-content-type", billion_laughs(), REFUSED_BODY, None)

# --- nesting and counts -------------------------------------------------------------------------

_xml_case("100000-deep", b"<a>" * 100_000 + b"</a>" * 100_000, HOSTILE_BODY)
_xml_case("100000-deep-unclosed", b"<a>" * 300_000, HOSTILE_BODY)
_xml_case("200000-elements", b"<r>" + b"<a/>" * 200_000 + b"</r>", HOSTILE_BODY)
_xml_case("120000-attributes", wide_attributes(40_000, 3), HOSTILE_BODY)
_xml_case("90000-attributes-on-one-element", wide_attributes(90_000), REFUSED_BODY)
_xml_case(
    "900kb-within-the-limits",
    b"<r>" + b"<m><t>xxxxxxxx</t></m>" * 40_000 + b"</r>",
    REFUSED_BODY,
)
_xml_case("900kb-text", b"<r>" + b"&amp;" * 180_000 + b"</r>", REFUSED_BODY)
_xml_case("unknown-encoding", b'<?xml version="1.0" encoding="x-nope"?><r/>', HOSTILE_BODY)

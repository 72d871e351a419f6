"""The suite's hostile bodies are what their names say (a bomb that did not inflate to GBs, or a
part header without its encoded words, would make cases pass for nothing)."""

from __future__ import annotations

import re
import xml.parsers.expat
import zlib
from email.parser import BytesParser

from tests.adversarial._cases_xml import billion_laughs, quadratic_blowup, wide_attributes
from tests.adversarial._payloads import (
    BOUNDARY,
    MIB,
    SHORT_BOUNDARY,
    deflate_bomb,
    encoded_words_multipart,
    gzip_bomb,
    many_parts,
)


def _inflated_size(body: bytes, wbits: int) -> int:
    inflater = zlib.decompressobj(wbits)
    size = 0
    chunk = inflater.decompress(body, MIB)
    while chunk:
        size += len(chunk)
        chunk = inflater.decompress(inflater.unconsumed_tail, MIB)
    return size


# The bombs' checksums are not computed (a receiver that checks one has inflated it all): their
# deflate streams are inflated raw, between the 10-byte gzip header and 8-byte trailer, or the
# 2-byte zlib header and 4-byte trailer.


def test_a_gzip_bomb_inflates_to_its_size_from_a_thousandth_of_it() -> None:
    body = gzip_bomb(64)
    assert body.startswith(b"\x1f\x8b\x08")
    assert len(body) < 64 * MIB // 900
    assert _inflated_size(body[10:-8], -zlib.MAX_WBITS) == 64 * MIB


def test_a_deflate_bomb_is_zlib_wrapped_and_inflates_to_its_size() -> None:
    body = deflate_bomb(8)
    assert body[0] & 0x0F == zlib.DEFLATED and int.from_bytes(body[:2], "big") % 31 == 0
    assert _inflated_size(body[2:-4], -zlib.MAX_WBITS) == 8 * MIB


def test_the_encoded_words_part_carries_that_many_words() -> None:
    body = encoded_words_multipart(100)
    assert body.count(b"=?utf-8?q?a?=") == 100
    assert body.startswith(f"--{BOUNDARY}\r\n".encode())


def test_many_parts_is_the_issues_19000_parts_under_a_megabyte() -> None:
    body = many_parts(19_000, 1_000_000)
    assert 950_000 <= len(body) <= 1_000_000
    head = f"Content-Type: multipart/form-data; boundary={SHORT_BOUNDARY}\r\n\r\n".encode()
    message = BytesParser().parsebytes(head + body)
    assert len(message.get_payload()) == 19_000


def _expanded_size(document: bytes, entity: str) -> int:
    """What ``&entity;`` expands to, computed from the declarations (never expanded)."""
    declared = dict(re.findall(rb'<!ENTITY (\w+) "([^"]*)">', document))
    sizes: dict[bytes, int] = {}

    def size(name: bytes) -> int:
        if name not in sizes:
            value = declared[name]
            references = re.findall(rb"&(\w+);", value)
            literal = len(re.sub(rb"&\w+;", b"", value))
            sizes[name] = literal + sum(size(ref) for ref in references)
        return sizes[name]

    return size(entity.encode())


def test_the_xml_bombs_would_expand_to_gigabytes_under_a_megabyte() -> None:
    laughs = billion_laughs()
    assert len(laughs) < 2_000 and _expanded_size(laughs, "l10") == 3 * 10**10
    blowup = quadratic_blowup()
    assert len(blowup) < MIB and blowup.count(b"&a;") * _expanded_size(blowup, "a") == 10**10


def test_wide_attributes_has_that_many_distinct_attributes_per_element() -> None:
    counts: list[int] = []
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = lambda name, attributes: counts.append(len(attributes))
    body = wide_attributes(40_000, 3)
    assert len(body) < MIB
    parser.Parse(body, True)
    assert counts == [0, 40_000, 40_000, 40_000]

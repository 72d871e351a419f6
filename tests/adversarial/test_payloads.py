"""The suite's hostile bodies are what their names say (a bomb that did not inflate to GBs, or a
part header without its encoded words, would make cases pass for nothing)."""

from __future__ import annotations

import zlib
from email.parser import BytesParser

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

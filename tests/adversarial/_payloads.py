"""Hostile request bodies, built without the cost they impose on the receiver.

Decompression bombs are made from one deflate block of a MiB of zeros ended by a full flush:
the compressor's state is then reset and byte-aligned, so the block's bytes are the same each
time and a bomb of N MiB is that block N times (a few milliseconds instead of seconds of zlib).
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import cache

__all__ = [
    "MIB",
    "SHORT_BOUNDARY",
    "deep_json",
    "deflate_bomb",
    "encoded_words_multipart",
    "gzip_bomb",
    "many_parts",
    "multipart",
    "wide_json",
]

MIB = 1024 * 1024
BOUNDARY = "adversarial-boundary"


@cache
def _zero_block() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)


_FINAL_EMPTY_BLOCK = b"\x03\x00"  # a final fixed-Huffman block with no data


def _raw_deflate(mib: int) -> bytes:
    return _zero_block() * mib + _FINAL_EMPTY_BLOCK


def gzip_bomb(mib: int) -> bytes:
    """A gzip body that inflates to ``mib`` MiB of zeros (its trailer's CRC is not computed: a
    receiver that checks it has already inflated everything, which is the failure)."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + _raw_deflate(mib) + struct.pack("<II", 0, (mib * MIB) & 0xFFFFFFFF)


def deflate_bomb(mib: int) -> bytes:
    """An HTTP ``deflate`` (zlib-wrapped) body that inflates to ``mib`` MiB of zeros."""
    return b"\x78\xda" + _raw_deflate(mib) + b"\x00\x00\x00\x01"


def multipart(parts: list[tuple[bytes, bytes]], boundary: str = BOUNDARY) -> bytes:
    """``multipart/form-data`` with the given (Content-Disposition parameters, value) parts."""
    mark = b"--" + boundary.encode()
    out: list[bytes] = []
    for params, value in parts:
        out += (mark, b"\r\nContent-Disposition: form-data; ", params, b"\r\n\r\n", value, b"\r\n")
    out += (mark, b"--\r\n")
    return b"".join(out)


def encoded_words_multipart(words: int) -> bytes:
    """One part whose name is ``words`` RFC 2047 encoded words (issue/1)."""
    name = b" ".join([b"=?utf-8?q?a?="] * words)
    return multipart([(b'name="' + name + b'"', b"x")])


#: The boundary of :func:`many_parts`: one character, so that small parts stay small.
SHORT_BOUNDARY = "x"


def many_parts(count: int, size: int) -> bytes:
    """At most ``size`` bytes of multipart body (boundary :data:`SHORT_BOUNDARY`) in ``count``
    parts all named ``a`` (issue/2: 19,000 parts in a 1 MB body)."""
    overhead = len(multipart([(b'name="a"', b"")], SHORT_BOUNDARY)) - len(b"--x--\r\n")
    value = b"v" * max(0, (size - 8) // count - overhead)
    return multipart([(b'name="a"', value)] * count, SHORT_BOUNDARY)


def deep_json(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return ('{"a":' * depth + "1" + closer * depth).encode()
    return (opener * depth + closer * depth).encode()


def wide_json(fields: int) -> bytes:
    return json.dumps({f"k{i}": i for i in range(fields)}).encode()

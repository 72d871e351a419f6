"""Reading a ``multipart/form-data`` webhook body into fields, in linear time and bounded work.

The body is split into parts by ``python-multipart`` (the streaming parser Starlette uses), which
finds boundaries with ``bytes.find`` and refuses a part header line over a size or a part with
too many header lines before reading further. This module reads each part's few headers itself:
no header reaches the email package's header parser (the one behind ``policy.HTTP``), whose
RFC 2047 handling is quadratic in time and memory; the email helpers used here for parameters
and encoded words see one header line each, bounded in size and in encoded words
(docs/format.md, "Webhook bodies" lists the limits).

What a part becomes (as before):

- A part whose ``Content-Disposition`` has a ``name`` parameter is the field of that name (the
  disposition type itself is not checked). A part without one, and a part whose ``Content-Type``
  is ``multipart/*`` or ``message/*``, carries no field and is skipped.
- The name is a quoted string (backslash escapes undone) or a token; RFC 2231 forms
  (``name*=utf-8''n%C3%A4me``, continuations ``name*0``, ``name*1*``…) are decoded, and so are
  RFC 2047 encoded words (``=?utf-8?q?caf=C3=A9?=``). Where a parameter is given more than once,
  the first wins. Header bytes that are not UTF-8 become U+FFFD.
- A file part (one with a ``filename`` parameter, decoded the same way) has its filename as its
  value; the file's content is not kept.
- Otherwise the value is the part's content, undone from ``Content-Transfer-Encoding`` base64 or
  quoted-printable, decoded in the part's ``charset`` when that names a usable text encoding,
  else in UTF-8, invalid bytes becoming U+FFFD.
- A body that is only the closing delimiter is a form with no fields. A preamble before the
  first delimiter and an epilogue after the last are ignored.

Refused with :class:`WebhookParseError` (the core answers 400, as for any body it cannot read:
the body is within the sidecar's byte limit, so 413 would misdirect the sender): no boundary
parameter, a body that is not delimited by it or ends before its closing delimiter, a line that
does not end in CRLF, a part header line that is not ``Name: value`` (so no folded, obsolete
multi-line headers), RFC 2231 parameters that do not fit together (``name*`` beside ``name*0``),
more than :data:`MAX_PARTS` parts, a part header line longer than :data:`MAX_PART_HEADER_LINE`
bytes, more than :data:`MAX_PART_HEADERS` header lines in one part, and more than
:data:`MAX_ENCODED_WORDS` RFC 2047 encoded words in one parameter.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import collapse_rfc2231_value, decode_params, unquote
from typing import Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState

from ._charset import decode_text
from ._errors import WebhookParseError

__all__ = [
    "MAX_ENCODED_WORDS",
    "MAX_PARTS",
    "MAX_PART_HEADERS",
    "MAX_PART_HEADER_LINE",
    "parse_multipart",
]

#: Most parts in one body (a part is a field, or a part skipped as no field).
MAX_PARTS: Final = 1000
#: Longest header line of a part, name and value, bytes.
MAX_PART_HEADER_LINE: Final = 8192
#: Most header lines in one part (RFC 7578 defines three).
MAX_PART_HEADERS: Final = 16
#: Most RFC 2047 encoded words in one parameter value.
MAX_ENCODED_WORDS: Final = 64

_INVALID: Final = "the body is not valid multipart/form-data"
# The boundary parameter: a quoted string, or a token that ends at whitespace or ";" (so a CR/LF
# in the Content-Type cannot carry more into the boundary).
_BOUNDARY: Final = re.compile(r'(?:^|;)\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))', re.IGNORECASE)
_ENCODED_WORD: Final = "=?"
# python-multipart's own words for the limits it enforces (it has no exception of each kind).
_LIMIT_MESSAGES: Final = {
    "Maximum header size exceeded": (
        f"a multipart part has a header line over {MAX_PART_HEADER_LINE} bytes"
    ),
    "Maximum header count exceeded": (
        f"a multipart part has more than {MAX_PART_HEADERS} header lines"
    ),
}

# python-multipart logs each malformed body at warning level, with bytes from the body: the
# refusal is ours to report (the ingest log line), so its parsers log nowhere.
_LIBRARY_LOG: Final = logging.getLogger(f"{__name__}.python_multipart")
_LIBRARY_LOG.addHandler(logging.NullHandler())
_LIBRARY_LOG.propagate = False


@dataclass(slots=True)
class _Part:
    """One part as it is read: its header lines, then its content in pieces."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content: list[bytes] = field(default_factory=list)


class _Collector:
    """The callbacks python-multipart calls: the parts, each header and each piece of content."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self._name: list[bytes] = []
        self._value: list[bytes] = []

    def part_begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise WebhookParseError(f"the multipart body has more than {MAX_PARTS} parts")
        self.parts.append(_Part())

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._name.append(data[start:end])

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value.append(data[start:end])

    def header_end(self) -> None:
        self.parts[-1].headers.append((b"".join(self._name), b"".join(self._value)))
        self._name.clear()
        self._value.clear()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1].content.append(data[start:end])


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a ``multipart/form-data`` body, in order (see the module docstring)."""
    found = _BOUNDARY.search(content_type)
    boundary = (found.group(1) if found.group(1) is not None else found.group(2)) if found else ""
    if not boundary:
        raise WebhookParseError(_INVALID)
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    if not body.startswith(delimiter):
        # A preamble, which a reader ignores: the first delimiter starts a line of its own.
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise WebhookParseError(_INVALID)
        body = body[first + 2 :]
    collector = _Collector()
    try:
        parser = MultipartParser(
            delimiter[2:],
            {
                "on_part_begin": collector.part_begin,
                "on_header_field": collector.header_field,
                "on_header_value": collector.header_value,
                "on_header_end": collector.header_end,
                "on_part_data": collector.part_data,
            },
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_LINE,
        )
        parser.logger = _LIBRARY_LOG
        parser.write(body)
    except FormParserError as exc:
        raise WebhookParseError(_LIMIT_MESSAGES.get(str(exc), _INVALID)) from None
    if parser.state != MultipartState.END:
        raise WebhookParseError(_INVALID)  # the body ended before its closing delimiter
    return [pair for part in collector.parts if (pair := _field(part)) is not None]


def _field(part: _Part) -> tuple[str, str] | None:
    disposition: str | None = None
    content_type: str | None = None
    transfer_encoding = ""
    for raw_name, raw_value in part.headers:
        name = raw_name.decode("latin-1").lower()  # python-multipart admits only token characters
        value = raw_value.decode("utf-8", "replace")
        if name == "content-disposition" and disposition is None:
            disposition = value
        elif name == "content-type" and content_type is None:
            content_type = value
        elif name == "content-transfer-encoding" and not transfer_encoding:
            transfer_encoding = value.strip().lower()
    if disposition is None:
        return None
    params = _params(disposition)
    field_name = params.get("name")
    if field_name is None:
        return None  # a part without a field name carries no field
    media, type_params = _split_content_type(content_type)
    if media.startswith(("multipart/", "message/")):
        return None  # a nested message: not a field
    filename = params.get("filename")
    if filename is not None:
        return field_name, filename
    content = _undo_transfer_encoding(b"".join(part.content), transfer_encoding)
    return field_name, decode_text(content, type_params.get("charset"), "replace")


def _split_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    if value is None:
        return "text/plain", {}
    media, _, rest = value.partition(";")
    params = _params(f"x;{rest}") if rest else {}
    return media.strip().lower(), params


def _params(header: str) -> dict[str, str]:
    """The parameters of a header value, lower-cased names, values decoded; first one wins."""
    raw: list[tuple[str, str]] = []
    for segment in _segments(header)[1:]:
        name, sep, value = segment.partition("=")
        if sep:
            raw.append((name.strip().lower(), value.strip()))
    # decode_params joins RFC 2231 continuations into (charset, language, text) after the plain
    # parameters, every value (re)quoted; collapse_rfc2231_value unquotes only a plain one.
    try:
        all_decoded = decode_params([("", ""), *raw])[1:]
    except (TypeError, ValueError):  # e.g. both name* and name*0: continuations that do not sort
        raise WebhookParseError(_INVALID) from None
    params: dict[str, str] = {}
    for name, decoded in all_decoded:
        if name not in params:
            text = collapse_rfc2231_value(
                (decoded[0], decoded[1], unquote(decoded[2]))
                if isinstance(decoded, tuple)
                else decoded,
                errors="replace",
            )
            params[name] = _encoded_words(text)
    return params


def _segments(header: str) -> list[str]:
    """``header`` split at each ``;`` outside a quoted string, in one pass."""
    if '"' not in header:
        return header.split(";")
    segments: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(header):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            segments.append(header[start:index])
            start = index + 1
    segments.append(header[start:])
    return segments


def _encoded_words(value: str) -> str:
    """``value`` with RFC 2047 encoded words decoded, each in its charset (else UTF-8)."""
    if _ENCODED_WORD not in value:
        return value
    if value.count(_ENCODED_WORD) > MAX_ENCODED_WORDS:
        raise WebhookParseError(
            f"a multipart header parameter has more than {MAX_ENCODED_WORDS} encoded words"
        )
    try:
        pieces = decode_header(value)
    except (HeaderParseError, ValueError):
        return value
    return "".join(
        piece if isinstance(piece, str) else decode_text(piece, charset, "replace")
        for piece, charset in pieces
    )


_TRANSFER_DECODERS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "base64": binascii.a2b_base64,
    "quoted-printable": binascii.a2b_qp,
}


def _undo_transfer_encoding(content: bytes, encoding: str) -> bytes:
    decoder = _TRANSFER_DECODERS.get(encoding)
    if decoder is None:
        return content
    try:
        return decoder(content)
    except (binascii.Error, ValueError):
        return content  # leniently, as for a charset: the bytes as sent

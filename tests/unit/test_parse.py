"""parse_webhook: a request body (or query) into its payload (docs/format.md, "Webhook bodies")."""

from __future__ import annotations

import base64
import json
import time
import tracemalloc
from collections.abc import Callable
from unittest import mock

import pytest

from server.engine import EngineError, WebhookParseError, WebhookRequest, parse_webhook
from server.engine._multipart import (
    MAX_ENCODED_WORDS,
    MAX_PART_HEADER_LINE,
    MAX_PART_HEADERS,
    MAX_PARTS,
    _Collector,
)
from server.engine._parse import MAX_FIELDS, MAX_JSON_DEPTH, MAX_JSON_VALUES


def parse(body: bytes, content_type: str | None = None, method: str = "POST", query=()) -> object:
    request = WebhookRequest(method=method, content_type=content_type, body=body, query=query)
    return parse_webhook(request)


# --- JSON ----------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/vnd.api+json",
        "application/problem+json; charset=utf-8",
        "text/json",
    ],
)
def test_json_by_content_type(content_type: str) -> None:
    assert parse(b'{"a": [1, "x", true, null]}', content_type) == {"a": [1, "x", True, None]}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
@pytest.mark.parametrize("body", [b'{"a": 1}', b' \r\n\t{"a": 1}', b'\xef\xbb\xbf{"a": 1}'])
def test_json_sniffed_from_a_body_that_starts_with_a_brace(
    body: bytes, content_type: str | None
) -> None:
    assert parse(body, content_type) == {"a": 1}


def test_a_top_level_array_is_returned_as_the_batch_it_is() -> None:
    assert parse(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


def test_json_content_type_accepts_a_scalar_body() -> None:
    assert parse(b'"just text"', "application/json") == "just text"


def test_json_in_a_declared_charset() -> None:
    body = '{"text": "café"}'.encode("iso-8859-1")
    assert parse(body, "application/json; charset=iso-8859-1") == {"text": "café"}


def test_json_in_utf16_is_detected_without_a_charset() -> None:
    assert parse('{"text": "héllo"}'.encode("utf-16"), "application/json") == {"text": "héllo"}


def test_json_with_an_unknown_charset_is_read_as_utf8() -> None:
    body = '{"text": "é"}'.encode()
    assert parse(body, "application/json; charset=no-such-charset") == {"text": "é"}
    assert parse(body, "application/json; charset=base64") == {"text": "é"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1',  # truncated
        b'{"a": 1} trailing',
        b"{'a': 1}",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"text": "\xff\xfe invalid utf-8"}',
        b'{"n": ' + b"9" * 5000 + b"}",  # an integer too long to convert
        b"[" * 100_000 + b"]" * 100_000,  # nested beyond any sane depth
    ],
)
def test_a_body_that_is_not_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(WebhookParseError):
        parse(body, "application/json")


def test_a_json_body_that_does_not_decode_in_its_charset_is_a_parse_error() -> None:
    with pytest.raises(WebhookParseError, match="not valid utf-8"):
        parse(b'{"a": "\xc3"}', "application/json; charset=utf-8")


def test_a_sniffed_body_that_is_not_json_is_a_parse_error() -> None:
    with pytest.raises(WebhookParseError):
        parse(b"{not json", None)


def test_parse_errors_are_engine_errors() -> None:
    assert issubclass(WebhookParseError, EngineError)


# --- form ----------

FORM = "application/x-www-form-urlencoded"


def test_form_keys_are_kept_flat_as_sent() -> None:
    body = b"price%5Bamount%5D=2.50&price[currency]=EUR&From=%2B15551234567"
    assert parse(body, FORM) == {
        "price[amount]": "2.50",
        "price[currency]": "EUR",
        "From": "+15551234567",
    }


def test_a_key_repeated_in_a_form_is_a_list_in_order() -> None:
    body = b"MediaUrl=https%3A%2F%2Fa&To=1&MediaUrl=https%3A%2F%2Fb&MediaUrl=c"
    assert parse(body, FORM) == {"MediaUrl": ["https://a", "https://b", "c"], "To": "1"}


def test_form_values_decode_plus_percent_and_blank() -> None:
    body = b"Body=Hello+there%21+%F0%9F%98%80&Empty=&Bare"
    assert parse(body, f"{FORM}; charset=utf-8") == {
        "Body": "Hello there! 😀",
        "Empty": "",
        "Bare": "",
    }


def test_form_in_a_declared_charset() -> None:
    assert parse(b"Body=caf%E9", f"{FORM}; charset=iso-8859-1") == {"Body": "café"}


def test_form_with_invalid_utf8_keeps_the_rest_and_replaces_the_bad_bytes() -> None:
    result = parse(b"Body=caf%E9&Raw=\xff\xfeok&To=1", FORM)
    assert result == {"Body": "caf\ufffd", "Raw": "\ufffd\ufffdok", "To": "1"}


def test_form_with_an_unknown_charset_is_read_as_utf8() -> None:
    assert parse(b"Body=%C3%A9", f"{FORM}; charset=klingon") == {"Body": "é"}


@pytest.mark.parametrize(
    "charset", ["\x00", "utf-8\x00x", "undefined", "rot13", "zlib", "hex", "no-such-thing"]
)
def test_a_charset_that_is_no_usable_text_encoding_is_ignored(charset: str) -> None:
    assert parse(b"Body=%C3%A9", f"{FORM}; charset={charset}") == {"Body": "é"}
    assert parse('{"a": "é"}'.encode(), f"application/json; charset={charset}") == {"a": "é"}
    body, content_type = multipart(
        part("Body", "é".encode(), f"Content-Type: text/plain; charset={charset}")
    )
    assert parse(body, content_type) == {"Body": "é"}


@pytest.mark.parametrize("charset", ["idna", "punycode"])
def test_odd_but_real_text_codecs_are_honoured_without_crashing(charset: str) -> None:
    result = parse(b"Body=%C3%A9&\xff", f"{FORM}; charset={charset}")
    assert isinstance(result, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


def test_a_body_without_content_type_that_is_not_json_is_read_as_a_form() -> None:
    assert parse(b"a=1&b=2", None) == {"a": "1", "b": "2"}


def test_json_sent_with_a_form_content_type_is_read_as_json() -> None:
    assert parse(b'{"a": "1"}', FORM) == {"a": "1"}


def test_a_form_that_merely_starts_with_a_bracket_stays_a_form() -> None:
    assert parse(b"[a]=1&b=2", FORM) == {"[a]": "1", "b": "2"}


# (application/xml was one of these until XML bodies were read: docs/format.md, "XML bodies")
@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/png"])
def test_a_body_in_a_type_that_has_no_reading_is_a_parse_error(content_type: str) -> None:
    with pytest.raises(WebhookParseError, match="cannot read"):
        parse(b"a=1", content_type)


# --- multipart ----------


def multipart(*parts: bytes, boundary: str = "XyZzy") -> tuple[bytes, str]:
    sep = f"--{boundary}".encode()
    body = b"".join(sep + b"\r\n" + part + b"\r\n" for part in parts) + sep + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


def part(name: str, value: bytes, *headers: str) -> bytes:
    head = f'Content-Disposition: form-data; name="{name}"'
    lines = [head, *headers]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + value


def test_multipart_fields() -> None:
    body, content_type = multipart(
        part("From", b"+15551234567"),
        part("Body", "héllo\r\nsecond line ✓".encode()),
        part("Empty", b""),
    )
    assert parse(body, content_type) == {
        "From": "+15551234567",
        "Body": "héllo\r\nsecond line ✓",
        "Empty": "",
    }


def test_multipart_part_charset_transfer_encoding_and_utf8_names() -> None:
    encoded = base64.b64encode("café".encode("iso-8859-1"))
    body, content_type = multipart(
        part(
            "Body",
            encoded,
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: base64",
        ),
        part("näme", b"v"),
    )
    assert parse(body, content_type) == {"Body": "café", "näme": "v"}


def test_multipart_repeated_field_is_a_list_and_a_file_part_gives_its_filename() -> None:
    file_part = (
        b'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\x00binary"
    )
    body, content_type = multipart(part("MediaUrl", b"a"), part("MediaUrl", b"b"), file_part)
    assert parse(body, content_type) == {"MediaUrl": ["a", "b"], "file": "photo.jpg"}


def test_multipart_invalid_utf8_is_replaced_and_nameless_parts_are_skipped() -> None:
    nameless = b"Content-Disposition: form-data\r\n\r\nlost"
    body, content_type = multipart(part("Body", b"ok \xff"), nameless)
    assert parse(body, content_type) == {"Body": "ok \ufffd"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--XyZzy\r\nno end", "multipart/form-data; boundary=XyZzy"),  # truncated
        (b"garbage", "multipart/form-data; boundary=XyZzy"),  # no boundary in the body
        (multipart(part("a", b"1"))[0], "multipart/form-data"),  # no boundary parameter
        (multipart(part("a", b"1"))[0], "multipart/form-data; boundary=Other"),
    ],
)
def test_broken_multipart_is_a_parse_error(body: bytes, content_type: str) -> None:
    with pytest.raises(WebhookParseError, match="multipart"):
        parse(body, content_type)


def test_a_multipart_form_without_fields_is_empty() -> None:
    assert parse(b"--XyZzy--\r\n", "multipart/form-data; boundary=XyZzy") == {}


def test_a_content_type_cannot_smuggle_headers_into_the_multipart_parser() -> None:
    body, _ = multipart(part("a", b"1"))
    content_type = "multipart/form-data; boundary=XyZzy\r\nContent-Type: text/plain"
    assert parse(body, content_type) == {"a": "1"}


# --- query ----------


def test_get_reads_the_query_even_with_a_body() -> None:
    query = (("From", "+1555"), ("MediaUrl", "a"), ("MediaUrl", "b"))
    assert parse(b'{"ignored": 1}', "application/json", method="get", query=query) == {
        "From": "+1555",
        "MediaUrl": ["a", "b"],
    }


@pytest.mark.parametrize("body", [b"", b"  \r\n"])
def test_an_empty_body_reads_the_query(body: bytes) -> None:
    assert parse(body, "application/json", query=(("a", "1"),)) == {"a": "1"}
    assert parse(body, None) == {}


# --- multipart, as read without the email package ----------


def test_multipart_rfc2231_and_rfc2047_names_and_filenames_are_decoded() -> None:
    body, content_type = multipart(
        b"Content-Disposition: form-data; name*=utf-8''n%C3%A4me\r\n\r\nv1",
        b'Content-Disposition: form-data; name*0="con"; name*1="tinued"\r\n\r\nv2',
        b'Content-Disposition: form-data; name="=?utf-8?q?caf=C3=A9?="\r\n\r\nv3',
        b"Content-Disposition: form-data; name=\"f\"; filename*=utf-8''%C3%A4.jpg\r\n\r\n\x00",
        b'Content-Disposition: form-data; name="a;\\"b"\r\n\r\nv4',
    )
    assert parse(body, content_type) == {
        "näme": "v1",
        "continued": "v2",
        "café": "v3",
        "f": "ä.jpg",
        'a;"b': "v4",
    }


def test_multipart_quoted_printable_preamble_epilogue_and_skipped_nested_parts() -> None:
    body, content_type = multipart(
        part("qp", b"caf=C3=A9 =\r\nd=C3=A9j=C3=A0", "Content-Transfer-Encoding: quoted-printable"),
        part("nested", b"--C\r\n\r\nx\r\n--C--", "Content-Type: multipart/mixed; boundary=C"),
        b"Content-Type: text/plain\r\n\r\nno disposition",
    )
    assert parse(b"a preamble\r\n" + body + b"an epilogue", content_type) == {"qp": "café déjà"}


def test_a_quoted_boundary_is_read_whole() -> None:
    body, _ = multipart(part("a", b"1"), boundary="with space")
    assert parse(body, 'multipart/form-data; boundary="with space"') == {"a": "1"}


@pytest.mark.parametrize(
    "body",
    [
        b"--XyZzy\nContent-Disposition: form-data; name=a\n\n1\n--XyZzy--\n",  # LF, not CRLF
        b"--XyZzy\r\nnot a header line\r\n\r\n1\r\n--XyZzy--\r\n",
        b"--XyZzy\r\n",  # an opening delimiter and nothing else
    ],
)
def test_multipart_that_breaks_the_framing_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(WebhookParseError, match="multipart"):
        parse(body, "multipart/form-data; boundary=XyZzy")


def test_multipart_parameters_the_rfc2231_decoder_cannot_order_are_a_parse_error() -> None:
    # name* and name*0 together: a continuation without a number next to numbered ones.
    head = b"Content-Disposition: form-data; name*=utf-8''a; name*0=b"
    with pytest.raises(WebhookParseError, match="multipart"):
        parse(*multipart(head + b"\r\n\r\nv"))


# --- limits: every body is read at a bounded cost ----------


def encoded_words(count: int) -> bytes:
    return b" ".join([b"=?utf-8?q?a?="] * count)


def bounded(work: Callable[[], object], *, memory: int = 64 << 20, guard_s: float = 30) -> None:
    """Run ``work``, which must refuse its input with WebhookParseError, within a generous time
    (the quadratic parse took seconds to minutes) and a bound on the memory it allocates."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(WebhookParseError):
            work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < guard_s
    assert peak < memory, f"parsing allocated {peak >> 20} MiB"


@pytest.mark.parametrize("words", [20_000, 60_000])
def test_a_part_header_of_many_encoded_words_is_refused_in_linear_time_and_memory(
    words: int,
) -> None:
    # 280 KB and 840 KB: with the standard library's HTTP policy the first grew the server by
    # 2.8 GB and held its loop for seconds, the second went past 20 GB.
    head = b'Content-Disposition: form-data; name="' + encoded_words(words) + b'"'
    body, content_type = multipart(head + b"\r\n\r\nv")
    bounded(lambda: parse(body, content_type))


def test_a_header_line_within_its_limit_may_hold_only_so_many_encoded_words() -> None:
    def named(words: int) -> tuple[bytes, str]:
        head = b'Content-Disposition: form-data; name="' + encoded_words(words) + b'"'
        assert len(head) <= MAX_PART_HEADER_LINE
        return multipart(head + b"\r\n\r\nv")

    assert parse(*named(MAX_ENCODED_WORDS)) == {"a" * MAX_ENCODED_WORDS: "v"}
    with pytest.raises(WebhookParseError, match="encoded words"):
        parse(*named(MAX_ENCODED_WORDS + 1))
    body, content_type = multipart(
        *[b'Content-Disposition: form-data; name="' + encoded_words(500) + b'"\r\n\r\nv'] * 100
    )
    bounded(lambda: parse(body, content_type), memory=8 << 20)


def test_a_part_header_line_over_the_limit_is_a_parse_error() -> None:
    filler = "x" * (MAX_PART_HEADER_LINE - len('Content-Disposition: form-data; name=""'))
    assert parse(*multipart(part(filler, b"v"))) == {filler: "v"}
    with pytest.raises(WebhookParseError, match="header line over"):
        parse(*multipart(part(filler + "x", b"v")))


def test_a_part_with_too_many_header_lines_is_a_parse_error() -> None:
    extra = [f"X-Extra-{n}: 1" for n in range(MAX_PART_HEADERS - 1)]
    assert parse(*multipart(part("a", b"1", *extra))) == {"a": "1"}
    with pytest.raises(WebhookParseError, match="header lines"):
        parse(*multipart(part("a", b"1", *extra, "X-One-More: 1")))


def test_a_multipart_body_with_too_many_parts_is_a_parse_error() -> None:
    assert len(parse(*multipart(*[part(f"f{n}", b"1") for n in range(MAX_PARTS)]))) == MAX_PARTS
    with pytest.raises(WebhookParseError, match="parts"):
        parse(*multipart(*[part(f"f{n}", b"1") for n in range(MAX_PARTS + 1)]))


def test_a_megabyte_of_tiny_parts_is_refused_after_the_limit_without_reading_the_rest() -> None:
    # 19,000 parts in 1 MB held the event loop 2.1 s, parsed whole before the first field.
    body, content_type = multipart(*[part("a", b"1")] * 19_000)
    assert len(body) > 900_000
    with mock.patch.object(_Collector, "header_end", autospec=True) as header_end:
        bounded(lambda: parse(body, content_type))
    assert header_end.call_count == MAX_PARTS


def test_a_form_with_too_many_fields_is_a_parse_error() -> None:
    assert len(parse(b"&".join(b"f%d=1" % n for n in range(MAX_FIELDS)), FORM)) == MAX_FIELDS
    for charset in ("", "; charset=iso-8859-1"):
        with pytest.raises(WebhookParseError, match="fields"):
            parse(b"&".join(b"f%d=1" % n for n in range(MAX_FIELDS + 1)), FORM + charset)


def test_a_query_with_too_many_parameters_is_a_parse_error() -> None:
    query = tuple((f"q{n}", "1") for n in range(MAX_FIELDS + 1))
    assert len(parse(b"", None, method="GET", query=query[:-1])) == MAX_FIELDS
    with pytest.raises(WebhookParseError, match="parameters"):
        parse(b"", None, method="GET", query=query)


def nested(depth: int) -> bytes:
    return b'{"a": ' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


@pytest.mark.parametrize("charset", ["", "; charset=utf-8"])
def test_json_nested_deeper_than_the_limit_is_a_parse_error(charset: str) -> None:
    assert isinstance(parse(nested(MAX_JSON_DEPTH), "application/json" + charset), dict)
    with pytest.raises(WebhookParseError, match="nested deeper"):
        parse(nested(MAX_JSON_DEPTH + 1), "application/json" + charset)
    with pytest.raises(WebhookParseError, match="nested deeper"):
        parse(b"[" * 900 + b"]" * 900, "application/json" + charset)


@pytest.mark.parametrize("element", [b"0", b"{}", b'"x"'])
def test_json_with_more_values_than_the_limit_is_a_parse_error(element: bytes) -> None:
    def array(count: int) -> bytes:
        return b"[" + b",".join([element] * count) + b"]"

    assert parse(array(MAX_JSON_VALUES), "application/json") == [json.loads(element)] * (
        MAX_JSON_VALUES
    )
    with pytest.raises(WebhookParseError, match="more than"):
        parse(array(MAX_JSON_VALUES + 1), "application/json")
    members = b"{" + b",".join(b'"k%d": [1, 2]' % n for n in range(MAX_JSON_VALUES // 3 + 1)) + b"}"
    with pytest.raises(WebhookParseError, match="more than"):
        parse(members, "application/json")


def test_a_wide_json_body_is_refused_with_bounded_work() -> None:
    body = b"[" + b",".join([b"[]"] * 340_000) + b"]"  # 1 MB
    bounded(lambda: parse(body, "application/json"), memory=128 << 20)

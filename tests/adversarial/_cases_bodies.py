"""Oversized, deeply nested and malformed webhook bodies of every accepted content type (JSON,
form, multipart, the query string, no content type), and malformed HTTP framing.

The statuses: a body that cannot be read, or is too large or too costly to read, is refused
(400, 413); one that can be read but means nothing may be kept as unmatched (200). Never 5xx.
Bodies go to an installation's URL of the in-process sidecar unless the name says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from ._case import MIB, Cases, expect_status
from ._checks import HOSTILE_BODY, REFUSED_BODY, post_status
from ._env import ACME_NUMBER, Env, message_webhook
from ._payloads import BOUNDARY, SHORT_BOUNDARY, deep_json, many_parts, multipart, wide_json
from ._raw import exchange, head

__all__ = ["CASES"]

cases = Cases("bodies")
CASES = cases.all

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
_PARTS = f"multipart/form-data; boundary={SHORT_BOUNDARY}"
_OVER = 2 * MIB  # twice the default webhook_max_body


def _body_case(
    name: str,
    body: bytes,
    content_type: str | None,
    wanted: tuple[int, ...],
    *,
    sidecar: bool = False,
) -> None:
    async def run(env: Env) -> str:
        url = env.sidecar_url(env.path()) if sidecar else env.core_url(env.path())
        return await post_status(env, url, body, content_type, wanted)

    cases.add(name, run)


# --- oversized, declared and chunked -----------------------------------------------------------

for _kind, _type in (("json", JSON), ("form", FORM), ("multipart", MULTIPART), ("none", None)):
    _body_case(f"{_kind}-oversize-declared", b"a" * _OVER, _type, (413,))


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b"{" * size


for _where in ("core", "sidecar"):

    async def _chunked(env: Env, where: str = _where) -> str:
        base = env.sidecar_url if where == "sidecar" else env.core_url
        assert env.http is not None
        async with env.http.post(
            base(env.path()), data=_chunks(8 * MIB), headers={"Content-Type": JSON}
        ) as response:
            return expect_status(response.status, (413,))

    cases.add(f"json-oversize-chunked-{_where}", _chunked)

_body_case("json-oversize-declared-sidecar", b"a" * _OVER, JSON, (413,), sidecar=True)

# --- deep and wide -----------------------------------------------------------------------------

_body_case("json-100000-deep-arrays", deep_json(100_000), JSON, HOSTILE_BODY)
_body_case("json-100000-deep-objects", deep_json(100_000, "{"), JSON, HOSTILE_BODY)
_body_case("json-100000-deep-no-content-type", deep_json(100_000), None, HOSTILE_BODY)
_body_case("json-100000-deep-arrays-sidecar", deep_json(100_000), JSON, HOSTILE_BODY, sidecar=True)
_body_case(
    "json-10000-deep-in-message",
    message_webhook(ACME_NUMBER, "x")[:-2] + b', "x": ' + deep_json(10_000) + b"}}",
    JSON,
    REFUSED_BODY,
)
_body_case("json-60000-fields", wide_json(60_000), JSON, REFUSED_BODY)
_body_case("json-250000-element-list", b"[" + b"0," * 250_000 + b"0]", JSON, REFUSED_BODY)
_body_case(
    "json-batch-of-20000-messages",
    json.dumps([json.loads(message_webhook(ACME_NUMBER, "b"))] * 20_000).encode()[: MIB - 10],
    JSON,
    HOSTILE_BODY,
)
_body_case(
    "form-100000-fields",
    "&".join(f"f{i}=1" for i in range(100_000)).encode()[: MIB - 1],
    FORM,
    HOSTILE_BODY,
)
_body_case("form-200000-same-key", b"&".join([b"a=1"] * 200_000)[: MIB - 1], FORM, HOSTILE_BODY)
_body_case(
    "form-200000-fields-no-content-type", b"&".join([b"a"] * 400_000)[: MIB - 1], None, HOSTILE_BODY
)
_body_case("multipart-10000-parts", many_parts(10_000, MIB // 2), _PARTS, REFUSED_BODY)
_body_case(
    "multipart-rfc2231-20000-continuations",
    multipart([(b"; ".join(f"name*{i}=a".encode() for i in range(20_000)), b"x")]),
    MULTIPART,
    HOSTILE_BODY,
)
_body_case(
    "multipart-5000-headers-in-a-part",
    (
        f"--{BOUNDARY}\r\n".encode()
        + b"".join(f"X-H{i}: v\r\n".encode() for i in range(5000))
        + b'Content-Disposition: form-data; name="a"\r\n\r\nx\r\n'
        + f"--{BOUNDARY}--\r\n".encode()
    ),
    MULTIPART,
    REFUSED_BODY,
)
_body_case(
    "multipart-900kb-header-line",
    multipart([(b'name="' + b"n" * 900_000 + b'"', b"x")]),
    MULTIPART,
    REFUSED_BODY,
)
_body_case(
    "multipart-nested-mixed-2000-deep",
    b"".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode()
        for i in range(2000)
    ),
    "multipart/form-data; boundary=b0",
    HOSTILE_BODY,
)
_body_case(
    "multipart-encoded-words-sidecar",
    multipart([(b'name="' + b" ".join([b"=?utf-8?b?YQ==?="] * 20_000) + b'"', b"x")]),
    MULTIPART,
    HOSTILE_BODY,
    sidecar=True,
)

# --- malformed and odd text --------------------------------------------------------------------

_body_case("json-truncated", b'{"method": "message", "params": {', JSON, (400,))
_body_case("json-nan-literal", b'{"a": NaN}', JSON, (400,))
_body_case("json-invalid-utf8", b'{"a": "\xff\xfe\xc0\x80"}', JSON, (400,))
_body_case("json-raw-nul-in-string", b'{"a": "x\x00y"}', JSON, (400,))
_body_case(
    "json-escaped-nul-in-message", message_webhook(ACME_NUMBER, "nul\x00nul"), JSON, (200, 400)
)
_body_case(
    "json-lone-surrogate-in-message",
    message_webhook(ACME_NUMBER, "x").replace(b'"x"', b'"\\ud800"'),
    JSON,
    (200, 400),
)
_body_case(
    "json-unknown-charset", b'{"a": 1}', "application/json; charset=x-no-such-charset", REFUSED_BODY
)
_body_case(
    "json-utf-16-charset-odd-length", b'{"a": 1}', "application/json; charset=utf-16", (400,)
)
_body_case("json-900000-digit-number", b'{"n": ' + b"9" * 900_000 + b"}", JSON, REFUSED_BODY)
_body_case("json-huge-exponent", b'{"n": 1e999999999, "m": -1e-999999999}', JSON, REFUSED_BODY)
_body_case("json-900kb-key", b'{"' + b"k" * 900_000 + b'": 1}', JSON, REFUSED_BODY)
_body_case("form-invalid-utf8", b"a=%ff%fe&b=\xff\xc0", FORM, REFUSED_BODY)
_body_case("form-unknown-charset", b"a=1", f"{FORM}; charset=x-no-such-charset", REFUSED_BODY)
_body_case("form-nul-bytes", b"a=\x00&%00=b", FORM, REFUSED_BODY)
_body_case("form-bad-percent-escapes", b"%zz=%%%&%=%g", FORM, REFUSED_BODY)
_body_case(
    "multipart-no-boundary", multipart([(b'name="a"', b"x")]), "multipart/form-data", REFUSED_BODY
)
_body_case(
    "multipart-never-closed",
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n\r\n'.encode() + b"x" * 500_000,
    MULTIPART,
    REFUSED_BODY,
)
_body_case(
    "multipart-invalid-base64-part",
    multipart([(b'name="a"\r\nContent-Transfer-Encoding: base64', b"!!!!")]),
    MULTIPART,
    REFUSED_BODY,
)
_body_case(
    "multipart-invalid-charset-part",
    multipart([(b'name="a"\r\nContent-Type: text/plain; charset=x-none', b"\xff")]),
    MULTIPART,
    REFUSED_BODY,
)
_body_case("unknown-content-type", b"\x00\x01binary", "application/octet-stream", REFUSED_BODY)
_body_case("no-content-type-binary", bytes(range(256)) * 2000, None, REFUSED_BODY)


@cases.case("query-8000-params-empty-body")
async def _query(env: Env) -> str:
    query = "&".join(["a"] * 2000)
    return await post_status(env, env.core_url(env.path()) + "?" + query, b"", None, REFUSED_BODY)


@cases.case("query-invalid-utf8-get")
async def _query_utf8(env: Env) -> str:
    assert env.http is not None
    status, _ = await exchange(
        env.core.http_port, [head(env.path() + "?a=%ff%fe&%c0=1", method="GET")]
    )
    return expect_status(int(status) if status.isdigit() else status, (200, 400))


@cases.case("query-over-the-line-limit")
async def _query_long(env: Env) -> str:
    status, _ = await exchange(
        env.core.http_port, [head(env.path() + "?" + "a=1&" * 5000, method="GET")]
    )
    return expect_status(int(status) if status.isdigit() else status, (400, 414, 431))


# --- framing -----------------------------------------------------------------------------------


def _framing_case(
    name: str,
    fields: bytes,
    body: bytes,
    wanted: tuple[int | str, ...],
    *,
    half_close: bool = False,
) -> None:
    """A request with the header ``fields`` (CRLF-ended lines) and ``body`` as they are."""

    async def run(env: Env) -> str:
        data = head(env.path()).removesuffix(b"\r\n") + fields + b"\r\n" + body
        status, _ = await exchange(env.core.http_port, [data], half_close=half_close, timeout_s=10)
        return expect_status(int(status) if status.isdigit() else status, wanted)

    cases.add(name, run)


_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_framing_case(
    "content-length-longer-than-body",
    b"Content-Length: 100\r\n",
    b"{}",
    (400, 408, "closed"),
    half_close=True,
)
_framing_case("content-length-negative", b"Content-Length: -5\r\n", b"{}", (400,))
_framing_case(
    "content-length-twice-differing", b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x", (400,)
)
_framing_case(
    "content-length-huge-number", b"Content-Length: 99999999999999999999999\r\n", b"{}", (400, 413)
)
_framing_case(
    "chunked-and-content-length",
    b"Content-Length: 2\r\n" + _CHUNKED,
    b"2\r\n{}\r\n0\r\n\r\n",
    (400,),
)
_framing_case("chunk-size-not-hex", _CHUNKED, b"zz\r\n{}\r\n0\r\n\r\n", (400,))
_framing_case("chunk-size-2-pow-64", _CHUNKED, b"ffffffffffffffffff\r\n{}\r\n", (400, 413))
_framing_case("nul-in-header", b"X-A: a\x00b\r\nContent-Length: 2\r\n", b"{}", (400,))
_framing_case(
    "300-headers",
    b"".join(f"X-{i}: v\r\n".encode() for i in range(300)) + b"Content-Length: 2\r\n",
    b"{}",
    (431,),
)
_framing_case(
    "100kb-header-line", b"X-Big: " + b"v" * 100_000 + b"\r\nContent-Length: 2\r\n", b"{}", (431,)
)

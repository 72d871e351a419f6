"""An exchange as it is kept (server/core/_exchanges.py): every secret masked before the record
exists — credential headers whole, secret values anywhere in any form — and bodies capped after
masking, so that a secret cut by the cap leaves no piece behind."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from server.core._exchanges import (
    BODY_CAP,
    exchange_of,
    masked_body,
    masked_headers,
    masked_texts,
)
from server.engine import RenderedRequest
from server.outbound import OutboundTimeout, ProviderResponse
from server.security.secrets import SecretMask
from server.store import ExchangeKind

SECRET = "s3cr3t-Value/+x"
MASK = SecretMask.of([SECRET])
NOW = datetime(2026, 12, 6, tzinfo=UTC)


class _Installation:
    id, org_id, integration_id = "inst-1", "org-1", "acme"


INSTALLATION: Any = _Installation()


def request(body: bytes | None = None, url: str = "https://api.example/send") -> RenderedRequest:
    return RenderedRequest(
        method="post",
        url=url,
        headers=(("Authorization", "Basic dXNlcjpwdw=="), ("X-Key", SECRET), ("X-Ok", "fine")),
        body=body,
    )


def answer(body: bytes, *, truncated: bool = False) -> ProviderResponse:
    headers = CIMultiDictProxy(CIMultiDict([("Set-Cookie", "sid=1"), ("X-Echo", SECRET)]))
    return ProviderResponse(
        status=400, headers=headers, body=body, elapsed_s=0.01, truncated=truncated
    )


def keep(req: RenderedRequest, got: ProviderResponse | Exception, mask: SecretMask = MASK) -> Any:
    return exchange_of(
        mask,
        installation=INSTALLATION,
        kind=ExchangeKind.SEND,
        message_id="m1",
        request=req,
        answer=got,  # type: ignore[arg-type]
        started_at=NOW,
        duration_s=0.0125,
    )


def everything(exchange: Any) -> str:
    return repr(exchange)


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        "s3cr3t-Value%2F%2Bx",
        "s3cr3t-Value\\/+x",
        base64.b64encode(SECRET.encode()).decode(),
    ],
)
def test_a_secret_in_any_form_anywhere_is_masked(form: str) -> None:
    req = request(body=f'{{"key":"{form}"}}'.encode(), url=f"https://api.example/send?k={form}")
    exchange = keep(req, answer(f"echo {form} end".encode()))
    assert SECRET not in everything(exchange) and form not in everything(exchange)
    assert exchange.url == "https://api.example/send?k=***"
    assert exchange.request_body == '{"key":"***"}'
    assert exchange.response_body == "echo *** end"
    assert exchange.request_headers == (
        ("Authorization", "***"),
        ("X-Key", "***"),
        ("X-Ok", "fine"),
    )
    assert exchange.response_headers == (("Set-Cookie", "***"), ("X-Echo", "***"))
    assert (exchange.method, exchange.status, exchange.duration_ms) == ("POST", 400, 12.5)


def test_a_body_with_a_nul_is_masked_field_by_field() -> None:
    exchange = keep(request(body=b"a\x00" + SECRET.encode()), answer(b"\x00\x00" + SECRET.encode()))
    assert exchange.request_body == "a\x00***"
    assert exchange.response_body == "\x00\x00***"
    assert SECRET not in everything(exchange)


def test_a_call_without_an_answer_keeps_its_error_masked() -> None:
    failed = OutboundTimeout(f"no answer for {SECRET}", may_have_been_sent=True)
    exchange = keep(request(), failed)
    assert exchange.status == 0 and exchange.response_headers == () and exchange.response_body == ""
    assert exchange.error == "OutboundTimeout: no answer for ***"


@pytest.mark.parametrize("offset", range(BODY_CAP - 20, BODY_CAP + 4))
def test_a_secret_cut_by_the_cap_leaves_no_piece(offset: int) -> None:
    body = ("x" * offset + SECRET + "y" * 50).encode()
    kept = masked_body(MASK, body)
    assert kept.endswith("…") and len(kept) <= BODY_CAP + 1
    assert "s3cr" not in kept
    cut_short = masked_body(MASK, body[: offset + 6], truncated=True)  # the provider's rest unread
    assert "s3cr" not in cut_short and cut_short.endswith("…")


def test_a_long_body_is_cut_after_masking() -> None:
    got = answer(b"ok" + b"." * 100, truncated=True)  # the provider's rest unread
    exchange = keep(request(body=b"z" * (3 * BODY_CAP)), got)
    assert exchange.request_body == "z" * BODY_CAP + "…"
    # Its last characters, where a secret may begin, are dropped (server/security/secrets).
    assert exchange.response_body.startswith("ok...") and exchange.response_body.endswith(".…")


def test_without_secrets_nothing_is_masked_but_credential_headers() -> None:
    exchange = keep(request(body=SECRET.encode()), answer(b"ok"), mask=SecretMask())
    assert exchange.request_body == SECRET
    assert exchange.request_headers[0] == ("Authorization", "***")


def test_exchange_ids_sort_by_time() -> None:
    first = keep(request(), answer(b""))
    later = exchange_of(
        MASK,
        installation=INSTALLATION,
        kind=ExchangeKind.RETRY,
        message_id="m1",
        request=request(),
        answer=answer(b""),
        started_at=NOW.replace(second=1),
        duration_s=0,
    )
    assert first.id < later.id and first.id != keep(request(), answer(b"")).id


def test_texts_are_masked_in_one_pass_or_one_by_one_with_the_same_result() -> None:
    texts = [f"key={SECRET}", "plain", "", f"{SECRET}{SECRET}", "tail " + SECRET[:5]]
    expected = [MASK(text) for text in texts]
    assert masked_texts(MASK, texts) == expected
    assert expected[0] == "key=***" and expected[4] == texts[4]
    # A text holding the separator: each text on its own, masked all the same.
    with_nul = ["a\x00b", f"x{SECRET}"]
    assert masked_texts(MASK, with_nul) == ["a\x00b", "x***"]
    # A secret that holds the separator spans two texts once joined: one by one again.
    spanning = SecretMask.of(["ab\x00cd-secret"])
    assert masked_texts(spanning, ["ab", "cd-secret"]) == ["ab", "cd-secret"]
    assert masked_texts(SecretMask(), ["x", SECRET]) == ["x", SECRET]


def test_headers_are_masked_whole_or_for_their_secrets() -> None:
    headers = [("Authorization", "Bearer t"), ("X-Trace", f"id {SECRET}"), ("Accept", "*/*")]
    assert masked_headers(MASK, headers) == (
        ("Authorization", "***"),
        ("X-Trace", "id ***"),
        ("Accept", "*/*"),
    )

"""(ext) ``hmac`` with ``string_to_sign`` (docs/format.md, "WebhookAuth"): the published vectors
of Slack and Sinch, each part of the request, the replay window, refusals, robustness, and the
``msgbridge check`` rules for its misuse.

The fixtures in tests/fixtures/webhook_auth/ name the page each value comes from. Signatures made
here are computed independently of server/security/webhook_auth.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import WebhookAuth, check_definition, freeze, load_definition
from server.engine._webhook_auth_checks import STRING_TO_SIGN_PARTS
from server.security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook
from server.security.webhook_auth._string_to_sign import PARTS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "webhook_auth"
SECRET = {"Secret": "s3cr3t-value"}
NOW = 1_700_000_000


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def auth_of(spec: Mapping[str, Any]) -> WebhookAuth:
    options = freeze({k: v for k, v in spec.items() if k != "type"})
    assert isinstance(options, Mapping)
    return WebhookAuth(type=spec["type"], options=MappingProxyType(dict(options)))


def request_of(spec: Mapping[str, Any]) -> SignedRequest:
    return SignedRequest(
        method=spec["method"],
        url=spec["url"],
        headers=tuple((name, value) for name, value in spec["headers"]),
        body=spec["body"].encode(),
    )


def replaced(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return SignedRequest(
        method=request.method, url=request.url, headers=tuple(headers), body=request.body
    )


def refused(
    auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest, now: float
) -> str:
    with pytest.raises(WebhookAuthFailed) as failure:
        verify_webhook(auth, properties, request, now=now)
    for secret in properties.values():
        assert secret not in failure.value.reason
    return failure.value.reason


# --- Slack's documented example ---------------------------------------------------------------

SLACK = fixture("slack_string_to_sign_docs.json")
SLACK_AUTH = auth_of(SLACK["webhook_auth"])
SLACK_REQUEST = request_of(SLACK["request"])


def test_slack_documented_example_passes() -> None:
    verify_webhook(SLACK_AUTH, SLACK["properties"], SLACK_REQUEST, now=SLACK["now"])


def test_slack_example_refuses_a_changed_body_timestamp_or_secret() -> None:
    now = SLACK["now"]
    body = SignedRequest(
        method="POST", url=SLACK_REQUEST.url, headers=SLACK_REQUEST.headers, body=b"text=x"
    )
    assert refused(SLACK_AUTH, SLACK["properties"], body, now) == "the signature does not match"
    moved = replaced(SLACK_REQUEST, "X-Slack-Request-Timestamp", str(now + 1))
    assert refused(SLACK_AUTH, SLACK["properties"], moved, now) == "the signature does not match"
    other = {"Signing secret": "another secret"}
    assert refused(SLACK_AUTH, other, SLACK_REQUEST, now) == "the signature does not match"


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_slack_example_refuses_a_stale_timestamp(skew: int) -> None:
    reason = refused(SLACK_AUTH, SLACK["properties"], SLACK_REQUEST, SLACK["now"] + skew)
    assert reason == "the timestamp is outside the allowed window"


# --- Sinch's SDK vector, through the shipped definition ---------------------------------------

SINCH = fixture("sinch_sdk_signed_callback.json")
SINCH_REQUEST = request_of(SINCH["request"])


def sinch_auth() -> WebhookAuth:
    definition = load_definition((ROOT / SINCH["definition"]).read_bytes())
    assert definition.webhook_auth is not None
    return definition.webhook_auth


def test_sinch_definition_verifies_the_sdk_vector() -> None:
    verify_webhook(sinch_auth(), SINCH["properties"], SINCH_REQUEST, now=SINCH["now"])


@pytest.mark.parametrize(
    "header", ["x-sinch-webhook-signature-nonce", "x-sinch-webhook-signature-timestamp"]
)
def test_sinch_vector_signs_its_nonce_and_timestamp(header: str) -> None:
    value = dict(SINCH["request"]["headers"])[header]
    changed = replaced(SINCH_REQUEST, header, value[:-1] + ("0" if value[-1] != "0" else "1"))
    reason = refused(sinch_auth(), SINCH["properties"], changed, SINCH["now"])
    assert reason == "the signature does not match"
    missing = replaced(SINCH_REQUEST, header, None)
    assert refused(sinch_auth(), SINCH["properties"], missing, SINCH["now"]) == (
        f"the {header} header is missing"
    )


def test_sinch_vector_refuses_a_changed_body_and_a_stale_one() -> None:
    body = SignedRequest(
        method="POST",
        url=SINCH_REQUEST.url,
        headers=SINCH_REQUEST.headers,
        body=SINCH_REQUEST.body.replace(b"New Test", b"Old Test"),
    )
    assert refused(sinch_auth(), SINCH["properties"], body, SINCH["now"]) == (
        "the signature does not match"
    )
    assert refused(sinch_auth(), SINCH["properties"], SINCH_REQUEST, SINCH["now"] + 3600) == (
        "the timestamp is outside the allowed window"
    )


# --- every part, computed independently -------------------------------------------------------

REQUEST = SignedRequest(
    method="post",
    url="https://gw.example/hooks/abc?x=1&y=%20#frag",
    headers=(("X-Ts", str(NOW)), ("X-Nonce", "n-1"), ("X-Account", "acc$1"), ("X-Sig", "")),
    body=b'{"a":"\xc3\xa9"}',
)


def signed_with(template: str, message: bytes, **options: Any) -> tuple[WebhookAuth, SignedRequest]:
    digest = hmac.new(SECRET["Secret"].encode(), message, hashlib.sha256).hexdigest()
    spec = {
        "type": "hmac",
        "header": "X-Sig",
        "secret": "$Secret$",
        "string_to_sign": template,
        "timestamp_header": "X-Ts",
        "nonce_header": "X-Nonce",
        **options,
    }
    return auth_of(spec), replaced(REQUEST, "X-Sig", digest)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("$body$", REQUEST.body),
        ("$url$|$body$", b"https://gw.example/hooks/abc?x=1&y=%20#frag|" + REQUEST.body),
        ("$base_url$", b"https://gw.example/hooks/abc"),
        ("$method$ $base_url$", b"POST https://gw.example/hooks/abc"),
        ("$method$ $path$ HTTP/1.1", b"POST /hooks/abc?x=1&y=%20 HTTP/1.1"),
        ("$timestamp$.$nonce$.$body$", f"{NOW}.n-1.".encode() + REQUEST.body),
        ("$header:x-account$:$body$", b"acc$1:" + REQUEST.body),
        ("costs $$5\n$body$", b"costs $5\n" + REQUEST.body),
        ("\u00e9t\u00e9 $body$", "\u00e9t\u00e9 ".encode() + REQUEST.body),
    ],
)
def test_each_part_is_what_the_documentation_says(template: str, message: bytes) -> None:
    auth, request = signed_with(template, message)
    verify_webhook(auth, SECRET, request, now=NOW)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://gw.example", b"/"),
        ("https://gw.example?a=1", b"/?a=1"),
        ("https://gw.example:8443/x/y/?a=1#f", b"/x/y/?a=1"),
        ("http://user@gw.example/a%2Fb", b"/a%2Fb"),
    ],
)
def test_path_is_the_request_target_as_sent(url: str, path: bytes) -> None:
    auth, request = signed_with("$path$", path)
    at_url = SignedRequest(method="POST", url=url, headers=request.headers, body=request.body)
    verify_webhook(auth, SECRET, at_url, now=NOW)


def test_a_signed_timestamp_is_held_to_the_window_and_its_tolerance() -> None:
    auth, request = signed_with("$timestamp$:$body$", f"{NOW}:".encode() + REQUEST.body)
    reason = refused(auth, SECRET, request, NOW + 301)
    assert reason == "the timestamp is outside the allowed window"
    wide, request = signed_with(
        "$timestamp$:$body$", f"{NOW}:".encode() + REQUEST.body, tolerance_s=600
    )
    verify_webhook(wide, SECRET, request, now=NOW + 599)


def test_an_unsigned_header_timestamp_is_not_checked_against_the_window() -> None:
    auth, request = signed_with("$body$", REQUEST.body)
    verify_webhook(auth, SECRET, request, now=NOW + 10 * 86_400)


@pytest.mark.parametrize("value", ["", "abc", "1e9", "-5"])
def test_a_signed_timestamp_must_be_a_number(value: str) -> None:
    auth, request = signed_with("$timestamp$", value.encode())
    request = replaced(request, "X-Ts", value)
    assert refused(auth, SECRET, request, NOW) in {
        "the timestamp is not a number of seconds",
        "the X-Ts header is empty",
    }


def test_a_named_header_must_appear_once() -> None:
    auth, request = signed_with("$header:X-Account$", b"acc$1")
    twice = SignedRequest(
        method=request.method,
        url=request.url,
        headers=(*request.headers, ("x-account", "other")),
        body=request.body,
    )
    assert refused(auth, SECRET, twice, NOW) == "the X-Account header appears more than once"
    gone = replaced(request, "X-Account", None)
    assert refused(auth, SECRET, gone, NOW) == "the X-Account header is missing"


@pytest.mark.parametrize(
    "options",
    [
        {"string_to_sign": "$bdy$"},
        {"string_to_sign": "$body?$"},
        {"string_to_sign": ""},
        {"string_to_sign": "x" * 1001},
        {"string_to_sign": 5},
        {"string_to_sign": "$body$", "signed": "body"},
        {"string_to_sign": "$timestamp$", "timestamp_header": None},
    ],
)
def test_a_misconfigured_string_to_sign_fails_closed(options: dict[str, Any]) -> None:
    auth, request = signed_with("$body$", REQUEST.body)
    spec = {"type": "hmac", **dict(auth.options), **options}
    spec = {k: v for k, v in spec.items() if v is not None}
    refused(auth_of(spec), SECRET, request, NOW)


def test_the_verifier_and_the_checker_know_the_same_parts() -> None:
    assert set(PARTS) == set(STRING_TO_SIGN_PARTS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=st.text(alphabet="$:.abdoyhertsmnuclw-_ ", max_size=40),
    headers=st.lists(st.tuples(st.sampled_from(["X-Ts", "X-Nonce", "a", "X-Sig"]), st.text())),
    body=st.binary(max_size=64),
    now=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_template_and_request_give_a_verdict_never_a_crash(
    template: str, headers: list[tuple[str, str]], body: bytes, now: float
) -> None:
    auth = auth_of(
        {
            "type": "hmac",
            "header": "X-Sig",
            "secret": "$Secret$",
            "string_to_sign": template,
            "timestamp_header": "X-Ts",
            "nonce_header": "X-Nonce",
        }
    )
    request = SignedRequest(method="POST", url="https://h/p?q", headers=tuple(headers), body=body)
    with contextlib.suppress(WebhookAuthFailed):
        verify_webhook(auth, SECRET, request, now=now)


# --- msgbridge check ---------------------------------------------------------------------------


def definition_with(webhook_auth: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "integrations" / "sinch_sms.json").read_text())
    doc["WebhookAuth"] = dict(webhook_auth)
    return doc


def problems(webhook_auth: Mapping[str, Any]) -> list[str]:
    return [
        f"{p.severity} {p.pointer}: {p.message}"
        for p in check_definition(definition_with(webhook_auth))
    ]


BASE = {
    "type": "hmac",
    "header": "X-Sig",
    "secret": "$Callback secret$",
    "encoding": "base64",
}


def test_check_accepts_the_documented_parts() -> None:
    template = "$method$ $url$ $base_url$ $timestamp$ $nonce$ $header:X-A$ $$ $body$"
    spec = {**BASE, "string_to_sign": template, "timestamp_header": "T", "nonce_header": "N"}
    assert problems(spec) == []


def test_check_takes_url_sorted_params_as_covering_the_body() -> None:
    # Plivo V3 signs the form body's parameters inside $url_sorted_params$: no warning.
    spec = {**BASE, "string_to_sign": "$url_sorted_params$.$nonce$", "nonce_header": "N"}
    assert problems(spec) == []
    assert problems({**BASE, "string_to_sign": "$url_sorted_param$.$nonce$", "nonce_header": "N"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"string_to_sign": "$bdy$"},
            [
                "error /WebhookAuth/string_to_sign: unknown part $bdy$ in string_to_sign (did you "
                'mean "$body$"?): the parts are $body$, $url$, $base_url$, $method$, $path$, '
                "$timestamp$, $nonce$, $url_sorted_params$ and $header:Name$",
                "warning /WebhookAuth/string_to_sign: string_to_sign includes neither $body$ nor "
                "$url_sorted_params$: a changed body would still pass",
            ],
        ),
        (
            {"string_to_sign": "$timestamp$.$nonce$.$body$"},
            [
                "error /WebhookAuth/string_to_sign: $timestamp$ needs timestamp_header, the "
                "header that carries it",
                "error /WebhookAuth/string_to_sign: $nonce$ needs nonce_header, the header that "
                "carries it",
            ],
        ),
        (
            {"string_to_sign": "$header:X Y$$body$"},
            [
                "error /WebhookAuth/string_to_sign: $header:X Y$ does not name a header: write "
                "$header:Name$, where an HTTP header name is made of letters, digits and "
                "!#$%&'*+.^_`|~- only"
            ],
        ),
        (
            {"string_to_sign": "$body$", "signed": "body"},
            [
                "error /WebhookAuth/signed: signed and string_to_sign both say what is signed; "
                "keep one"
            ],
        ),
        (
            {"string_to_sign": "$body?$"},
            ["error /WebhookAuth/string_to_sign: $body?$: no part of a signed string is optional"],
        ),
        (
            {"string_to_sign": "costs $5 $body$"},
            [
                "error /WebhookAuth/string_to_sign: a $ in string_to_sign opens no placeholder; "
                "write $$ for a dollar sign",
                "error /WebhookAuth/string_to_sign: unknown part $5 $ in string_to_sign: the "
                "parts are $body$, $url$, $base_url$, $method$, $path$, $timestamp$, $nonce$, "
                "$url_sorted_params$ and $header:Name$",
                "warning /WebhookAuth/string_to_sign: string_to_sign includes neither $body$ nor "
                "$url_sorted_params$: a changed body would still pass",
            ],
        ),
        (
            {"string_to_sign": ""},
            ["error /WebhookAuth/string_to_sign: string_to_sign must not be empty"],
        ),
    ],
)
def test_check_refuses_misuse(spec: dict[str, Any], expected: list[str]) -> None:
    assert problems({**BASE, **spec}) == expected


def test_a_secret_naming_a_property_that_does_not_exist_is_an_error() -> None:
    found = problems({**BASE, "secret": "$Callback secrt$", "string_to_sign": "$body$"})
    unknown = "error /WebhookAuth/secret: unknown placeholder $Callback secrt$"
    assert any(p.startswith(unknown) for p in found), found


def test_the_sinch_vector_is_reproduced_independently() -> None:
    headers = dict(SINCH["request"]["headers"])
    message = (
        SINCH["request"]["body"]
        + "."
        + headers["x-sinch-webhook-signature-nonce"]
        + "."
        + headers["x-sinch-webhook-signature-timestamp"]
    )
    key = SINCH["properties"]["Callback secret"].encode()
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(digest).decode() == headers["x-sinch-webhook-signature"]

"""(ext) ``token`` (docs/format.md, "WebhookAuth"): a static shared secret in a header or a body
field, compared in constant time — the providers' documented examples (Telerivet through the
shipped definition, Pinnacle's header), the refusals it owes, robustness against hostile bodies,
and the ``msgbridge check`` rules for its misuse.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.engine import WebhookAuth, check_definition, freeze, load_definition
from server.security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    v["name"].split(":")[0]: v
    for v in json.loads(
        (ROOT / "tests/fixtures/webhook_auth/static_token_examples.json").read_text("utf-8")
    )["vectors"]
}
TELERIVET = EXAMPLES["Telerivet"]
PINNACLE = EXAMPLES["Pinnacle"]
NOW = 1_700_000_000.0
SECRET = {"Secret": "s3cr3t-token"}


def auth_of(spec: Mapping[str, Any]) -> WebhookAuth:
    options = freeze({k: v for k, v in spec.items() if k != "type"})
    assert isinstance(options, Mapping)
    return WebhookAuth(type=spec["type"], options=MappingProxyType(dict(options)))


def request_of(spec: Mapping[str, Any], **changes: Any) -> SignedRequest:
    fields = {
        "method": spec["method"],
        "url": spec["url"],
        "headers": tuple((k, v) for k, v in spec["headers"]),
        "body": spec["body"].encode(),
        **changes,
    }
    return SignedRequest(**fields)


def refused(auth: WebhookAuth, properties: Mapping[str, str], request: SignedRequest) -> str:
    with pytest.raises(WebhookAuthFailed) as failure:
        verify_webhook(auth, properties, request, now=NOW)
    for value in properties.values():
        assert not value or value not in failure.value.reason
    return failure.value.reason


def telerivet_auth() -> WebhookAuth:
    definition = load_definition((ROOT / TELERIVET["definition"]).read_bytes())
    assert definition.webhook_auth is not None
    return definition.webhook_auth


# --- the providers' examples -----------------------------------------------------------------


def test_telerivet_secret_parameter_passes_through_the_definition() -> None:
    request = request_of(TELERIVET["request"])
    verify_webhook(telerivet_auth(), TELERIVET["properties"], request, now=NOW)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("event=incoming_message&content=Hi", "the body has no token field"),
        ("event=incoming_message&secret=wrong", "the token does not match"),
        ("secret=Zq8vT3nR5wY1kL7pB2xM&secret=x", "the body's token field appears more than once"),
        ("secret=", "the token does not match"),
        ("secret=Zq8vT3nR5wY1kL7pB2xm", "the token does not match"),
    ],
)
def test_telerivet_refuses_a_missing_wrong_or_repeated_secret(body: str, reason: str) -> None:
    request = request_of(TELERIVET["request"], body=body.encode())
    assert refused(telerivet_auth(), TELERIVET["properties"], request) == reason


def test_pinnacle_header_passes_and_is_compared_exactly() -> None:
    auth = auth_of(PINNACLE["webhook_auth"])
    verify_webhook(auth, PINNACLE["properties"], request_of(PINNACLE["request"]), now=NOW)
    other = request_of(
        PINNACLE["request"], headers=(("PINNACLE-SIGNING-SECRET", "pss-4f1c9b7e2a6d8c3b5e0F"),)
    )
    assert refused(auth, PINNACLE["properties"], other) == "the token does not match"
    gone = request_of(PINNACLE["request"], headers=())
    assert refused(auth, PINNACLE["properties"], gone) == (
        "the PINNACLE-SIGNING-SECRET header is missing"
    )


# --- header and prefix ------------------------------------------------------------------------


def header_request(*headers: tuple[str, str]) -> SignedRequest:
    return SignedRequest(method="POST", url="https://h/", headers=headers, body=b"{}")


def test_a_prefix_is_matched_in_any_case_and_required() -> None:
    auth = auth_of(
        {"type": "token", "token": "$Secret$", "header": "Authorization", "prefix": "Bearer "}
    )
    verify_webhook(auth, SECRET, header_request(("authorization", "Bearer s3cr3t-token")), now=NOW)
    verify_webhook(auth, SECRET, header_request(("Authorization", "bearer s3cr3t-token")), now=NOW)
    assert refused(auth, SECRET, header_request(("Authorization", "s3cr3t-token"))) == (
        "the Authorization header does not start with Bearer"
    )
    twice = header_request(("Authorization", "Bearer a"), ("Authorization", "Bearer b"))
    assert refused(auth, SECRET, twice) == "the Authorization header appears more than once"


def test_an_empty_configured_token_is_never_accepted() -> None:
    auth = auth_of({"type": "token", "token": "$Secret$", "header": "X-Token"})
    assert refused(auth, {"Secret": ""}, header_request(("X-Token", "x"))) == (
        "no secret configured"
    )


# --- JSON fields ------------------------------------------------------------------------------


def json_request(body: bytes, content_type: str = "application/json") -> SignedRequest:
    return SignedRequest(
        method="POST", url="https://h/", headers=(("Content-Type", content_type),), body=body
    )


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("/secret", {"secret": "s3cr3t-token"}),
        ("/auth/key", {"auth": {"key": "s3cr3t-token"}}),
        ("/a~1b/0", {"a/b": ["s3cr3t-token"]}),
        ("/t~0k", {"t~k": "s3cr3t-token"}),
    ],
)
def test_a_json_pointer_finds_the_token(field: str, body: dict[str, Any]) -> None:
    auth = auth_of({"type": "token", "token": "$Secret$", "field": field})
    verify_webhook(auth, SECRET, json_request(json.dumps(body).encode()), now=NOW)
    # a JSON body is recognised without its media type too
    verify_webhook(auth, SECRET, json_request(json.dumps(body).encode(), ""), now=NOW)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"secret": 5}', "the body's token field is not text"),
        (b'{"secret": null}', "the body's token field is not text"),
        (b'{"other": "s3cr3t-token"}', "the body has no token field"),
        (b'["s3cr3t-token"]', "the body has no token field"),
        (b'{"secret": "s3cr3t-token"', "the body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not valid JSON"),
        (b'{"secret": "\xff"}', "the body is not valid JSON"),
    ],
)
def test_json_bodies_without_the_token_are_refused_never_raised(body: bytes, reason: str) -> None:
    auth = auth_of({"type": "token", "token": "$Secret$", "field": "/secret"})
    assert refused(auth, SECRET, json_request(body)) == reason


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", ""]),
    field=st.sampled_from(["/secret", "/a/0", "/", "secret", "/~2"]),
)
def test_any_body_gives_a_verdict_never_a_crash(body: bytes, content_type: str, field: str) -> None:
    auth = auth_of({"type": "token", "token": "$Secret$", "field": field})
    with contextlib.suppress(WebhookAuthFailed):
        verify_webhook(auth, SECRET, json_request(body, content_type), now=NOW)


# --- msgbridge check --------------------------------------------------------------------------


def problems(webhook_auth: Mapping[str, Any]) -> list[str]:
    doc: dict[str, Any] = json.loads((ROOT / "integrations/telerivet.json").read_text("utf-8"))
    doc["WebhookAuth"] = dict(webhook_auth)
    return [
        f"{p.severity} {p.pointer}: {p.message}"
        for p in check_definition(doc)
        if p.pointer.startswith("/WebhookAuth")
    ]


BASE = {"type": "token", "token": "$Webhook secret$"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"field": "/secret"}, []),
        ({"header": "X-Token", "prefix": "Bearer "}, []),
        (
            {},
            ["error /WebhookAuth: a token needs header or field: where the provider puts it"],
        ),
        (
            {"header": "X-Token", "field": "/secret"},
            [
                "error /WebhookAuth/field: a token is in a header or in a body field, not both; "
                "keep one"
            ],
        ),
        (
            {"field": "/secret", "prefix": "Bearer "},
            [
                "error /WebhookAuth/prefix: prefix is text before the token in its header, so it "
                "needs header"
            ],
        ),
        (
            {"field": "secret"},
            [
                "error /WebhookAuth/field: field must be a JSON Pointer to the token in the body, "
                'such as "/secret": it starts with "/", and a ~ or / inside a key is written ~0 '
                'or ~1 ("secret" given)'
            ],
        ),
        (
            {"field": "/secret", "token": "$Webhook secrt$"},
            [
                "error /WebhookAuth/token: unknown placeholder $Webhook secrt$: only properties "
                'can be used in WebhookAuth, and there is no "Webhook secrt" (did you mean '
                "$Webhook secret$?)"
            ],
        ),
    ],
)
def test_check_refuses_misuse(spec: dict[str, Any], expected: list[str]) -> None:
    assert problems({**BASE, **spec}) == expected

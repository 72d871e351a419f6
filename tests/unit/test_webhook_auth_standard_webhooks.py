"""(ext) Standard Webhooks as an ``hmac`` (docs/format.md, "WebhookAuth"): ``secret_encoding``
``base64`` with its ``whsec_`` prefix, ``string_to_sign`` with the ``webhook-id`` header, and the
space-separated ``v1,<sig>`` entries — checked against the reference library's published vector
through the shipped Surge definition, with the refusals the library's own tests make.

The fixture names the page each value comes from; signatures made here are computed
independently of server/security/webhook_auth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from server.engine import WebhookAuth, check_definition, load_definition
from server.security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook

ROOT = Path(__file__).resolve().parents[2]
VECTOR: dict[str, Any] = json.loads(
    (ROOT / "tests/fixtures/webhook_auth/standard_webhooks_reference.json").read_text("utf-8")
)
NOW = float(VECTOR["now"])
PROPERTIES: dict[str, str] = VECTOR["properties"]


def surge_auth() -> WebhookAuth:
    definition = load_definition((ROOT / VECTOR["definition"]).read_bytes())
    assert definition.webhook_auth is not None
    return definition.webhook_auth


def request(**headers: str | None) -> SignedRequest:
    """The vector's request with headers replaced (``name=value``) or removed (``None``);
    underscores in a keyword stand for dashes."""
    changes = {name.replace("_", "-"): value for name, value in headers.items()}
    kept = [(k, v) for k, v in VECTOR["request"]["headers"] if k not in changes]
    kept += [(k, v) for k, v in changes.items() if v is not None]
    return SignedRequest(
        method="POST",
        url=VECTOR["request"]["url"],
        headers=tuple(kept),
        body=VECTOR["request"]["body"].encode(),
    )


def refused(
    req: SignedRequest, *, now: float = NOW, properties: dict[str, str] | None = None
) -> str:
    with pytest.raises(WebhookAuthFailed) as failure:
        verify_webhook(surge_auth(), properties or PROPERTIES, req, now=now)
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in failure.value.reason
    return failure.value.reason


SIGNATURE = dict(VECTOR["request"]["headers"])["webhook-signature"]


def test_the_reference_vector_passes_through_the_surge_definition() -> None:
    verify_webhook(surge_auth(), PROPERTIES, request(), now=NOW)


def test_the_secret_works_with_or_without_its_whsec_prefix() -> None:
    bare = {"Webhook secret": PROPERTIES["Webhook secret"].removeprefix("whsec_")}
    verify_webhook(surge_auth(), bare, request(), now=NOW)


def test_one_matching_entry_among_several_is_enough_and_other_versions_are_ignored() -> None:
    decoys = VECTOR["multi_signature_decoys"]
    value = " ".join([*decoys, SIGNATURE, decoys[0]])
    verify_webhook(surge_auth(), PROPERTIES, request(webhook_signature=value), now=NOW)
    # the right signature under another version is not a v1 signature
    other_version = "v2," + SIGNATURE.removeprefix("v1,")
    assert refused(request(webhook_signature=other_version)) == "the signature does not match"
    assert refused(request(webhook_signature=" ".join(decoys))) == "the signature does not match"


def test_the_library_s_refusals() -> None:
    assert refused(request(webhook_signature=VECTOR["invalid_signature"])) == (
        "the signature does not match"
    )
    assert refused(request(webhook_id=None)) == "the webhook-id header is missing"
    assert refused(request(webhook_timestamp=None)) == "the webhook-timestamp header is missing"
    assert refused(request(webhook_signature=None)) == "the webhook-signature header is missing"
    assert refused(request(webhook_timestamp="hello")) == (
        "the timestamp is not a number of seconds"
    )


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_five_minutes_is_refused(skew: int) -> None:
    assert refused(request(), now=NOW + skew) == "the timestamp is outside the allowed window"


def test_the_id_and_timestamp_are_signed() -> None:
    assert refused(request(webhook_id="msg_other")) == "the signature does not match"
    moved = request(webhook_timestamp=str(int(NOW) + 1))
    assert refused(moved, now=NOW) == "the signature does not match"


def test_a_secret_that_is_not_base64_fails_closed() -> None:
    for value in ("whsec_", "whsec_***", "not base64!"):
        assert refused(request(), properties={"Webhook secret": value}) == (
            "the configured secret is not base64"
        )


def test_the_vector_is_reproduced_independently() -> None:
    key = base64.b64decode(PROPERTIES["Webhook secret"].removeprefix("whsec_"))
    headers = dict(VECTOR["request"]["headers"])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{VECTOR['request']['body']}"
    digest = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    assert "v1," + base64.b64encode(digest).decode() == SIGNATURE


def test_utf8_secrets_are_unchanged_by_default() -> None:
    auth = WebhookAuth(
        type="hmac",
        options={"header": "X-Sig", "secret": "$S$", "string_to_sign": "$body$"},
    )
    body = b"{}"
    digest = hmac.new(b"whsec_abc", body, hashlib.sha256).hexdigest()
    signed = SignedRequest(method="POST", url="https://h/", headers=(("X-Sig", digest),), body=body)
    verify_webhook(auth, {"S": "whsec_abc"}, signed, now=NOW)


def test_check_refuses_signing_the_signature_header_and_an_unknown_encoding() -> None:
    doc = json.loads((ROOT / VECTOR["definition"]).read_text("utf-8"))
    doc["WebhookAuth"]["string_to_sign"] = "$header:Webhook-Signature$.$body$"
    doc["WebhookAuth"]["secret_encoding"] = "hex"
    found = [
        f"{p.severity} {p.pointer}: {p.message}"
        for p in check_definition(doc)
        if p.pointer.startswith("/WebhookAuth")
    ]
    assert found == [
        'error /WebhookAuth/secret_encoding: secret_encoding must be "utf8" or "base64", not "hex"',
        "error /WebhookAuth/string_to_sign: $header:Webhook-Signature$ is the header that "
        "carries the signature, which cannot sign itself",
    ], found

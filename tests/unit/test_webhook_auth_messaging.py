"""(ext) The messaging platforms' webhook signatures are WebhookAuth as it is (docs/format.md,
"WebhookAuth", its list of messaging platforms): each signature is computed here the way the
platform documents it, independently of the verifier, and must pass; a changed body, another
secret or a missing header must not.

- Meta (WhatsApp Cloud API, Messenger, Instagram): ``X-Hub-Signature-256: sha256=<hex>``, the
  HMAC-SHA256 of the body with the app secret.
- Telegram Bot API: ``X-Telegram-Bot-Api-Secret-Token``, the ``secret_token`` given to
  ``setWebhook``, as it is.
- Viber: ``X-Viber-Content-Signature``, the hex HMAC-SHA256 of the body with the bot's auth token.
- LINE Messaging API: ``x-line-signature``, the base64 HMAC-SHA256 of the body with the channel
  secret.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.engine import check_definition, load_definition
from server.security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook

TEMPLATE = Path(__file__).parents[2] / "integrations" / "template.json"
NOW = 1_700_000_000.0
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
OTHER = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
URL = "https://hooks.example.com/webhooks/m/abc"
BODY = json.dumps(
    {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": []}], "text": "é"},
    ensure_ascii=False,
).encode()


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _meta(secret: str, body: bytes) -> str:
    return "sha256=" + _hex(secret, body)


def _telegram(secret: str, body: bytes) -> str:
    return secret  # nothing is signed: the token itself


def _line(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# platform: (the WebhookAuth docs/format.md lists, its header, how the platform signs)
PLATFORMS: dict[str, tuple[dict[str, Any], str, Callable[[str, bytes], str]]] = {
    "meta": (
        {
            "type": "hmac",
            "header": "X-Hub-Signature-256",
            "prefix": "sha256=",
            "secret": "$Secret$",
        },
        "X-Hub-Signature-256",
        _meta,
    ),
    "telegram": (
        {"type": "token", "header": "X-Telegram-Bot-Api-Secret-Token", "token": "$Secret$"},
        "X-Telegram-Bot-Api-Secret-Token",
        _telegram,
    ),
    "viber": (
        {"type": "hmac", "header": "X-Viber-Content-Signature", "secret": "$Secret$"},
        "X-Viber-Content-Signature",
        _hex,
    ),
    "line": (
        {"type": "hmac", "header": "x-line-signature", "encoding": "base64", "secret": "$Secret$"},
        "x-line-signature",
        _line,
    ),
}


def _auth(platform: str) -> Any:
    doc: dict[str, Any] = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    doc["properties"] = [*doc["properties"], "Secret"]
    doc["WebhookAuth"] = PLATFORMS[platform][0]
    assert [p for p in check_definition(doc) if p.severity == "error"] == []
    auth = load_definition(doc).webhook_auth
    assert auth is not None
    return auth


def _request(header: str, value: str | None, body: bytes = BODY) -> SignedRequest:
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    if value is not None:
        headers += ((header, value),)
    return SignedRequest(method="POST", url=URL, headers=headers, body=body)


def _verify(platform: str, request: SignedRequest, secret: str = SECRET) -> None:
    verify_webhook(_auth(platform), {"API key": "k", "Secret": secret}, request, now=NOW)


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_platforms_own_signature_passes(platform: str) -> None:
    _, header, sign = PLATFORMS[platform]
    _verify(platform, _request(header, sign(SECRET, BODY)))
    # header names ignore case, as HTTP says
    _verify(platform, _request(header.upper(), sign(SECRET, BODY)))


@pytest.mark.parametrize("platform", sorted(set(PLATFORMS) - {"telegram"}))
def test_a_changed_body_is_refused(platform: str) -> None:
    _, header, sign = PLATFORMS[platform]
    with pytest.raises(WebhookAuthFailed):
        _verify(platform, _request(header, sign(SECRET, BODY), body=BODY + b" "))


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_another_secret_is_refused(platform: str) -> None:
    _, header, sign = PLATFORMS[platform]
    with pytest.raises(WebhookAuthFailed) as failure:
        _verify(platform, _request(header, sign(SECRET, BODY)), secret=OTHER)
    assert SECRET not in failure.value.reason and OTHER not in failure.value.reason


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_a_missing_header_is_refused(platform: str) -> None:
    _, header, _ = PLATFORMS[platform]
    with pytest.raises(WebhookAuthFailed):
        _verify(platform, _request(header, None))


def test_meta_signature_without_its_prefix_or_in_base64_is_refused() -> None:
    _, header, _ = PLATFORMS["meta"]
    with pytest.raises(WebhookAuthFailed):
        _verify("meta", _request(header, _hex(SECRET, BODY)))
    with pytest.raises(WebhookAuthFailed):
        _verify("meta", _request(header, "sha256=" + _line(SECRET, BODY)))


def test_line_signature_in_hex_is_refused() -> None:
    _, header, _ = PLATFORMS["line"]
    with pytest.raises(WebhookAuthFailed):
        _verify("line", _request(header, _hex(SECRET, BODY)))

"""Webhook authenticity (docs/format.md, "WebhookAuth"): known answers from the providers'
published examples, the refusals every scheme owes (tampered body, wrong key, stale timestamp,
missing header), and robustness: random requests and options never raise anything but
WebhookAuthFailed.

The fixtures in tests/fixtures/webhook_auth/ each name the page their values come from. All
signing done here is test code, written independently of server/security/webhook_auth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import OctKey

from server.engine import WebhookAuth, freeze, load_definition
from server.security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "webhook_auth"
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_700_000_000.0
FORM = "application/x-www-form-urlencoded"


# --- helpers ---------------------------------------------------------------------------------


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


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    """``request`` with headers replaced (``name=value``) or removed (``name=None``);
    underscores in the keyword stand for dashes."""
    names = {key.replace("_", "-").lower(): value for key, value in changes.items()}
    headers = [(k, v) for k, v in request.headers if k.lower() not in names]
    headers += [(k, v) for k, v in names.items() if v is not None]
    return SignedRequest(
        method=request.method, url=request.url, headers=tuple(headers), body=request.body
    )


def with_body(request: SignedRequest, body: bytes) -> SignedRequest:
    return SignedRequest(method=request.method, url=request.url, headers=request.headers, body=body)


def agrees(
    auth: WebhookAuth,
    properties: Mapping[str, str],
    request: SignedRequest,
    outcome: str,
    *,
    now: float = NOW,
) -> None:
    """``request`` is accepted when ``outcome`` is "valid", else refused; fails the test if not."""
    if outcome == "valid":
        verify_webhook(auth, properties, request, now=now)
    else:
        refused(auth, properties, request, now=now)


def refused(
    auth: WebhookAuth,
    properties: Mapping[str, str],
    request: SignedRequest,
    *,
    now: float = NOW,
) -> str:
    """The reason ``request`` is refused; fails the test when it is accepted."""
    with pytest.raises(WebhookAuthFailed) as failure:
        verify_webhook(auth, properties, request, now=now)
    reason = failure.value.reason
    assert reason and str(failure.value) == reason
    for secret in properties.values():
        if len(secret) >= 4:
            assert secret not in reason
    return reason


def hmac_signature(key: str, message: bytes, algorithm: str, encoding: str) -> str:
    digest = hmac.new(key.encode(), message, getattr(hashlib, algorithm)).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def twilio_signature(token: str, url: str, fields: list[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(fields))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def hs256_token(secret: str, claims: Mapping[str, Any], algorithm: str = "HS256") -> str:
    key = OctKey(secret.encode(), secret.encode())
    return jwt.encode({"alg": algorithm, "typ": "JWT"}, dict(claims), key, algorithms=[algorithm])


# --- HMAC: GitHub's published vector ----------------------------------------------------------

GITHUB = fixture("github_hmac_sha256.json")
GITHUB_AUTH = auth_of(GITHUB["webhook_auth"])
GITHUB_REQUEST = request_of(GITHUB["request"])


def test_github_vector_passes() -> None:
    verify_webhook(GITHUB_AUTH, GITHUB["properties"], GITHUB_REQUEST, now=NOW)


def test_github_vector_header_name_is_case_insensitive() -> None:
    signature = GITHUB["request"]["headers"][0][1]
    request = with_headers(GITHUB_REQUEST, X_Hub_Signature_256=None, x_hub_signature_256=signature)
    assert request.headers[-1][0] == "x-hub-signature-256"
    verify_webhook(GITHUB_AUTH, GITHUB["properties"], request, now=NOW)


def test_github_vector_refuses_a_tampered_body() -> None:
    reason = refused(GITHUB_AUTH, GITHUB["properties"], with_body(GITHUB_REQUEST, b"Hello, World?"))
    assert reason == "the signature does not match"


def test_github_vector_refuses_a_wrong_secret() -> None:
    refused(GITHUB_AUTH, {"Webhook secret": "It's a Secret to Nobody"}, GITHUB_REQUEST)


def test_github_vector_refuses_a_missing_header() -> None:
    request = with_headers(GITHUB_REQUEST, X_Hub_Signature_256=None)
    assert refused(GITHUB_AUTH, GITHUB["properties"], request) == (
        "the X-Hub-Signature-256 header is missing"
    )


def test_github_vector_refuses_a_signature_without_its_prefix() -> None:
    bare = GITHUB["request"]["headers"][0][1].removeprefix("sha256=")
    refused(
        GITHUB_AUTH, GITHUB["properties"], with_headers(GITHUB_REQUEST, X_Hub_Signature_256=bare)
    )


@pytest.mark.parametrize("properties", [{}, {"Webhook secret": ""}, {"Other": "x"}])
def test_a_missing_or_empty_secret_is_never_accepted(properties: dict[str, str]) -> None:
    # Even a request correctly signed with the empty key is refused.
    signature = "sha256=" + hmac_signature("", GITHUB_REQUEST.body, "sha256", "hex")
    request = with_headers(GITHUB_REQUEST, X_Hub_Signature_256=signature)
    assert refused(GITHUB_AUTH, properties, request) == "no secret configured"


# --- HMAC: every option, signed here ----------------------------------------------------------

HMAC_SECRET = "whsec-9f2c1e77a4b0"
HMAC_PROPERTIES = {"Webhook secret": HMAC_SECRET}
BODY = b'{"from":"+15551230000","to":"+15559870000","text":"hi \xc3\xa9"}'
URL = "https://gateway.example/webhooks/tok_123?x=1"


def hmac_auth(**options: Any) -> WebhookAuth:
    return auth_of(
        {"type": "hmac", "header": "X-Signature", "secret": "$Webhook secret$", **options}
    )


def hmac_request(*headers: tuple[str, str], body: bytes = BODY) -> SignedRequest:
    return SignedRequest(method="POST", url=URL, headers=headers, body=body)


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_body_for_every_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    auth = hmac_auth(algorithm=algorithm, encoding=encoding)
    good = hmac_request(("X-Signature", hmac_signature(HMAC_SECRET, BODY, algorithm, encoding)))
    verify_webhook(auth, HMAC_PROPERTIES, good, now=NOW)
    refused(auth, HMAC_PROPERTIES, with_body(good, BODY + b" "))
    refused(auth, {"Webhook secret": HMAC_SECRET + "x"}, good)
    other = "sha1" if algorithm != "sha1" else "sha256"
    wrong_algorithm = hmac_signature(HMAC_SECRET, BODY, other, encoding)
    refused(auth, HMAC_PROPERTIES, hmac_request(("X-Signature", wrong_algorithm)))


def test_hmac_defaults_are_sha256_hex_over_the_body() -> None:
    auth = hmac_auth()
    signature = hashlib.sha256  # the default algorithm, spelled out
    digest = hmac.new(HMAC_SECRET.encode(), BODY, signature).hexdigest()
    verify_webhook(auth, HMAC_PROPERTIES, hmac_request(("X-Signature", digest)), now=NOW)
    verify_webhook(auth, HMAC_PROPERTIES, hmac_request(("X-Signature", digest.upper())), now=NOW)


def test_hmac_url_body_signs_the_full_url() -> None:
    auth = hmac_auth(signed="url+body", encoding="base64")
    signature = hmac_signature(HMAC_SECRET, URL.encode() + BODY, "sha256", "base64")
    good = hmac_request(("X-Signature", signature))
    verify_webhook(auth, HMAC_PROPERTIES, good, now=NOW)
    moved = SignedRequest(method="POST", url=URL + "&y=2", headers=good.headers, body=BODY)
    refused(auth, HMAC_PROPERTIES, moved)
    refused(auth, HMAC_PROPERTIES, with_body(good, b"{}"))


def timestamp_auth(**options: Any) -> WebhookAuth:
    return hmac_auth(signed="timestamp.body", timestamp_header="X-Timestamp", **options)


def timestamped(timestamp: str, body: bytes = BODY) -> SignedRequest:
    message = timestamp.encode() + b"." + body
    signature = hmac_signature(HMAC_SECRET, message, "sha256", "hex")
    return hmac_request(("X-Signature", signature), ("X-Timestamp", timestamp), body=body)


def test_hmac_timestamp_body_passes_within_the_window() -> None:
    auth = timestamp_auth()
    for skew in (0, 299, -299):
        verify_webhook(auth, HMAC_PROPERTIES, timestamped(str(int(NOW) + skew)), now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_hmac_timestamp_body_refuses_a_stale_or_future_timestamp(skew: int) -> None:
    reason = refused(timestamp_auth(), HMAC_PROPERTIES, timestamped(str(int(NOW) - skew)))
    assert reason == "the timestamp is outside the allowed window"


def test_hmac_timestamp_is_part_of_what_is_signed() -> None:
    good = timestamped(str(int(NOW)))
    replayed = with_headers(good, X_Timestamp=str(int(NOW) + 1))
    assert refused(timestamp_auth(), HMAC_PROPERTIES, replayed) == "the signature does not match"


def test_hmac_tolerance_is_configurable() -> None:
    auth = timestamp_auth(tolerance_s=10)
    verify_webhook(auth, HMAC_PROPERTIES, timestamped(str(int(NOW) - 10)), now=NOW)
    refused(auth, HMAC_PROPERTIES, timestamped(str(int(NOW) - 11)))


def test_hmac_timestamp_in_milliseconds() -> None:
    millis = str(int(NOW) * 1000 - 5_000)
    verify_webhook(timestamp_auth(), HMAC_PROPERTIES, timestamped(millis), now=NOW)
    refused(timestamp_auth(), HMAC_PROPERTIES, timestamped(str(int(NOW) * 1000 - 400_000)))


@pytest.mark.parametrize("value", ["", "abc", "-5", "1e9", "NaN", "12 34"])
def test_hmac_timestamp_must_be_a_number(value: str) -> None:
    refused(timestamp_auth(), HMAC_PROPERTIES, timestamped(value))


def test_hmac_timestamp_header_missing_or_repeated() -> None:
    good = timestamped(str(int(NOW)))
    assert refused(timestamp_auth(), HMAC_PROPERTIES, with_headers(good, X_Timestamp=None)) == (
        "the X-Timestamp header is missing"
    )
    twice = SignedRequest(
        method="POST", url=URL, headers=(*good.headers, ("x-timestamp", "1")), body=BODY
    )
    refused(timestamp_auth(), HMAC_PROPERTIES, twice)


def test_hmac_url_nonce() -> None:
    # What is signed is the URL without its query (Plivo's "base URI"), then the nonce.
    auth = hmac_auth(signed="url+nonce", nonce_header="X-Nonce", encoding="base64")
    base = URL.split("?")[0].encode()
    signature = hmac_signature(HMAC_SECRET, base + b"n-12345", "sha256", "base64")
    good = hmac_request(("X-Signature", signature), ("X-Nonce", "n-12345"))
    verify_webhook(auth, HMAC_PROPERTIES, good, now=NOW)
    refused(auth, HMAC_PROPERTIES, with_headers(good, X_Nonce="n-12346"))
    moved = SignedRequest(
        method="POST", url=URL.replace("tok_123", "tok_124"), headers=good.headers, body=BODY
    )
    refused(auth, HMAC_PROPERTIES, moved)
    assert refused(auth, HMAC_PROPERTIES, with_headers(good, X_Nonce=None)) == (
        "the X-Nonce header is missing"
    )


def test_hmac_url_nonce_signs_the_url_without_its_query_as_plivo_does() -> None:
    # Plivo's X-Plivo-Signature-V2 signs the "base URI" then the nonce; its SDKs (python
    # validate_signature, node validateSignature, java computeSignature) drop the query, which
    # a GET callback fills with its parameters. Signed here as those SDKs sign.
    auth = hmac_auth(signed="url+nonce", nonce_header="X-Nonce", encoding="base64")
    base = "https://gateway.example/webhooks/plivo/tok_123"
    url = base + "?From=15551230000&To=15559870000&Text=hi"
    signature = hmac_signature(HMAC_SECRET, base.encode() + b"n-1", "sha256", "base64")
    headers = (("X-Signature", signature), ("X-Nonce", "n-1"))
    for called in (url, base, base + "#frag"):
        request = SignedRequest(method="GET", url=called, headers=headers, body=b"")
        verify_webhook(auth, HMAC_PROPERTIES, request, now=NOW)
    # A signature over the URL with its query is not what Plivo sends: refused.
    with_query = hmac_signature(HMAC_SECRET, url.encode() + b"n-1", "sha256", "base64")
    request = SignedRequest(
        method="GET", url=url, headers=(("X-Signature", with_query), ("X-Nonce", "n-1")), body=b""
    )
    assert refused(auth, HMAC_PROPERTIES, request) == "the signature does not match"
    other_path = SignedRequest(method="GET", url=base + "x?a=1", headers=headers, body=b"")
    refused(auth, HMAC_PROPERTIES, other_path)


def test_hmac_several_signatures_pass_when_any_matches() -> None:
    auth = hmac_auth(prefix="v1=")
    good = hmac_signature(HMAC_SECRET, BODY, "sha256", "hex")
    stale = hmac_signature("an-old-secret", BODY, "sha256", "hex")
    for header in (f"v1={stale}, v1={good}", f"v1={good} v1={stale}", f"t=1,v1={good}"):
        verify_webhook(auth, HMAC_PROPERTIES, hmac_request(("X-Signature", header)), now=NOW)
    refused(auth, HMAC_PROPERTIES, hmac_request(("X-Signature", f"v1={stale}, v0={good}")))
    # Two header lines count as two signatures too.
    two_lines = hmac_request(("X-Signature", f"v1={stale}"), ("X-Signature", f"v1={good}"))
    verify_webhook(auth, HMAC_PROPERTIES, two_lines, now=NOW)


@pytest.mark.parametrize("value", ["", "   ", "zz", "sha256=", "==", "\u00e9\u00e9"])
def test_hmac_malformed_signatures_are_refused(value: str) -> None:
    refused(hmac_auth(), HMAC_PROPERTIES, hmac_request(("X-Signature", value)))


def test_hmac_secret_renders_a_template_with_literal_text() -> None:
    auth = hmac_auth(secret="k-$Webhook secret$-$$")
    key = f"k-{HMAC_SECRET}-$"
    request = hmac_request(("X-Signature", hmac_signature(key, BODY, "sha256", "hex")))
    verify_webhook(auth, HMAC_PROPERTIES, request, now=NOW)
    refused(auth, {"Webhook secret": "other"}, request)


# --- Twilio: published vectors ----------------------------------------------------------------

TWILIO_DOCS = fixture("twilio_docs_form.json")
TWILIO_AUTH = auth_of(TWILIO_DOCS["webhook_auth"])
TWILIO_REQUEST = request_of(TWILIO_DOCS["request"])
TWILIO_PROPERTIES: dict[str, str] = TWILIO_DOCS["properties"]
TWILIO_SDK = fixture("twilio_python_sdk.json")


def test_twilio_docs_vector_passes() -> None:
    verify_webhook(TWILIO_AUTH, TWILIO_PROPERTIES, TWILIO_REQUEST, now=NOW)


def test_twilio_docs_vector_refuses_a_tampered_body() -> None:
    tampered = TWILIO_REQUEST.body.replace(b"Digits=1234", b"Digits=9999")
    reason = refused(TWILIO_AUTH, TWILIO_PROPERTIES, with_body(TWILIO_REQUEST, tampered))
    assert reason == "the signature does not match"
    added = with_body(TWILIO_REQUEST, TWILIO_REQUEST.body + b"&Extra=1")
    refused(TWILIO_AUTH, TWILIO_PROPERTIES, added)


def test_twilio_docs_vector_refuses_a_wrong_token_or_url() -> None:
    refused(TWILIO_AUTH, {"Auth Token": "54321"}, TWILIO_REQUEST)
    moved = SignedRequest(
        method="POST",
        url=TWILIO_REQUEST.url.replace("foo=1", "foo=2"),
        headers=TWILIO_REQUEST.headers,
        body=TWILIO_REQUEST.body,
    )
    refused(TWILIO_AUTH, TWILIO_PROPERTIES, moved)


def test_twilio_docs_vector_refuses_a_missing_header() -> None:
    request = with_headers(TWILIO_REQUEST, X_Twilio_Signature=None)
    assert refused(TWILIO_AUTH, TWILIO_PROPERTIES, request) == (
        "the X-Twilio-Signature header is missing"
    )


def test_twilio_docs_vector_refuses_a_body_that_is_not_a_form() -> None:
    request = with_headers(TWILIO_REQUEST, Content_Type="text/plain")
    refused(TWILIO_AUTH, TWILIO_PROPERTIES, request)


@pytest.mark.parametrize("vector", TWILIO_SDK["vectors"], ids=lambda v: v["name"])
def test_twilio_sdk_vectors_pass(vector: dict[str, str]) -> None:
    request = SignedRequest(
        method="POST",
        url=vector["url"],
        headers=(
            ("Content-Type", vector["content_type"]),
            ("X-Twilio-Signature", vector["signature"]),
        ),
        body=vector["body"].encode(),
    )
    auth = auth_of(TWILIO_SDK["webhook_auth"])
    verify_webhook(auth, TWILIO_SDK["properties"], request, now=NOW)
    refused(auth, {"Auth Token": "1234"}, request)


def test_twilio_json_body_must_match_its_body_hash() -> None:
    vector = next(v for v in TWILIO_SDK["vectors"] if "bodySHA256" in v["url"])
    request = SignedRequest(
        method="POST",
        url=vector["url"],
        headers=(("Content-Type", "application/json"), ("X-Twilio-Signature", vector["signature"])),
        body=vector["body"].replace("value", "VALUE").encode(),
    )
    reason = refused(auth_of(TWILIO_SDK["webhook_auth"]), TWILIO_SDK["properties"], request)
    assert reason == "the body does not match the bodySHA256 in the URL"


def test_twilio_json_body_without_a_hash_is_not_covered_so_refused() -> None:
    url = "https://gateway.example/webhooks/twilio"
    signature = twilio_signature("12345", url, [])
    request = SignedRequest(
        method="POST",
        url=url,
        headers=(("Content-Type", "application/json"), ("X-Twilio-Signature", signature)),
        body=b'{"MessageSid":"SM1"}',
    )
    refused(TWILIO_AUTH, TWILIO_PROPERTIES, request)


def test_twilio_get_without_body_signs_the_url() -> None:
    url = "https://gateway.example/webhooks/twilio?MessageSid=SM1&From=%2B15551230000"
    signature = twilio_signature("12345", url, [])
    request = SignedRequest(
        method="GET", url=url, headers=(("X-Twilio-Signature", signature),), body=b""
    )
    verify_webhook(TWILIO_AUTH, TWILIO_PROPERTIES, request, now=NOW)


def test_twilio_compatible_provider_names_its_header() -> None:
    auth = auth_of(
        {"type": "twilio", "auth_token": "$Auth Token$", "header": "X-SignalWire-Signature"}
    )
    signature = TWILIO_DOCS["request"]["headers"][1][1]
    request = with_headers(
        TWILIO_REQUEST, X_Twilio_Signature=None, X_SignalWire_Signature=signature
    )
    verify_webhook(auth, TWILIO_PROPERTIES, request, now=NOW)
    refused(auth, TWILIO_PROPERTIES, TWILIO_REQUEST)


NO_SURROGATES = st.characters(exclude_categories=["Cs"])
FIELD_TEXT = st.text(alphabet=NO_SURROGATES, max_size=20)


@SETTINGS
@given(
    fields=st.lists(st.tuples(FIELD_TEXT.filter(bool), FIELD_TEXT), max_size=8),
    token=st.text(alphabet=NO_SURROGATES, min_size=1, max_size=40),
)
def test_twilio_any_form_signed_as_documented_passes(
    fields: list[tuple[str, str]], token: str
) -> None:
    url = "https://gateway.example/webhooks/t?x=1"
    body = urlencode(fields).encode()
    request = SignedRequest(
        method="POST",
        url=url,
        headers=(
            ("Content-Type", FORM),
            ("X-Twilio-Signature", twilio_signature(token, url, fields)),
        ),
        body=body,
    )
    verify_webhook(TWILIO_AUTH, {"Auth Token": token}, request, now=NOW)


# --- Ed25519 (Telnyx): a generated vector -----------------------------------------------------

TELNYX = fixture("telnyx_ed25519_generated.json")
TELNYX_AUTH = auth_of(TELNYX["webhook_auth"])
TELNYX_REQUEST = request_of(TELNYX["request"])
TELNYX_PROPERTIES: dict[str, str] = TELNYX["properties"]
TELNYX_NOW = float(TELNYX["timestamp"])
TELNYX_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(TELNYX["private_key_hex"]))


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def telnyx_signed(key: Ed25519PrivateKey, timestamp: str, body: bytes) -> SignedRequest:
    signature = base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()
    return SignedRequest(
        method="POST",
        url=TELNYX_REQUEST.url,
        headers=(("telnyx-signature-ed25519", signature), ("telnyx-timestamp", timestamp)),
        body=body,
    )


def test_telnyx_vector_is_reproducible_from_its_documented_key() -> None:
    public = raw_public(TELNYX_KEY)
    assert public.hex() == TELNYX["public_key_hex"]
    assert base64.b64encode(public).decode() == TELNYX_PROPERTIES["Public key"]
    again = telnyx_signed(TELNYX_KEY, str(TELNYX["timestamp"]), TELNYX_REQUEST.body)
    assert (
        dict(again.headers)["telnyx-signature-ed25519"]
        == dict(TELNYX_REQUEST.headers)["telnyx-signature-ed25519"]
    )


def test_telnyx_vector_passes() -> None:
    verify_webhook(TELNYX_AUTH, TELNYX_PROPERTIES, TELNYX_REQUEST, now=TELNYX_NOW + 120)


def test_telnyx_vector_refuses_a_tampered_body() -> None:
    tampered = with_body(TELNYX_REQUEST, TELNYX_REQUEST.body.replace(b"Hello", b"Hallo"))
    reason = refused(TELNYX_AUTH, TELNYX_PROPERTIES, tampered, now=TELNYX_NOW)
    assert reason == "the signature does not match"


def test_telnyx_vector_refuses_a_wrong_key() -> None:
    # RFC 8032 section 7.1 TEST 2's public key: a valid Ed25519 key, but not the signer's.
    other = base64.b64encode(
        bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    ).decode()
    refused(TELNYX_AUTH, {"Public key": other}, TELNYX_REQUEST, now=TELNYX_NOW)


@pytest.mark.parametrize("offset", [301, -301, 3600])
def test_telnyx_vector_refuses_a_stale_timestamp(offset: int) -> None:
    reason = refused(TELNYX_AUTH, TELNYX_PROPERTIES, TELNYX_REQUEST, now=TELNYX_NOW + offset)
    assert reason == "the timestamp is outside the allowed window"


def test_telnyx_vector_refuses_a_moved_timestamp() -> None:
    moved = with_headers(TELNYX_REQUEST, telnyx_timestamp=str(TELNYX["timestamp"] + 1))
    refused(TELNYX_AUTH, TELNYX_PROPERTIES, moved, now=TELNYX_NOW)


@pytest.mark.parametrize("header", ["telnyx-signature-ed25519", "telnyx-timestamp"])
def test_telnyx_vector_refuses_a_missing_header(header: str) -> None:
    request = with_headers(TELNYX_REQUEST, **{header.replace("-", "_"): None})
    assert refused(TELNYX_AUTH, TELNYX_PROPERTIES, request, now=TELNYX_NOW) == (
        f"the {header} header is missing"
    )


def test_ed25519_accepts_pem_and_hex_public_keys() -> None:
    pem = TELNYX_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for key in (pem.decode(), TELNYX["public_key_hex"]):
        verify_webhook(TELNYX_AUTH, {"Public key": key}, TELNYX_REQUEST, now=TELNYX_NOW)


@pytest.mark.parametrize("key", ["not a key", "AAAA", base64.b64encode(b"\x00" * 31).decode()])
def test_ed25519_refuses_an_unusable_public_key(key: str) -> None:
    refused(TELNYX_AUTH, {"Public key": key}, TELNYX_REQUEST, now=TELNYX_NOW)


def test_ed25519_options_name_the_headers_and_tolerance() -> None:
    auth = auth_of(
        {
            "type": "ed25519",
            "public_key": "$Public key$",
            "signature_header": "X-Sig",
            "timestamp_header": "X-Time",
            "tolerance_s": 30,
        }
    )
    key = Ed25519PrivateKey.generate()
    signed = telnyx_signed(key, "1700000000", b"{}")
    headers = dict(signed.headers)
    request = SignedRequest(
        method="POST",
        url=signed.url,
        headers=(("x-sig", headers["telnyx-signature-ed25519"]), ("X-TIME", "1700000000")),
        body=b"{}",
    )
    properties = {"Public key": base64.b64encode(raw_public(key)).decode()}
    verify_webhook(auth, properties, request, now=1_700_000_030)
    refused(auth, properties, request, now=1_700_000_031)


# --- JWT (Vonage): the published token --------------------------------------------------------

VONAGE = fixture("vonage_signed_webhook_jwt.json")
VONAGE_AUTH = auth_of(VONAGE["webhook_auth"])
VONAGE_REQUEST = request_of(VONAGE["request"])
VONAGE_PROPERTIES: dict[str, str] = VONAGE["properties"]
VONAGE_NOW = float(VONAGE["issued_at"]) + 10


def test_vonage_vector_passes_and_carries_the_documented_claims() -> None:
    verify_webhook(VONAGE_AUTH, VONAGE_PROPERTIES, VONAGE_REQUEST, now=VONAGE_NOW)
    token = dict(VONAGE_REQUEST.headers)["Authorization"].removeprefix("Bearer ")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims == VONAGE["claims"]


def test_vonage_vector_refuses_a_wrong_secret() -> None:
    reason = refused(VONAGE_AUTH, {"Signature secret": VONAGE["wrong_secret"]}, VONAGE_REQUEST)
    assert reason == "the token is not validly signed"


def test_vonage_vector_refuses_a_stale_token() -> None:
    reason = refused(VONAGE_AUTH, VONAGE_PROPERTIES, VONAGE_REQUEST, now=VONAGE_NOW + 3600)
    assert reason == "the timestamp is outside the allowed window"


def test_vonage_vector_refuses_a_missing_header() -> None:
    request = with_headers(VONAGE_REQUEST, Authorization=None)
    refused(VONAGE_AUTH, VONAGE_PROPERTIES, request, now=VONAGE_NOW)


def test_vonage_vector_refuses_edited_claims() -> None:
    header, _claims, signature = (
        dict(VONAGE_REQUEST.headers)["Authorization"].removeprefix("Bearer ").split(".")
    )
    claims = dict(VONAGE["claims"], api_key="z9y8x7w")
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    request = with_headers(VONAGE_REQUEST, Authorization=f"Bearer {header}.{forged}.{signature}")
    refused(VONAGE_AUTH, VONAGE_PROPERTIES, request, now=VONAGE_NOW)


def test_vonage_vector_payload_hash_refuses_another_body() -> None:
    # The body behind the published payload_hash is not published: any other body must fail.
    auth = auth_of({**VONAGE["webhook_auth"], "payload_hash": True})
    reason = refused(auth, VONAGE_PROPERTIES, VONAGE_REQUEST, now=VONAGE_NOW)
    assert reason == "the body does not match the token's payload_hash"


JWT_SECRET = "vonage-signature-secret-0123456789"
JWT_PROPERTIES = {"Signature secret": JWT_SECRET}
JWT_AUTH = auth_of({"type": "jwt", "secret": "$Signature secret$", "payload_hash": True})


def jwt_request(token: str, body: bytes = BODY, header: str = "Authorization") -> SignedRequest:
    return SignedRequest(method="POST", url=URL, headers=((header, f"Bearer {token}"),), body=body)


def body_claims(body: bytes = BODY, **claims: Any) -> dict[str, Any]:
    return {
        "iat": int(NOW),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        **claims,
    }


def test_jwt_payload_hash_passes_for_its_body_and_refuses_a_tampered_one() -> None:
    request = jwt_request(hs256_token(JWT_SECRET, body_claims()))
    verify_webhook(JWT_AUTH, JWT_PROPERTIES, request, now=NOW)
    refused(JWT_AUTH, JWT_PROPERTIES, with_body(request, BODY + b"\n"), now=NOW)
    no_hash = jwt_request(hs256_token(JWT_SECRET, {"iat": int(NOW)}))
    refused(JWT_AUTH, JWT_PROPERTIES, no_hash, now=NOW)


def test_jwt_without_payload_hash_option_ignores_the_body() -> None:
    auth = auth_of({"type": "jwt", "secret": "$Signature secret$"})
    request = jwt_request(hs256_token(JWT_SECRET, {"iat": int(NOW)}), body=b"anything")
    verify_webhook(auth, JWT_PROPERTIES, request, now=NOW)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(NOW) - 120},  # expired beyond the leeway
        {"nbf": int(NOW) + 600},  # not yet valid
        {"iat": int(NOW) + 600},  # issued in the future
        {"iat": int(NOW) - 3600},  # too old to replay
        {"exp": "tomorrow"},
    ],
)
def test_jwt_time_claims_are_checked_against_now(claims: dict[str, Any]) -> None:
    request = jwt_request(hs256_token(JWT_SECRET, body_claims(**claims)))
    refused(JWT_AUTH, JWT_PROPERTIES, request, now=NOW)


def test_jwt_time_claims_allow_a_small_skew() -> None:
    claims = body_claims(exp=int(NOW) - 30, nbf=int(NOW) + 30, iat=int(NOW) + 30)
    verify_webhook(JWT_AUTH, JWT_PROPERTIES, jwt_request(hs256_token(JWT_SECRET, claims)), now=NOW)


def test_jwt_only_hs256_is_accepted() -> None:
    hs512 = hs256_token(JWT_SECRET, body_claims(), algorithm="HS512")
    refused(JWT_AUTH, JWT_PROPERTIES, jwt_request(hs512), now=NOW)
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    payload = base64.urlsafe_b64encode(json.dumps(body_claims()).encode()).decode().rstrip("=")
    refused(JWT_AUTH, JWT_PROPERTIES, jwt_request(f"{header}.{payload}."), now=NOW)


def test_jwt_token_without_bearer_and_in_a_named_header() -> None:
    auth = auth_of({"type": "jwt", "secret": "$Signature secret$", "header": "X-Token"})
    token = hs256_token(JWT_SECRET, body_claims())
    bare = SignedRequest(method="POST", url=URL, headers=(("x-token", token),), body=BODY)
    verify_webhook(auth, JWT_PROPERTIES, bare, now=NOW)
    refused(auth, JWT_PROPERTIES, jwt_request(token), now=NOW)  # in Authorization instead


def test_jwt_short_secrets_work_without_warnings() -> None:
    request = jwt_request(hs256_token("short", body_claims()))
    verify_webhook(JWT_AUTH, {"Signature secret": "short"}, request, now=NOW)


# --- Basic ------------------------------------------------------------------------------------

BASIC_AUTH = auth_of({"type": "basic", "username": "$User$", "password": "$Password$"})
BASIC_PROPERTIES = {"User": "provider", "Password": "pa:ss w\u00f6rd"}


def basic_request(value: str | None) -> SignedRequest:
    headers = (("Authorization", value),) if value is not None else ()
    return SignedRequest(method="POST", url=URL, headers=headers, body=BODY)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_passes_with_the_configured_credentials() -> None:
    verify_webhook(
        BASIC_AUTH, BASIC_PROPERTIES, basic_request(basic("provider", "pa:ss w\u00f6rd")), now=NOW
    )
    lower = basic_request("basic " + basic("provider", "pa:ss w\u00f6rd").split(" ")[1])
    verify_webhook(BASIC_AUTH, BASIC_PROPERTIES, lower, now=NOW)


@pytest.mark.parametrize(
    "value",
    [
        basic("provider", "pa:ss w\u00f6rd!"),
        basic("provider", ""),
        basic("other", "pa:ss w\u00f6rd"),
        "Bearer " + base64.b64encode(b"provider:pa:ss").decode(),
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic",
        None,
    ],
)
def test_basic_refuses_anything_else(value: str | None) -> None:
    refused(BASIC_AUTH, BASIC_PROPERTIES, basic_request(value))


def test_basic_without_a_password_configured_is_refused() -> None:
    request = basic_request(basic("provider", ""))
    assert refused(BASIC_AUTH, {"User": "provider"}, request) == "no secret configured"


# --- the schemes as loaded from a definition --------------------------------------------------


def test_a_loaded_definition_s_webhook_auth_verifies() -> None:
    path = (
        Path(__file__).resolve().parents[1]
        / "fixtures"
        / "definitions"
        / "extended"
        / "jwt_auth.json"
    )
    definition = load_definition(json.loads(path.read_text(encoding="utf-8")))
    assert definition.webhook_auth is not None and definition.webhook_auth.type == "twilio"
    properties = {"Auth Token": "12345"}
    verify_webhook(definition.webhook_auth, properties, TWILIO_REQUEST, now=NOW)
    refused(definition.webhook_auth, properties, with_body(TWILIO_REQUEST, b"Digits=1"))


# --- robustness: random input only ever fails with WebhookAuthFailed --------------------------

SCHEME_HEADERS = [
    "X-Signature",
    "X-Timestamp",
    "X-Nonce",
    "X-Twilio-Signature",
    "telnyx-signature-ed25519",
    "telnyx-timestamp",
    "Authorization",
    "Content-Type",
]
ANY_TEXT = st.text(max_size=80)
HEADER_VALUE = st.one_of(
    ANY_TEXT,
    st.from_regex(r"(sha256=|v1=|Bearer |Basic )?[A-Za-z0-9+/=_.,\- ]{0,120}", fullmatch=True),
    st.integers(min_value=0, max_value=10**15).map(str),
)
HEADERS = st.lists(
    st.tuples(st.one_of(st.sampled_from(SCHEME_HEADERS), ANY_TEXT), HEADER_VALUE), max_size=8
)
REQUESTS = st.builds(
    SignedRequest,
    method=st.sampled_from(["POST", "GET", "PUT", ""]),
    url=st.one_of(
        ANY_TEXT,
        st.just(URL),
        st.from_regex(r"https?://[a-z\[\]:0-9.]{0,20}(/[^ ]*)?", fullmatch=True),
    ),
    headers=HEADERS.map(tuple),
    body=st.binary(max_size=200),
)


def definition_auth(relative: str) -> WebhookAuth:
    data = json.loads((ROOT / relative).read_text(encoding="utf-8"))
    auth = load_definition(data).webhook_auth
    assert auth is not None, f"{relative} has no WebhookAuth"
    return auth


AUTHS = [
    GITHUB_AUTH,
    timestamp_auth(),
    hmac_auth(signed="url+nonce", nonce_header="X-Nonce", encoding="base64"),
    hmac_auth(signed="url+body", prefix="v1="),
    TWILIO_AUTH,
    TELNYX_AUTH,
    JWT_AUTH,
    BASIC_AUTH,
    definition_auth("integrations/messagemedia.json"),
]
PROPERTIES = {
    "Signature public key": fixture("messagemedia_rsa_generated.json")["public_key_base64_der"],
    "Webhook secret": HMAC_SECRET,
    "Auth Token": "12345",
    "Public key": TELNYX_PROPERTIES["Public key"],
    "Signature secret": JWT_SECRET,
    "User": "provider",
    "Password": "secret-pass",
}


@SETTINGS
@given(auth=st.sampled_from(AUTHS), request=REQUESTS, now=st.floats(0, 4e9))
def test_random_requests_are_refused_with_webhook_auth_failed(
    auth: WebhookAuth, request: SignedRequest, now: float
) -> None:
    with pytest.raises(WebhookAuthFailed):
        verify_webhook(auth, PROPERTIES, request, now=now)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=6,
)
OPTION_KEYS = [
    "algorithm",
    "header",
    "secret",
    "encoding",
    "signed",
    "timestamp_header",
    "nonce_header",
    "prefix",
    "tolerance_s",
    "auth_token",
    "public_key",
    "signature_header",
    "payload_hash",
    "username",
    "password",
    "string_to_sign",
]


@SETTINGS
@given(
    scheme=st.sampled_from(["hmac", "twilio", "ed25519", "jwt", "basic", "token", "rsa"]),
    options=st.dictionaries(st.sampled_from(OPTION_KEYS), JSON_VALUES, max_size=6),
    properties=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=4),
    request=REQUESTS,
)
def test_random_options_and_properties_are_refused_with_webhook_auth_failed(
    scheme: str, options: dict[str, Any], properties: dict[str, str], request: SignedRequest
) -> None:
    auth = auth_of({"type": scheme, **options})
    with pytest.raises(WebhookAuthFailed):
        verify_webhook(auth, properties, request, now=NOW)


def test_jwt_payload_hash_may_be_left_out_only_for_a_request_without_body() -> None:
    # MessageBird's GET status reports carry no body and no payload_hash claim.
    without = jwt_request(hs256_token(JWT_SECRET, {"iat": int(NOW)}), body=b"")
    verify_webhook(JWT_AUTH, JWT_PROPERTIES, without, now=NOW)
    wrong = jwt_request(hs256_token(JWT_SECRET, {"iat": int(NOW), "payload_hash": "00"}), body=b"")
    refused(JWT_AUTH, JWT_PROPERTIES, wrong, now=NOW)


def test_jwt_url_hash_binds_the_token_to_the_full_url() -> None:
    auth = auth_of({"type": "jwt", "secret": "$Signature secret$", "url_hash": True})
    url = "https://gateway.example.com/webhooks/i/t?id=1&status=delivered"
    claims = {"iat": int(NOW), "url_hash": hashlib.sha256(url.encode()).hexdigest()}
    token = hs256_token(JWT_SECRET, claims)

    def called(at: str) -> SignedRequest:
        headers = (("Authorization", f"Bearer {token}"),)
        return SignedRequest(method="GET", url=at, headers=headers, body=b"")

    verify_webhook(auth, JWT_PROPERTIES, called(url), now=NOW)
    replayed = called(url.replace("delivered", "delivery_failed"))
    assert refused(auth, JWT_PROPERTIES, replayed, now=NOW) == (
        "the URL does not match the token's url_hash"
    )
    untied = jwt_request(hs256_token(JWT_SECRET, {"iat": int(NOW)}))
    refused(auth, JWT_PROPERTIES, untied, now=NOW)


# --- the integrations' own WebhookAuth against their providers' published vectors -------------
# Each block is loaded from integrations/<provider>.json, so a wrong definition fails here.


def with_url(request: SignedRequest, url: str) -> SignedRequest:
    return SignedRequest(method=request.method, url=url, headers=request.headers, body=request.body)


# Plivo: X-Plivo-Signature-V2, the SDKs' validateSignature vectors.

PLIVO = fixture("plivo_sdk_v2.json")
PLIVO_AUTH = auth_of(PLIVO["auth"])


def plivo_request(vector: Mapping[str, str], body: bytes = b"") -> SignedRequest:
    headers = (
        ("X-Plivo-Signature-V2", vector["signature"]),
        ("X-Plivo-Signature-V2-Nonce", vector["nonce"]),
    )
    return SignedRequest(method="POST", url=vector["url"], headers=headers, body=body)


PLIVO_VALID = [v for v in PLIVO["vectors"] if v["published_outcome"] == "valid"]


@pytest.mark.parametrize("vector", PLIVO["vectors"], ids=lambda v: v["name"])
def test_plivo_definition_agrees_with_the_sdk_vectors(vector: dict[str, str]) -> None:
    properties = {PLIVO["property"]: vector["auth_token"]}
    agrees(PLIVO_AUTH, properties, plivo_request(vector), vector["published_outcome"])


@pytest.mark.parametrize("vector", PLIVO_VALID, ids=lambda v: v["name"])
def test_plivo_vector_refuses_a_moved_url_nonce_or_wrong_token(vector: dict[str, str]) -> None:
    properties = {PLIVO["property"]: vector["auth_token"]}
    good = plivo_request(vector)
    assert refused(PLIVO_AUTH, properties, with_url(good, vector["url"] + "/x")) == (
        "the signature does not match"
    )
    other_host = with_url(good, vector["url"].replace("answer.url", "answer.uri"))
    refused(PLIVO_AUTH, properties, other_host)
    nonce = with_headers(good, X_Plivo_Signature_V2_Nonce=vector["nonce"] + "0")
    refused(PLIVO_AUTH, properties, nonce)
    refused(PLIVO_AUTH, {PLIVO["property"]: vector["auth_token"] + "s"}, good)
    assert refused(PLIVO_AUTH, properties, with_headers(good, X_Plivo_Signature_V2=None)) == (
        "the X-Plivo-Signature-V2 header is missing"
    )
    refused(PLIVO_AUTH, properties, with_headers(good, X_Plivo_Signature_V2_Nonce=None))


def test_plivo_v2_covers_neither_the_body_nor_the_query() -> None:
    # What Plivo signs (documented; the SDKs agree): the body and the query ride unsigned.
    vector = PLIVO_VALID[0]
    properties = {PLIVO["property"]: vector["auth_token"]}
    good = plivo_request(vector, body=b"From=15551230000&Text=hi")
    verify_webhook(PLIVO_AUTH, properties, with_body(good, b"From=15550000000&Text=bye"), now=NOW)
    verify_webhook(PLIVO_AUTH, properties, with_url(good, vector["url"] + "?a=1"), now=NOW)


# Plivo: X-Plivo-Signature-V3, the SDKs' validateSignatureV3 vectors, through the shipped definition
# (docs/format.md, "WebhookAuth": $url_sorted_params$).

PLIVO_V3 = fixture("plivo_sdk_v3.json")
PLIVO_V3_AUTH = definition_auth(PLIVO_V3["definition"])
PLIVO_V3_PROPERTIES = {PLIVO_V3["property"]: PLIVO_V3["auth_token"]}
_FORM_TYPE = ("Content-Type", "application/x-www-form-urlencoded")


def plivo_v3_request(vector: Mapping[str, str], signature: str | None = None) -> SignedRequest:
    """The vector as Plivo sends it: POST parameters in a form body, GET ones in the query."""
    params = urlencode(PLIVO_V3["parameters"])
    headers = (
        ("X-Plivo-Signature-V3", vector["signature"] if signature is None else signature),
        ("X-Plivo-Signature-V3-Nonce", PLIVO_V3["nonce"]),
    )
    if vector["method"] == "POST":
        return SignedRequest(
            method="POST", url=vector["url"], headers=(_FORM_TYPE, *headers), body=params.encode()
        )
    joiner = "&" if "?" in vector["url"] else "?"
    return SignedRequest(
        method="GET", url=vector["url"] + joiner + params, headers=headers, body=b""
    )


@pytest.mark.parametrize("vector", PLIVO_V3["vectors"], ids=lambda v: v["name"])
def test_plivo_v3_definition_agrees_with_the_sdk_vectors(vector: dict[str, str]) -> None:
    agrees(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, plivo_v3_request(vector), "valid")


@pytest.mark.parametrize("vector", PLIVO_V3["vectors"], ids=lambda v: v["name"])
def test_plivo_v3_passes_when_any_of_several_signatures_matches(vector: dict[str, str]) -> None:
    # An account with several active auth tokens gets one signature per token, comma-separated.
    other = base64.b64encode(b"\x00" * 32).decode()
    several = plivo_v3_request(vector, signature=f"{other},{vector['signature']}")
    verify_webhook(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, several, now=NOW)
    alone = plivo_v3_request(vector, signature=other)
    assert refused(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, alone) == "the signature does not match"


@pytest.mark.parametrize("vector", PLIVO_V3["vectors"], ids=lambda v: v["name"])
def test_plivo_v3_covers_the_body_the_query_and_the_nonce(vector: dict[str, str]) -> None:
    good = plivo_v3_request(vector)
    if good.body:
        refused(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, with_body(good, good.body + b"&Extra=1"))
        changed = good.body.replace(b"outbound", b"inbound")
        refused(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, with_body(good, changed))
    refused(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, with_url(good, good.url + "&a=c"))
    nonce = with_headers(good, X_Plivo_Signature_V3_Nonce=PLIVO_V3["nonce"] + "0")
    refused(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, nonce)
    refused(PLIVO_V3_AUTH, {PLIVO_V3["property"]: PLIVO_V3["auth_token"] + "x"}, good)
    assert refused(
        PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, with_headers(good, X_Plivo_Signature_V3_Nonce=None)
    ) == ("the X-Plivo-Signature-V3-Nonce header is missing")


def test_plivo_v3_parameter_order_as_sent_does_not_matter() -> None:
    vector = PLIVO_V3["vectors"][0]
    good = plivo_v3_request(vector)
    shuffled = urlencode(sorted(PLIVO_V3["parameters"].items(), reverse=True))
    verify_webhook(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, with_body(good, shuffled.encode()), now=NOW)
    reordered = vector["url"].replace("?a=b&c=d", "?c=d&a=b")
    verify_webhook(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, with_url(good, reordered), now=NOW)


@pytest.mark.parametrize(
    "body",
    [b'{"From": "19792014278"}', b"\xff\xfe=1", b"a=1&" * 10_001],
    ids=["json", "not utf-8", "too many"],
)
def test_plivo_v3_refuses_a_body_it_cannot_read_as_a_form(body: bytes) -> None:
    vector = PLIVO_V3["vectors"][2]
    good = plivo_v3_request(vector)
    json_typed = SignedRequest(
        method="POST",
        url=good.url,
        headers=(("Content-Type", "application/json"), *good.headers[1:]),
        body=body,
    )
    request = json_typed if body.startswith(b"{") else with_body(good, body)
    refused(PLIVO_V3_AUTH, PLIVO_V3_PROPERTIES, request)


# MessageBird: MessageBird-Signature-JWT, the Go and Python SDKs' reference vectors.

MESSAGEBIRD = fixture("messagebird_sdk_reference.json")
MESSAGEBIRD_AUTH = definition_auth(MESSAGEBIRD["definition"])
MESSAGEBIRD_NOW = float(MESSAGEBIRD["now"])


def messagebird_request(vector: Mapping[str, str]) -> SignedRequest:
    headers = (("MessageBird-Signature-JWT", vector["token"]),)
    return SignedRequest(
        method=vector["method"], url=vector["url"], headers=headers, body=vector["body"].encode()
    )


def messagebird_properties(vector: Mapping[str, str]) -> dict[str, str]:
    return {MESSAGEBIRD["signing_key_property"]: MESSAGEBIRD["signing_keys"][vector["sdk"]]}


MESSAGEBIRD_VALID = [v for v in MESSAGEBIRD["vectors"] if v["expected_here"] == "valid"]


def vector_id(vector: Mapping[str, str]) -> str:
    return f"{vector['sdk']}: {vector['name']}"


def test_messagebird_fixture_differs_from_the_sdks_only_where_it_says_why() -> None:
    for vector in MESSAGEBIRD["vectors"]:
        agrees = (vector["published_outcome"] == "valid") == (vector["expected_here"] == "valid")
        assert agrees != ("divergence" in vector), vector_id(vector)


@pytest.mark.parametrize("vector", MESSAGEBIRD["vectors"], ids=vector_id)
def test_messagebird_definition_agrees_with_the_sdk_vectors(vector: dict[str, str]) -> None:
    request = messagebird_request(vector)
    properties = messagebird_properties(vector)
    agrees(MESSAGEBIRD_AUTH, properties, request, vector["expected_here"], now=MESSAGEBIRD_NOW)


@pytest.mark.parametrize("vector", MESSAGEBIRD_VALID, ids=vector_id)
def test_messagebird_vector_refuses_tampering(vector: dict[str, str]) -> None:
    good = messagebird_request(vector)
    properties = messagebird_properties(vector)
    now = MESSAGEBIRD_NOW
    assert refused(MESSAGEBIRD_AUTH, properties, with_body(good, good.body + b"!"), now=now) == (
        "the body does not match the token's payload_hash"
    )
    assert refused(MESSAGEBIRD_AUTH, properties, with_url(good, good.url + "x"), now=now) == (
        "the URL does not match the token's url_hash"
    )
    wrong = {MESSAGEBIRD["signing_key_property"]: "hunter3"}
    assert refused(MESSAGEBIRD_AUTH, wrong, good, now=now) == "the token is not validly signed"
    refused(MESSAGEBIRD_AUTH, properties, with_headers(good, MessageBird_Signature_JWT=None))


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_messagebird_vector_refuses_a_token_outside_its_time(offset: int) -> None:
    # Each token is valid for 60 s from 1625479200 (exp); an hour either side is refused.
    vector = MESSAGEBIRD_VALID[0]
    request = messagebird_request(vector)
    properties = messagebird_properties(vector)
    verify_webhook(MESSAGEBIRD_AUTH, properties, request, now=MESSAGEBIRD_NOW + 30)
    refused(MESSAGEBIRD_AUTH, properties, request, now=MESSAGEBIRD_NOW + offset)


# SignalWire: Compatibility (LaML) webhooks, Twilio's scheme with the Signing Key.

SIGNALWIRE = fixture("signalwire_ruby_sdk.json")
SIGNALWIRE_AUTH = definition_auth(SIGNALWIRE["definition"])


def signalwire_request(vector: Mapping[str, Any]) -> SignedRequest:
    headers = (("Content-Type", vector["content_type"]), *map(tuple, vector["headers"]))
    return SignedRequest(
        method="POST", url=vector["url"], headers=headers, body=vector["body"].encode()
    )


SIGNALWIRE_VALID = [v for v in SIGNALWIRE["compat"] if v["published_outcome"] == "valid"]


@pytest.mark.parametrize("vector", SIGNALWIRE["compat"], ids=lambda v: v["name"])
def test_signalwire_definition_agrees_with_the_sdk_vectors(vector: dict[str, Any]) -> None:
    properties = {SIGNALWIRE["property"]: vector["signing_key"]}
    agrees(SIGNALWIRE_AUTH, properties, signalwire_request(vector), vector["published_outcome"])


@pytest.mark.parametrize("vector", SIGNALWIRE_VALID, ids=lambda v: v["name"])
def test_signalwire_vector_refuses_tampering(vector: dict[str, Any]) -> None:
    properties = {SIGNALWIRE["property"]: vector["signing_key"]}
    good = signalwire_request(vector)
    tampered = with_body(good, good.body.replace(b"a", b"b", 1))
    assert tampered.body != good.body
    refused(SIGNALWIRE_AUTH, properties, tampered)
    refused(SIGNALWIRE_AUTH, properties, with_url(good, good.url.replace("https://", "https://x")))
    refused(SIGNALWIRE_AUTH, {SIGNALWIRE["property"]: vector["signing_key"] + "x"}, good)
    signature = dict(vector["headers"])["X-SignalWire-Signature"]
    as_twilio = with_headers(good, X_SignalWire_Signature=None, X_Twilio_Signature=signature)
    assert refused(SIGNALWIRE_AUTH, properties, as_twilio) == (
        "the X-SignalWire-Signature header is missing"
    )


def test_signalwire_body_hash_mismatch_is_refused_in_the_definition_s_header() -> None:
    # The published negative vector carries its signature in X-Twilio-Signature; moved to the
    # header the definition reads, it is still refused, for its body.
    vector = next(v for v in SIGNALWIRE["compat"] if "does not match" in v["name"])
    signature = dict(vector["headers"])["X-Twilio-Signature"]
    request = with_headers(
        signalwire_request(vector), X_Twilio_Signature=None, X_SignalWire_Signature=signature
    )
    properties = {SIGNALWIRE["property"]: vector["signing_key"]}
    assert refused(SIGNALWIRE_AUTH, properties, request) == (
        "the body does not match the bodySHA256 in the URL"
    )


@pytest.mark.parametrize("vector", SIGNALWIRE["json_hex"], ids=lambda v: v["name"])
def test_signalwire_json_webhooks_use_another_scheme(vector: dict[str, str]) -> None:
    # SWML/RELAY JSON webhooks: hex HMAC-SHA1 over URL + raw body. The definition (LaML
    # messaging, form bodies) refuses them; an hmac block expresses them exactly.
    request = SignedRequest(
        method="POST",
        url=vector["url"],
        headers=(
            ("Content-Type", "application/json"),
            ("X-SignalWire-Signature", vector["signature"]),
        ),
        body=vector["body"].encode(),
    )
    properties = {SIGNALWIRE["property"]: vector["signing_key"]}
    refused(SIGNALWIRE_AUTH, properties, request)
    hex_auth = auth_of(
        {
            "type": "hmac",
            "algorithm": "sha1",
            "encoding": "hex",
            "signed": "url+body",
            "header": "X-SignalWire-Signature",
            "secret": "$Signing Key$",
        }
    )
    verify_webhook(hex_auth, properties, request, now=NOW)
    refused(hex_auth, properties, with_body(request, request.body + b" "))
    refused(hex_auth, properties, with_url(request, vector["url"] + "?q=1"))


# Twilio, Vonage and Telnyx: the existing vectors through the definitions' own blocks.


def test_twilio_definition_verifies_the_published_vectors() -> None:
    auth = definition_auth("integrations/twilio.json")
    verify_webhook(auth, TWILIO_PROPERTIES, TWILIO_REQUEST, now=NOW)
    for vector in TWILIO_SDK["vectors"]:
        request = SignedRequest(
            method="POST",
            url=vector["url"],
            headers=(
                ("Content-Type", vector["content_type"]),
                ("X-Twilio-Signature", vector["signature"]),
            ),
            body=vector["body"].encode(),
        )
        verify_webhook(auth, TWILIO_PROPERTIES, request, now=NOW)
        refused(auth, TWILIO_PROPERTIES, with_body(request, request.body + b"&x=1"))
    refused(auth, {"Auth Token": "54321"}, TWILIO_REQUEST)


def test_vonage_definition_checks_the_published_token_up_to_its_unpublished_body() -> None:
    # The definition requires payload_hash; the body behind the published one is not
    # published. Reaching the body check proves the header, secret, signature and iat pass.
    auth = definition_auth("integrations/vonage.json")
    assert refused(auth, VONAGE_PROPERTIES, VONAGE_REQUEST, now=VONAGE_NOW) == (
        "the body does not match the token's payload_hash"
    )
    wrong = {"Signature secret": VONAGE["wrong_secret"]}
    assert refused(auth, wrong, VONAGE_REQUEST, now=VONAGE_NOW) == (
        "the token is not validly signed"
    )
    assert refused(auth, VONAGE_PROPERTIES, VONAGE_REQUEST, now=VONAGE_NOW + 3600) == (
        "the timestamp is outside the allowed window"
    )


def test_telnyx_definition_verifies_the_generated_vector() -> None:
    auth = definition_auth("integrations/telnyx.json")
    properties = {"Public Key": TELNYX_PROPERTIES["Public key"]}
    verify_webhook(auth, properties, TELNYX_REQUEST, now=TELNYX_NOW + 120)
    tampered = with_body(TELNYX_REQUEST, TELNYX_REQUEST.body.replace(b"Hello", b"Hallo"))
    refused(auth, properties, tampered, now=TELNYX_NOW)
    refused(auth, properties, TELNYX_REQUEST, now=TELNYX_NOW + 301)

"""(ext) ``rsa`` (docs/format.md, "WebhookAuth"): MessageMedia's Enterprise Webhooks vectors
through the shipped definition, each digest, the parts of the signed string, refusals of
malformed signatures and unusable keys (never an exception other than WebhookAuthFailed), and the
``msgbridge check`` rules for its misuse.

The fixture (tests/fixtures/webhook_auth/messagemedia_rsa_generated.json) says where each value
comes from; its signatures are re-derived here from its throwaway private key with
``cryptography``, independently of server/security/webhook_auth.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from server.engine import WebhookAuth, check_definition, freeze, load_definition
from server.engine._rsa_keys import rsa_public_key
from server.security.webhook_auth import (
    SignedRequest,
    WebhookAuthFailed,
    key_problems,
    verify_webhook,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "webhook_auth" / "messagemedia_rsa_generated.json").read_text(
        encoding="utf-8"
    )
)
DEFINITION: dict[str, Any] = json.loads((ROOT / FIXTURE["definition"]).read_text("utf-8"))
AUTH = load_definition(json.dumps(DEFINITION)).webhook_auth
PRIVATE = serialization.load_pem_private_key(FIXTURE["private_key_pem"].encode(), password=None)
assert isinstance(PRIVATE, rsa.RSAPrivateKey)
PROPERTIES = {FIXTURE["property"]: FIXTURE["public_key_base64_der"]}
HASHES = {"SHA224": hashes.SHA224, "SHA256": hashes.SHA256, "SHA512": hashes.SHA512}
VECTORS = FIXTURE["vectors"]
NOW = 1_700_000_000


def auth_of(spec: Mapping[str, Any]) -> WebhookAuth:
    options = freeze({k: v for k, v in spec.items() if k != "type"})
    assert isinstance(options, Mapping)
    return WebhookAuth(type=spec["type"], options=MappingProxyType(dict(options)))


def auth_for(vector: Mapping[str, str]) -> WebhookAuth:
    """The shipped definition's scheme with the vector's digest (the definition's is SHA256)."""
    return auth_of({**DEFINITION["WebhookAuth"], "algorithm": vector["digest_type"].lower()})


def request(vector: Mapping[str, str], **changes: Any) -> SignedRequest:
    headers = {
        "Content-Type": "application/json",
        "Date": vector["date"],
        "X-Messagemedia-Signature": vector["signature"],
        "X-Messagemedia-Digest-Type": vector["digest_type"],
    }
    headers.update(changes.pop("headers", {}))
    values = {
        "method": vector["method"],
        "url": vector["url"],
        "body": vector["body"].encode(),
        **changes,
    }
    return SignedRequest(
        headers=tuple((k, v) for k, v in headers.items() if v is not None), **values
    )


def refused(auth: WebhookAuth | None, properties: Mapping[str, str], req: SignedRequest) -> str:
    assert auth is not None
    with pytest.raises(WebhookAuthFailed) as failure:
        verify_webhook(auth, properties, req, now=NOW)
    for value in properties.values():
        if len(value) >= 4:
            assert value not in failure.value.reason
    return failure.value.reason


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_each_vector_is_reproducible_from_the_fixture_key(vector: dict[str, str]) -> None:
    signed = f"{vector['method']} {vector['url'].split('example', 1)[1]} HTTP/1.1"
    signed += vector["date"] + vector["body"]
    again = PRIVATE.sign(signed.encode(), padding.PKCS1v15(), HASHES[vector["digest_type"]]())
    assert base64.b64encode(again).decode() == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_each_vector_verifies_with_its_digest(vector: dict[str, str]) -> None:
    verify_webhook(auth_for(vector), PROPERTIES, request(vector), now=NOW)


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["digest_type"] == "SHA256"], ids=lambda v: v["name"]
)
def test_the_shipped_definition_verifies_the_sha256_vectors(vector: dict[str, str]) -> None:
    assert AUTH is not None
    verify_webhook(AUTH, PROPERTIES, request(vector), now=NOW)


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["digest_type"] != "SHA256"], ids=lambda v: v["name"]
)
def test_a_signature_with_another_digest_is_refused(vector: dict[str, str]) -> None:
    assert refused(AUTH, PROPERTIES, request(vector)) == "the signature does not match"


def test_the_key_may_be_pem_or_pkcs1() -> None:
    public = PRIVATE.public_key()
    for form in (serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1):
        pem = public.public_bytes(serialization.Encoding.PEM, form).decode()
        assert AUTH is not None
        verify_webhook(AUTH, {FIXTURE["property"]: pem}, request(VECTORS[0]), now=NOW)


DOCS = VECTORS[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"body": DOCS["body"].replace("enroute", "delivered").encode()},
        {"body": DOCS["body"].encode() + b" "},
        {"url": DOCS["url"] + "?x=1"},
        {"url": DOCS["url"].replace("/data", "/date")},
        {"method": "PUT"},
        {"headers": {"Date": "Tue, 17 Jul 2018 04:52:32 GMT"}},
    ],
    ids=["body", "body+space", "query", "path", "method", "date"],
)
def test_every_signed_part_is_covered(changes: dict[str, Any]) -> None:
    assert refused(AUTH, PROPERTIES, request(DOCS, **changes)) == "the signature does not match"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("X-Messagemedia-Signature", "the X-Messagemedia-Signature header is missing"),
        ("Date", "the Date header is missing"),
    ],
)
def test_a_missing_header_is_refused(header: str, reason: str) -> None:
    assert refused(AUTH, PROPERTIES, request(DOCS, headers={header: None})) == reason


SIGNATURE = DOCS["signature"]


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "   ",
        "not base64 at all!",
        SIGNATURE[:-4],
        SIGNATURE + "AAAA",
        base64.b64encode(b"\x00" * 256).decode(),
        base64.b64encode(b"\xff" * 256).decode(),
        base64.b64encode(b"\x01" * 100_000).decode(),
        "=" * 400,
        SIGNATURE.replace("+", "-").replace("/", "_").rstrip("=") + "A",
    ],
    ids=lambda s: f"{len(s)} characters",
)
def test_a_malformed_signature_is_a_refusal(signature: str) -> None:
    refused(AUTH, PROPERTIES, request(DOCS, headers={"X-Messagemedia-Signature": signature}))


def test_a_url_safe_signature_is_read_as_base64() -> None:
    url_safe = SIGNATURE.replace("+", "-").replace("/", "_").rstrip("=")
    assert AUTH is not None
    headers = {"X-Messagemedia-Signature": url_safe}
    verify_webhook(AUTH, PROPERTIES, request(DOCS, headers=headers), now=NOW)


def test_two_signature_headers_are_refused() -> None:
    twice = request(DOCS)
    doubled = SignedRequest(
        method=twice.method,
        url=twice.url,
        headers=(*twice.headers, ("X-Messagemedia-Signature", SIGNATURE)),
        body=twice.body,
    )
    reason = refused(AUTH, PROPERTIES, doubled)
    assert reason == "the X-Messagemedia-Signature header appears more than once"


def _pem(key: Any) -> str:
    return str(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )


SMALL_KEY = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
EC_KEY = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
UNUSABLE_KEYS = {
    "empty": "",
    "text": "ENTER_PUBLIC_KEY_HERE",
    # the code guides' public_key.pem, as shipped
    "placeholder PEM": (
        "-----BEGIN PUBLIC KEY-----\nENTER_PUBLIC_KEY_HERE \n-----END PUBLIC KEY-----"
    ),
    "truncated": FIXTURE["public_key_base64_der"][:40],
    "not ASCII": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA—",
    "1024 bits": SMALL_KEY,
    "EC key": EC_KEY,
    "huge": "A" * 100_000,
}


@pytest.mark.parametrize("key", UNUSABLE_KEYS.values(), ids=UNUSABLE_KEYS.keys())
def test_an_unusable_key_is_a_refusal_never_a_crash(key: str) -> None:
    reason = refused(AUTH, {FIXTURE["property"]: key}, request(DOCS))
    assert reason in ("no secret configured",) or reason.startswith(
        "the configured public_key is not usable: "
    )


@pytest.mark.parametrize("key", list(UNUSABLE_KEYS.values())[1:], ids=list(UNUSABLE_KEYS)[1:])
def test_an_unusable_key_in_a_property_is_named_for_the_installation(key: str) -> None:
    ((name, reason),) = key_problems(AUTH, {FIXTURE["property"]: key})
    assert name == FIXTURE["property"]
    assert key[:20] not in reason or not key.strip()


def test_a_usable_key_or_no_key_yet_has_nothing_to_say() -> None:
    assert key_problems(AUTH, PROPERTIES) == []
    assert key_problems(AUTH, {}) == []
    assert key_problems(None, PROPERTIES) == []


def test_a_key_with_a_huge_public_exponent_is_refused() -> None:
    numbers = rsa.RSAPublicNumbers(e=(1 << 40) + 1, n=PRIVATE.public_key().public_numbers().n)
    reason = refused(AUTH, {FIXTURE["property"]: _pem(numbers.public_key())}, request(DOCS))
    assert reason.endswith("the RSA key's public exponent is larger than 32 bits")


def test_without_string_to_sign_the_body_is_signed() -> None:
    body = b'{"status":"delivered"}'
    signature = PRIVATE.sign(body, padding.PKCS1v15(), hashes.SHA256())
    auth = auth_of({"type": "rsa", "header": "X-Sig", "public_key": "$K$"})
    req = SignedRequest(
        method="POST",
        url="https://gw.example/x",
        headers=(("X-Sig", base64.b64encode(signature).decode()),),
        body=body,
    )
    verify_webhook(auth, {"K": FIXTURE["public_key_base64_der"]}, req, now=NOW)
    tampered = SignedRequest(method="POST", url=req.url, headers=req.headers, body=body + b" ")
    refused(auth, {"K": FIXTURE["public_key_base64_der"]}, tampered)


def test_a_timestamp_in_the_signed_string_is_checked_against_the_window() -> None:
    signed = b"1700000000.payload"
    signature = base64.b64encode(PRIVATE.sign(signed, padding.PKCS1v15(), hashes.SHA256()))
    auth = auth_of(
        {
            "type": "rsa",
            "header": "X-Sig",
            "public_key": "$K$",
            "string_to_sign": "$timestamp$.$body$",
            "timestamp_header": "X-Time",
        }
    )
    req = SignedRequest(
        method="POST",
        url="https://gw.example/x",
        headers=(("X-Sig", signature.decode()), ("X-Time", "1700000000")),
        body=b"payload",
    )
    properties = {"K": FIXTURE["public_key_base64_der"]}
    verify_webhook(auth, properties, req, now=NOW + 10)
    with pytest.raises(WebhookAuthFailed, match="outside the allowed window"):
        verify_webhook(auth, properties, req, now=NOW + 301)


def test_the_key_is_parsed_once_for_many_requests() -> None:
    rsa_public_key.cache_clear()
    assert AUTH is not None
    for _ in range(5):
        verify_webhook(AUTH, PROPERTIES, request(DOCS), now=NOW)
    assert rsa_public_key.cache_info().misses == 1


# msgbridge check


def problems(auth: dict[str, Any]) -> list[str]:
    doc = {**DEFINITION, "WebhookAuth": auth}
    return [
        f"{p.severity} {p.pointer}: {p.message}"
        for p in check_definition(json.dumps(doc))
        if p.pointer.startswith("/WebhookAuth")
    ]


BASE = {"type": "rsa", "header": "X-Sig", "public_key": "$Signature public key$"}


def test_check_accepts_the_shipped_scheme_and_a_literal_usable_key() -> None:
    assert problems(DEFINITION["WebhookAuth"]) == []
    assert problems({**BASE, "public_key": FIXTURE["public_key_base64_der"]}) == []


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {**BASE, "public_key": "ENTER_PUBLIC_KEY_HERE"},
            "error /WebhookAuth/public_key: the public key is not a PEM or base64 DER RSA "
            "public key",
        ),
        (
            {**BASE, "public_key": SMALL_KEY},
            "error /WebhookAuth/public_key: the RSA key has 1024 bits; 2048 to 8192 are accepted",
        ),
        (
            {**BASE, "public_key": EC_KEY},
            "error /WebhookAuth/public_key: the public key is not an RSA key",
        ),
        (
            {**BASE, "string_to_sign": "$method$ $pth$$body$"},
            "error /WebhookAuth/string_to_sign: unknown part $pth$ in string_to_sign (did you "
            'mean "$path$"?): the parts are $body$, $url$, $base_url$, $method$, $path$, '
            "$timestamp$, $nonce$, $url_sorted_params$ and $header:Name$",
        ),
        (
            {**BASE, "string_to_sign": "$header:X-Sig$$body$"},
            "error /WebhookAuth/string_to_sign: $header:X-Sig$ is the header that carries the "
            "signature, which cannot sign itself",
        ),
        (
            {**BASE, "algorithm": "md5"},
            "error /WebhookAuth/algorithm:",
        ),
        (
            {"type": "rsa", "public_key": "$Signature public key$"},
            "error /WebhookAuth:",
        ),
    ],
    ids=["not a key", "small key", "EC key", "unknown part", "own header", "md5", "no header"],
)
def test_check_refuses_misuse_at_its_pointer(auth: dict[str, Any], expected: str) -> None:
    found = problems(auth)
    assert any(p.startswith(expected) for p in found), found

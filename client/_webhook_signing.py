"""Signing webhook requests as a provider would (docs/format.md, "WebhookAuth"), so that case
files taken from documentation — whose signatures were made for another URL and key — can be
posted to our URL with test secrets (docs/format.md, "Proving a definition"). ``msgbridge test``
and the project's tests use it.

Written independently of ``server.security.webhook_auth`` (which verifies); the known-answer tests
there check the verifier against the providers' published examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwt
from joserfc.jwk import OctKey

from server.engine import Placeholder, parse_template

# One key pair per test run for ed25519 definitions (the installation gets the public half).
ED25519_KEY = Ed25519PrivateKey.generate()
ED25519_PUBLIC = base64.b64encode(
    ED25519_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()

# And one RSA key pair for rsa definitions, its public half as base64 DER (as MessageMedia's
# Signature Key Management API returns it).
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC = base64.b64encode(
    RSA_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
).decode()
_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha224": hashes.SHA224,
    "sha512": hashes.SHA512,
}


def _value(template: Any, properties: Mapping[str, str]) -> str:
    out = []
    for segment in parse_template(str(template)):
        out.append(
            properties.get(segment.name, "") if isinstance(segment, Placeholder) else segment
        )
    return "".join(out)


def property_overrides(auth: Mapping[str, Any] | None) -> dict[str, str]:
    """Property values the installation needs so that test signatures verify."""
    public = {"ed25519": ED25519_PUBLIC, "rsa": RSA_PUBLIC}.get(str((auth or {}).get("type")))
    if auth and public:
        segments = parse_template(str(auth["public_key"]))
        names = [s.name for s in segments if isinstance(s, Placeholder)]
        return {names[0]: public} if names else {}
    return {}


def sign_webhook(
    auth: Mapping[str, Any] | None,
    properties: Mapping[str, str],
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    rsa_key: rsa.RSAPrivateKey = RSA_KEY,
) -> dict[str, str]:
    """The headers that authenticate this request under ``auth`` (none without WebhookAuth);
    an ``rsa`` signature is made with ``rsa_key`` (the run's key pair unless told)."""
    if not auth:
        return {}
    kind = auth["type"]
    now = str(int(time.time()))
    if kind == "basic":
        user = _value(auth["username"], properties)
        password = _value(auth["password"], properties)
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }
    if kind == "token":  # a token in a body field travels in the fixture's body, as sent
        if "header" not in auth:
            return {}
        return {auth["header"]: auth.get("prefix", "") + _value(auth["token"], properties)}
    if kind == "twilio":
        token_key = _value(auth["auth_token"], properties).encode()
        signed_url = url
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if method.upper() == "POST" and content_type.startswith(
            "application/x-www-form-urlencoded"
        ):
            params = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
            signed_url += "".join(k + v for k, v in sorted(params))
        digest = hmac.new(token_key, signed_url.encode(), hashlib.sha1).digest()
        return {auth.get("header", "X-Twilio-Signature"): base64.b64encode(digest).decode()}
    if kind == "ed25519":
        signature = ED25519_KEY.sign(f"{now}|".encode() + body)
        return {
            auth.get("signature_header", "telnyx-signature-ed25519"): base64.b64encode(
                signature
            ).decode(),
            auth.get("timestamp_header", "telnyx-timestamp"): now,
        }
    if kind == "rsa":
        return _rsa_headers(auth, rsa_key, method=method, url=url, headers=headers, body=body)
    if kind == "jwt":
        claims: dict[str, Any] = {"iat": int(now), "exp": int(now) + 300, "jti": uuid.uuid4().hex}
        if auth.get("payload_hash") and body:  # as MessageBird: no claim for a request without body
            claims["payload_hash"] = hashlib.sha256(body).hexdigest()
        if auth.get("url_hash"):
            claims["url_hash"] = hashlib.sha256(url.encode()).hexdigest()
        secret = _value(auth["secret"], properties)
        token = jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(secret))
        return {auth.get("header", "Authorization"): f"Bearer {token}"}
    if kind == "hmac":
        return _hmac_headers(auth, properties, method=method, url=url, headers=headers, body=body)
    raise ValueError(f"unknown WebhookAuth type {kind!r}: {json.dumps(auth)}")


def _rsa_headers(
    auth: Mapping[str, Any],
    rsa_key: rsa.RSAPrivateKey,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, str]:
    out: dict[str, str] = {}
    data = (
        _string_to_sign(auth, out, method=method, url=url, headers=headers, body=body)
        if "string_to_sign" in auth
        else body
    )
    digest = _RSA_HASHES[auth.get("algorithm", "sha256")]()
    signature = rsa_key.sign(data, padding.PKCS1v15(), digest)
    out[auth["header"]] = base64.b64encode(signature).decode()
    return out


def _hmac_headers(
    auth: Mapping[str, Any],
    properties: Mapping[str, str],
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, str]:
    now = str(int(time.time()))
    secret = _value(auth["secret"], properties).encode()
    if auth.get("secret_encoding") == "base64":  # Standard Webhooks: whsec_ and base64
        secret = base64.b64decode(secret.removeprefix(b"whsec_"))
    signed = auth.get("signed", "body")
    out: dict[str, str] = {}
    if "string_to_sign" in auth:
        data = _string_to_sign(auth, out, method=method, url=url, headers=headers, body=body)
    elif signed == "body":
        data = body
    elif signed == "url+body":
        data = url.encode() + body
    elif signed == "timestamp.body":
        out[auth["timestamp_header"]] = now
        data = now.encode() + b"." + body
    elif signed == "url+nonce":
        nonce = uuid.uuid4().hex
        out[auth["nonce_header"]] = nonce
        base_uri = url.split("?", 1)[0].split("#", 1)[0]  # Plivo V2 signs no query
        data = base_uri.encode() + nonce.encode()
    else:
        raise ValueError(f"unknown signed: {signed}")
    digest = hmac.new(secret, data, getattr(hashlib, auth.get("algorithm", "sha256"))).digest()
    encoded = (
        base64.b64encode(digest).decode()
        if auth.get("encoding", "hex") == "base64"
        else digest.hex()
    )
    out[auth["header"]] = auth.get("prefix", "") + encoded
    return out


def _string_to_sign(
    auth: Mapping[str, Any],
    out: dict[str, str],
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> bytes:
    """The signed string of an ``hmac`` with ``string_to_sign`` (docs/format.md, "WebhookAuth"),
    adding the timestamp and nonce headers it signs to ``out``."""
    parts: list[bytes] = []
    for segment in parse_template(str(auth["string_to_sign"])):
        if not isinstance(segment, Placeholder):
            parts.append(segment.encode())
        elif segment.name == "body":
            parts.append(body)
        elif segment.name == "url":
            parts.append(url.encode())
        elif segment.name == "base_url":
            parts.append(url.split("?", 1)[0].split("#", 1)[0].encode())
        elif segment.name == "method":
            parts.append(method.upper().encode())
        elif segment.name == "path":
            after_host = url.split("#", 1)[0].split("://", 1)[-1]
            cut = min(
                (i for i in (after_host.find("/"), after_host.find("?")) if i >= 0),
                default=len(after_host),
            )
            target = after_host[cut:]
            parts.append((target if target.startswith("/") else "/" + target).encode())
        elif segment.name == "timestamp":
            out[auth["timestamp_header"]] = str(int(time.time()))
            parts.append(out[auth["timestamp_header"]].encode())
        elif segment.name == "nonce":
            out[auth["nonce_header"]] = uuid.uuid4().hex
            parts.append(out[auth["nonce_header"]].encode())
        elif segment.name == "url_sorted_params":
            parts.append(_url_sorted_params(url, headers, body))
        elif segment.name.startswith("header:"):
            name = segment.name[len("header:") :]
            given = [v for k, v in {**headers, **out}.items() if k.lower() == name.lower()]
            if not given:  # a header the provider adds to sign, such as webhook-id or Date
                out[name] = (
                    formatdate(usegmt=True) if name.lower() == "date" else "msg_" + uuid.uuid4().hex
                )
                given = [out[name]]
            parts.append(given[0].encode())
        else:
            raise ValueError(f"unknown part of string_to_sign: {segment.name}")
    return b"".join(parts)


def _url_sorted_params(url: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """Plivo V3's signed URL (its Python SDK's construct_post_url / construct_get_url): the
    URL without its query, ``?`` and the sorted query as name=value&…, ``.`` when there is a
    form body too, then the sorted form parameters as namevalue."""
    base, _, query = url.split("#", 1)[0].partition("?")
    query_text = "&".join(
        f"{k}={v}" for k, v in sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    )
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    form = (
        urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        if body and content_type.startswith("application/x-www-form-urlencoded")
        else []
    )
    signed = base
    if query_text or form:
        signed += "?" + query_text
    if query_text and form:
        signed += "."
    signed += "".join(k + v for k, v in sorted(form))
    return signed.encode()

"""(ext) Hostile signatures and keys (docs/format.md, "WebhookAuth"): an ``rsa`` definition
installed with a key that is not one is refused at EnableIntegration (INVALID_ARGUMENT, the value
not echoed); its webhooks with malformed, huge or repeated signature headers are answered 401 (or
the sidecar's 4xx for headers past its limits), never 5xx; a form body of many fields signed with
``$url_sorted_params$`` is refused without parsing past the field bound.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from client._webhook_signing import RSA_PUBLIC as _GOOD_KEY
from msgbridge.v1 import gateway_pb2

from ._case import Cases, expect, expect_status
from ._checks import no_class_name
from ._env import Env, demo_definition, enable, register, webhook_path

__all__ = ["CASES"]

cases = Cases("signatures")
CASES = cases.all

_KEY = "Signature public key"
_REFUSED = (401, 400, 413, 431)


def _rsa_definition(integration_id: str) -> dict[str, Any]:
    definition = demo_definition(integration_id)
    definition["properties"] = [*definition["properties"], {"name": _KEY, "secret": False}]
    definition["WebhookAuth"] = {
        "type": "rsa",
        "header": "X-Signature",
        "public_key": f"${_KEY}$",
        "string_to_sign": "$method$ $path$ HTTP/1.1$header:Date$$body$",
    }
    return definition


_installed: dict[str, gateway_pb2.Installation] = {}


async def _rsa_installation(env: Env) -> gateway_pb2.Installation:
    if "rsa" not in _installed:
        await register(env.gateway, env.tokens.full, _rsa_definition("adv-rsa"))
        _installed["rsa"] = await enable(
            env.gateway, env.tokens.full, "acme", "adv-rsa", "+15550009901",
            {"Server": env.hostile.url, "API key": env.secret, _KEY: _GOOD_KEY},
        )  # fmt: skip
    return _installed["rsa"]


def _bad_key_case(name: str, key: str) -> None:
    async def run(env: Env) -> str:
        await _rsa_installation(env)
        result = await env.gateway.call(
            "EnableIntegration",
            gateway_pb2.EnableIntegrationRequest(
                org_id="globex",
                integration_id="adv-rsa",
                properties={"Server": env.hostile.url, "API key": env.secret, _KEY: key},
                numbers=[gateway_pb2.NumberAssignment(number="+15550009902", users=["1"])],
            ),
            env.tokens.full,
        )
        no_class_name(result)
        if len(key) >= 16:
            expect(key[:16] not in str(result.details), "the refused key was echoed")
        return expect_status(result.code, ("INVALID_ARGUMENT",))

    cases.add(f"enable-rsa-with-{name}", run)


_bad_key_case("a-200k-character-key", "A" * 200_000)
_bad_key_case("a-placeholder-pem", "-----BEGIN PUBLIC KEY-----\nENTER_PUBLIC_KEY_HERE\n-----END")
_bad_key_case(
    "a-1024-bit-key",
    base64.b64encode(
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode(),
)


def _signature_case(name: str, headers: list[tuple[str, str]]) -> None:
    async def run(env: Env) -> str:
        installation = await _rsa_installation(env)
        assert env.http is not None
        async with env.http.post(
            env.core_url(webhook_path(installation)),
            data=b'{"method": "message", "params": {}}',
            headers=[("Content-Type", "application/json"), *headers],
        ) as answer:
            await answer.read()
            return expect_status(answer.status, _REFUSED)

    cases.add(f"rsa-webhook-{name}", run)


_DATE = ("Date", "Tue, 17 Jul 2018 04:52:31 GMT")
_signature_case("signature-60kb-of-base64", [_DATE, ("X-Signature", "QUFB" * 15_000)])
_signature_case("signature-6kb-of-base64", [_DATE, ("X-Signature", "QUFB" * 1_500)])
_signature_case(
    "signature-header-20-times",
    [_DATE, *[("X-Signature", base64.b64encode(b"\x01" * 256).decode())] * 20],
)
_signature_case("signature-all-padding", [_DATE, ("X-Signature", "=" * 4_000)])
_signature_case("signature-not-base64", [_DATE, ("X-Signature", "\u00ff\u00fe%%%" * 100)])
_signature_case(
    "signature-right-length-wrong-bytes",
    [_DATE, ("X-Signature", base64.b64encode(b"\xff" * 256).decode())],
)
_signature_case(
    "signature-header-500-times",
    [_DATE, *[("X-Signature", base64.b64encode(b"\x01" * 256).decode())] * 500],
)
_signature_case(
    "date-header-500-times",
    [*[_DATE] * 500, ("X-Signature", base64.b64encode(b"\x01" * 256).decode())],
)


@cases.case("url-sorted-params-form-of-250000-fields")
async def _many_fields(env: Env) -> str:
    definition = demo_definition("adv-plivo-v3")
    definition["WebhookAuth"] = {
        "type": "hmac",
        "header": "X-Plivo-Signature-V3",
        "secret": "$API key$",
        "encoding": "base64",
        "string_to_sign": "$url_sorted_params$.$nonce$",
        "nonce_header": "X-Plivo-Signature-V3-Nonce",
    }
    await register(env.gateway, env.tokens.full, definition)
    installation = await enable(
        env.gateway, env.tokens.full, "acme", "adv-plivo-v3", "+15550009903",
        {"Server": env.hostile.url, "API key": env.secret},
    )  # fmt: skip
    status = await env.post(
        env.core_url(webhook_path(installation)) + "?" + "q=1&" * 2_000,
        b"a=1&" * 250_000,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": "c2lnbmF0dXJl",
            "X-Plivo-Signature-V3-Nonce": "12345",
        },
    )
    return expect_status(status, _REFUSED)

"""Text encodings (docs/format.md, "Text encodings") at their worst: a send whose text is all
emoji through a percent filter and an `$encoding$` switch with thousands of cases, and webhooks at
the body limit whose declared encoding is hex, percent or base64 — valid, and hostile.

(The sidecar refuses a body over its 1 MiB limit before the engine sees it.) A send ends in a
known status, a webhook in 2xx (an undecodable value is kept as unmatched), and
neither stalls the server nor blows its memory.
"""

from __future__ import annotations

import json
from typing import Any

from msgbridge.v1 import gateway_pb2

from ._case import Cases, expect_status
from ._checks import no_class_name
from ._env import Env, demo_definition, enable, send_request, webhook_path

__all__ = ["CASES"]

cases = Cases("encodings")
CASES = cases.all

_SENT = ("OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNAVAILABLE", "DEADLINE_EXCEEDED")
_NEAR_LIMIT = 1_000_000  # the webhook body limit is 1 MiB


async def _install(env: Env, definition: dict[str, Any]) -> gateway_pb2.Installation:
    result = await env.gateway.call(
        "RegisterIntegration",
        gateway_pb2.RegisterIntegrationRequest(definition_json=json.dumps(definition)),
        env.tokens.full,
    )
    no_class_name(result)
    expect_status(result.code, ("OK",))
    number = "+1555" + str(abs(hash(definition["id"])) % 10**7).zfill(7)
    installation = await enable(
        env.gateway, env.tokens.full, "acme", definition["id"], number,
        {"Server": env.hostile.url, "API key": env.secret},
    )  # fmt: skip
    assert isinstance(installation, gateway_pb2.Installation), installation
    return installation


@cases.case("send-200000-emoji-through-a-percent-filter-and-a-5000-case-switch")
async def _send(env: Env) -> str:
    definition = demo_definition("adv-enc-send")
    by_encoding = {"GSM-7": "0", "UCS-2": {"text": "$content|ucs2_percent$"}}
    definition["API"]["SendMessage"]["request_parameters"] = {
        "to": "$to$",
        "body": {
            "$switch": "$Server$",
            "cases": {f"v{i}": {"x": [i]} for i in range(5000)},
            "default": {"$switch": "$encoding$", "cases": by_encoding},
        },
    }
    installation = await _install(env, definition)
    request = send_request("acme", installation.numbers[0].number, "👍" * 200_000)
    sent = await env.gateway.call("SendMessage", request, env.tokens.full)
    no_class_name(sent)
    return "send " + expect_status(sent.code, _SENT)


async def _post_message(env: Env, definition: dict[str, Any], content: str) -> str:
    installation = await _install(env, definition)
    body = json.dumps(
        {
            "method": "message",
            "params": {
                "from": "+15557770000",
                "to": installation.numbers[0].number,
                "content": content,
            },
        }
    ).encode()
    status = await env.post(
        env.core_url(webhook_path(installation)), body, {"Content-Type": "application/json"}
    )
    return "webhook " + expect_status(status, (200, 202, 204))


def _webhook_case(name: str, encoding: str, content: str) -> None:
    async def run(env: Env) -> str:
        definition = demo_definition(f"adv-enc-{name}")
        for model in definition["Webhook"]:
            if model["event_type"] == "message":
                model["decode"] = {"content": encoding}
        return await _post_message(env, definition, content)

    cases.add(name, run)


_webhook_case("decode-ucs2-hex-near-the-body-limit", "ucs2_hex", "0041" * (_NEAR_LIMIT // 4))
_webhook_case("decode-odd-hex-near-the-body-limit", "ucs2_hex", "F" * (_NEAR_LIMIT - 1))
_webhook_case("decode-percent-signs-near-the-body-limit", "ucs2_percent", "%" * _NEAR_LIMIT)
_webhook_case(
    "decode-percent-utf16-near-the-body-limit", "ucs2_percent", "%00a" * (_NEAR_LIMIT // 4)
)
_webhook_case("decode-base64-padding-near-the-body-limit", "base64", "=" * _NEAR_LIMIT)
_webhook_case("decode-gsm7-escapes-near-the-body-limit", "gsm7_hex", "1B" * (_NEAR_LIMIT // 2))


# (ext) Value filters (docs/format.md, "Value filters"): the longest chains the checker allows, with
# the largest arguments, over values at the body limit built to make a naive split or scan slow.
_MAP_32 = "map:" + ",".join(f"{i}=" for i in range(31)) + ",." + "y" * 20 + "=z"
_CHAIN = f"part:.:-64|trim_suffix:{'.' * 60}|{_MAP_32}|upper"


def _filter_case(name: str, filters: str, content: str) -> None:
    async def run(env: Env) -> str:
        definition = demo_definition(f"adv-filter-{name}")
        for model in definition["Webhook"]:
            if model["event_type"] == "message":
                model["request_parameters"]["params"]["content"] = f"$content|{filters}$"
        return await _post_message(env, definition, content)

    cases.add(name, run)


_filter_case("value-filters-chain-over-a-million-dots", _CHAIN, "." * _NEAR_LIMIT)
_filter_case(
    "value-filters-part-64-over-a-million-separators", "part:ab:64", "ab" * (_NEAR_LIMIT // 2)
)
_filter_case(
    "value-filters-default-lower-near-the-body-limit",
    "default:x|lower|part: :-1",
    "A " * (_NEAR_LIMIT // 2),
)


@cases.case("send-200000-emoji-through-four-value-filters-and-an-encoding")
async def _send_filters(env: Env) -> str:
    definition = demo_definition("adv-filter-send")
    definition["API"]["SendMessage"]["request_parameters"] = {
        "to": "$to$",
        "body": f"$content|part:👍:-64|{_MAP_32}|lower|ucs2_percent$",
    }
    installation = await _install(env, definition)
    request = send_request("acme", installation.numbers[0].number, "👍" * 200_000)
    sent = await env.gateway.call("SendMessage", request, env.tokens.full)
    no_class_name(sent)
    return "send " + expect_status(sent.code, _SENT)

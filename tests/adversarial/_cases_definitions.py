"""Pathological definitions through RegisterIntegration: deep templates, huge literal lists, long
patterns, thousands of models, deeply nested JSON.

A definition is refused (INVALID_ARGUMENT; RESOURCE_EXHAUSTED when the request is larger than the
server receives at all) or accepted (OK), never anything else and never with a stall or a memory
blow-up; sends and webhooks through an accepted one stay bounded as well.
"""

from __future__ import annotations

import json
from typing import Any

from msgbridge.v1 import gateway_pb2

from ._case import MIB, Cases, expect, expect_status
from ._checks import no_class_name
from ._env import Env, demo_definition, enable, message_webhook, send_request, webhook_path

__all__ = ["CASES"]

cases = Cases("definitions")
CASES = cases.all

_REGISTERED = ("OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED")
# What a send through a strange but accepted definition may end in: anything but an internal
# error (or a stall, which the prober sees).
_SENT = ("OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNAVAILABLE", "DEADLINE_EXCEEDED")


async def _register(env: Env, text: str) -> str:
    result = await env.gateway.call(
        "RegisterIntegration",
        gateway_pb2.RegisterIntegrationRequest(definition_json=text),
        env.tokens.full,
    )
    no_class_name(result)
    return expect_status(result.code, _REGISTERED)


def _number(name: str) -> str:
    return "+1555" + str(abs(hash(name)) % 10**7).zfill(7)


async def _install(env: Env, definition: dict[str, Any]) -> gateway_pb2.Installation | str:
    """Register ``definition`` and, when accepted, enable it for acme; else the refusal's code."""
    code = await _register(env, _text(definition))
    if code != "OK":
        return code
    return await enable(
        env.gateway, env.tokens.full, "acme", definition["id"], _number(definition["id"]),
        {"Server": env.hostile.url, "API key": env.secret},
    )  # fmt: skip


async def _send_through(
    env: Env, definition: dict[str, Any], text: str = "ok", wanted: tuple[str, ...] = _SENT
) -> str:
    """Install ``definition``; when accepted, send ``text`` (the hostile provider's behaviour)."""
    installation = await _install(env, definition)
    if isinstance(installation, str):
        return installation
    request = send_request("acme", installation.numbers[0].number, text)
    sent = await env.gateway.call("SendMessage", request, env.tokens.full)
    no_class_name(sent)
    return "registered, send " + expect_status(sent.code, wanted)


async def _webhook_through(env: Env, definition: dict[str, Any], body: bytes) -> str:
    """Install ``definition``; when accepted, post ``body`` (NUMBER: the installation's number)
    to its URL."""
    installation = await _install(env, definition)
    if isinstance(installation, str):
        return installation
    status = await env.post(
        env.core_url(webhook_path(installation)),
        body.replace(b"NUMBER", installation.numbers[0].number.encode()),
        {"Content-Type": "application/json"},
    )
    return "registered, webhook " + expect_status(status, (200, 400, 413))


def _text_case(name: str, text: str) -> None:
    async def run(env: Env) -> str:
        return await _register(env, text)

    cases.add(name, run)


_DEEP = "@deep@"


def _nested(depth: int, leaf: str) -> str:
    """A marker that :func:`_text` replaces with ``{"a": {"a": … leaf …}}``, ``depth`` deep
    (json.dumps itself cannot write what is deeper than Python's recursion limit)."""
    return f"{_DEEP}{depth}:{leaf}{_DEEP}"


def _text(definition: dict[str, Any]) -> str:
    """The definition's JSON text, with each :func:`_nested` marker (a JSON string) expanded."""
    text = json.dumps(definition)
    while (start := text.find('"' + _DEEP)) >= 0:
        end = text.index(_DEEP + '"', start + 1)
        depth, _, leaf = text[start + 1 + len(_DEEP) : end].partition(":")
        nested = '{"a":' * int(depth) + json.dumps(leaf) + "}" * int(depth)
        text = text[:start] + nested + text[end + len(_DEEP) + 1 :]
    return text


_text_case("json-100000-deep-arrays", "[" * 100_000 + "]" * 100_000)
_text_case("json-100000-deep-objects", '{"a":' * 100_000 + "1" + "}" * 100_000)
_text_case("json-truncated", json.dumps(demo_definition("adv-truncated"))[:-10])
_text_case(
    "json-lone-surrogates", json.dumps(demo_definition("adv-surrogates", name="\ud800\udfff\ud800"))
)
_text_case(
    "json-1e999999-numbers",
    json.dumps(demo_definition("adv-numbers"))[:-1]
    + ', "x": 1e999999, "y": '
    + "9" * 100_000
    + "}",
)
_text_case("json-100000-duplicate-keys", "{" + ", ".join(['"id": "adv-dupes"'] * 100_000) + "}")
_text_case("not-json-at-all", "\x00\x01 not json")
_text_case("json-a-3mib-string", json.dumps(demo_definition("adv-3mib", name="n" * (3 * MIB))))
_text_case(
    "placeholder-name-100kb",
    json.dumps(
        demo_definition(
            "adv-long-name", auth={"type": "Bearer", "token": "$" + "a" * 100_000 + "$"}
        )
    ),
)
_text_case(
    "10000-properties",
    json.dumps(demo_definition("adv-properties", properties=[f"p{i}" for i in range(10_000)])),
)


def _send_case(name: str, key: str, value: object, *, inner: str | None = None) -> None:
    """A definition whose SendMessage ``key`` (or ``key``'s ``inner`` entry) is ``value``, sent
    through when accepted."""

    async def run(env: Env) -> str:
        definition = demo_definition(f"adv-{name}")
        if inner is None:
            definition["API"]["SendMessage"][key] = value
        else:
            definition["API"]["SendMessage"][key][inner] = value
        return await _send_through(env, definition)

    cases.add(name, run)


_send_case("template-5000-deep", "request_parameters", _nested(5000, "$content$"))
_send_case("template-900-deep", "request_parameters", _nested(900, "$content$"))
_send_case(
    "template-200000-literal-list", "request_parameters", ["literal"] * 200_000, inner="padding"
)
_send_case(
    "template-50000-placeholders", "request_parameters", "$content$" * 50_000, inner="content"
)
_send_case("url-20000-placeholders", "request_url", "http://$Server$/messages?" + "$to$" * 20_000)
_send_case("response-map-5000-deep", "response_map", _nested(5000, "$messageid$"))
_send_case("response-map-20000-literals", "response_map", {f"k{i}": f"v{i}" for i in range(20_000)})


@cases.case("response-map-six-placeholders-500-dashes", timeout_s=45.0)
async def _six_placeholders(env: Env) -> str:
    # issue/3's map with more placeholders: a backtracking matcher never ends on this one.
    definition = demo_definition("adv-six-placeholders")
    definition["API"]["SendMessage"]["response_map"] = {
        "result": "$messageid$-$status$-$error$-$messageid$-$status$-$error$!"
    }
    return await _send_through(
        env, definition, "dashes500", ("OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION")
    )


def _message_model(content: str, key: str = "message") -> dict[str, Any]:
    return {
        "event_key": key,
        "event_type": "message",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "content": content},
        },
    }


@cases.case("webhook-pattern-long-value-200000-dashes")
async def _long_pattern(env: Env) -> str:
    definition = demo_definition("adv-long-pattern")
    definition["Webhook"] = [_message_model("$content$-$messageid$-$status$-$error$!")]
    body = message_webhook("NUMBER", "-" * 200_000)
    return await _webhook_through(env, definition, body)


@cases.case("webhook-pattern-5000-literal-parts")
async def _many_parts_pattern(env: Env) -> str:
    definition = demo_definition("adv-literal-parts")
    definition["Webhook"] = [_message_model("$content$" + "-x" * 5000 + "$status$")]
    body = message_webhook("NUMBER", "-x" * 100_000)
    return await _webhook_through(env, definition, body)


@cases.case("webhook-5000-models-none-matches")
async def _many_models(env: Env) -> str:
    definition = demo_definition("adv-many-models")
    definition["Webhook"] = [_message_model("$content$", key=f"k{i}") for i in range(5000)]
    body = json.dumps([{"method": "nothing", "params": {"to": "NUMBER"}}] * 200).encode()
    return await _webhook_through(env, definition, body)


@cases.case("list-integrations-after-large-definitions")
async def _list_after(env: Env) -> str:
    # Five definitions just under the 1 MiB a definition may have: a page holding them all
    # would pass a default client's 4 MiB receive limit, so list replies must page by bytes.
    for index in range(5):
        large = demo_definition(f"adv-large-{index}", name="n" * 1_040_000)
        code = await _register(env, json.dumps(large))
        expect(code == "OK", f"a definition of just under 1 MiB was {code}")
    result = await env.gateway.call(
        "ListIntegrations", gateway_pb2.ListIntegrationsRequest(), env.tokens.read
    )
    return expect_status(result.code, ("OK",))


@cases.case("split-900kb-text-into-one-character-parts")
async def _split_huge_text(env: Env) -> str:
    # (ext) docs/format.md, "Several requests per send": cutting stops past the bound of 16
    # requests, so a text as large as a request may carry costs one pass over it and is refused
    # before anything is sent.
    definition = demo_definition("adv-split-length")
    definition["API"]["SendMessage"]["split"] = {"max_length": 1}
    return await _send_through(env, definition, "x" * 900_000, ("INVALID_ARGUMENT",))


@cases.case("split-750kb-ucs2-text-into-one-segment-parts")
async def _split_huge_ucs2_text(env: Env) -> str:
    definition = demo_definition("adv-split-segments")
    definition["API"]["SendMessage"]["split"] = {"max_segments": 1}
    return await _send_through(env, definition, "😀 " * 150_000, ("INVALID_ARGUMENT",))

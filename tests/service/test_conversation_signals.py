"""(ext) Conversation signals end to end (docs/format.md, "Conversation signals"): SendTyping and
MarkRead reach the provider at once, through the installation holding `from`, as the definition
renders them; a provider's refusal is the call's error; a definition without the request answers
FAILED_PRECONDITION NOT_SUPPORTED; and inbound typing, conversation and deleted-message events
reach a subscriber that names their type."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider
from server.store import ExchangeKind, ProviderExchange

from .conftest import SEED_MODELS, Gateway, definition, rpc_details
from .test_inbound import (
    Subscriber,
    hook_path,
    http,  # noqa: F401 (a fixture)
    inbound,  # noqa: F401 (a fixture)
    inbound_definition,
    post,
)

E = gateway_pb2.Event
OURS, THEIRS = "+15550001111", "+15557654321"


def signals_definition(provider_url: str, **extra: Any) -> str:
    """The service tests' definition with a SendTyping and a MarkRead request."""
    doc = json.loads(definition(provider_url))
    doc["API"]["SendTyping"] = {
        "request_method": "POST",
        "request_url": provider_url + "/typing",
        "request_parameters": {
            "from": "$from$",
            "to": "$to$",
            "action": "typing_on",
            "reply_to": "$messageid$",
            "agent": "$extension$",
        },
    }
    doc["API"]["MarkRead"] = {
        "request_method": "PUT",
        "request_url": provider_url + "/messages/$messageid$/read",
        "request_parameters": {"status": "read", "chat": "$to$"},
        "response_map": {"ok": True, "error": "$error$"},
        "response_rules": {
            "errors": [
                {
                    "status": [400],
                    "when": {"pointer": "/code", "one_of": [131047]},
                    "outcome": "blocked",
                }
            ]
        },
        **extra,
    }
    return json.dumps(doc)


def _signal(**fields: Any) -> gateway_pb2.SignalRequest:
    request = gateway_pb2.SignalRequest(org_id="org-1", to=THEIRS, **fields)
    setattr(request, "from", OURS)
    return request


async def test_typing_and_read_reach_the_provider_as_rendered(
    gateway: Gateway, provider: RunningFakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.register(signals_definition(provider.url))
    installation = await gateway.enable("acme-sms")
    provider.state.script("/messages/wamid.7/read", Answer(json={"ok": True}))
    log = gateway.server.exchanges
    assert log is not None
    kept: list[ProviderExchange] = []  # as the store is given them: built and masked

    async def record_exchanges(exchanges: Sequence[ProviderExchange]) -> None:
        kept.extend(exchanges)

    monkeypatch.setattr(gateway.server.store, "record_exchanges", record_exchanges)

    typing = await gateway.stub.SendTyping(_signal(provider_message_id="wamid.7", extension="101"))
    read = await gateway.stub.MarkRead(_signal(provider_message_id="wamid.7"))

    assert (typing.installation_id, typing.integration_id) == (installation.id, "acme-sms")
    assert typing.provider_status == 200 and read.provider_status == 200
    first, second = provider.state.requests[-2:]
    assert (first.method, first.path) == ("POST", "/typing")
    assert first.json == {
        "from": OURS,
        "to": THEIRS,
        "action": "typing_on",
        "reply_to": "wamid.7",
        "agent": "101",
    }
    assert first.header("Authorization") == "Bearer key-123"
    assert (second.method, second.path) == ("PUT", "/messages/wamid.7/read")
    assert second.json == {"status": "read", "chat": THEIRS}
    # Each call is in the exchange log, masked, as a signal of no message.
    await log.flush()
    assert [(e.kind, e.url, e.message_id) for e in kept] == [
        (ExchangeKind.SIGNAL, provider.url + "/typing", None),
        (ExchangeKind.SIGNAL, provider.url + "/messages/wamid.7/read", None),
    ]
    assert ("Authorization", "***") in kept[0].request_headers
    # A signal is no message: nothing was recorded or queued.
    listed = await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest(org_id="org-1"))
    assert list(listed.messages) == []


async def test_typing_without_a_message_id_leaves_the_key_out(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(signals_definition(provider.url))
    await gateway.enable("acme-sms")
    await gateway.stub.SendTyping(_signal())
    assert provider.state.requests[-1].json == {"from": OURS, "to": THEIRS, "action": "typing_on"}


async def test_a_provider_refusal_is_the_calls_error_and_is_not_retried(
    gateway: Gateway, provider: RunningFakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await gateway.register(signals_definition(provider.url))
    await gateway.enable("acme-sms")
    provider.state.script("/messages/wamid.9/read", Answer(status=400, json={"code": 131047}))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.stub.MarkRead(_signal(provider_message_id="wamid.9"))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    info = rpc_details(refused.value)["error_info"]
    assert info.reason == "MESSAGE_BLOCKED"
    assert info.metadata["provider_code"] == "131047"
    assert len([r for r in provider.state.requests if r.path == "/messages/wamid.9/read"]) == 1
    (line,) = [r for r in caplog.records if r.getMessage() == "signal ended"]
    assert (line.signal, line.outcome, line.code, line.reason, line.provider_status) == (  # type: ignore[attr-defined]
        "MarkRead",
        "failed",
        "FAILED_PRECONDITION",
        "MESSAGE_BLOCKED",
        400,
    )

    # A 2xx whose map literal fails is refused as a send's would be.
    provider.state.script("/messages/wamid.8/read", Answer(json={"ok": False, "error": "gone"}))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await gateway.stub.MarkRead(_signal(provider_message_id="wamid.8"))
    assert rpc_details(failed.value)["error_info"].reason == "PROVIDER_REFUSED"
    assert "gone" in (failed.value.details() or "")


async def test_a_definition_without_the_request_is_not_supported(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(definition(provider.url))
    await gateway.enable("acme-sms")
    before = len(provider.state.requests)
    for call in (gateway.stub.SendTyping, gateway.stub.MarkRead):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(_signal(provider_message_id="wamid.1"))
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        info = rpc_details(refused.value)["error_info"]
        assert info.reason == "NOT_SUPPORTED"
        assert info.metadata["integration"] == "acme-sms"
    assert len(provider.state.requests) == before


async def test_mark_read_needs_the_message_and_a_number_of_the_organisation(
    gateway: Gateway, provider: RunningFakeProvider
) -> None:
    await gateway.register(signals_definition(provider.url))
    await gateway.enable("acme-sms")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await gateway.stub.MarkRead(_signal())
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    [violation] = rpc_details(invalid.value)["bad_request"].field_violations
    assert violation.field == "provider_message_id"
    stranger = _signal(provider_message_id="wamid.1")
    setattr(stranger, "from", "+15559990000")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await gateway.stub.MarkRead(stranger)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert rpc_details(denied.value)["error_info"].reason == "NUMBER_NOT_ASSIGNED"


WEBHOOKS: list[dict[str, Any]] = [
    *SEED_MODELS,
    {
        "event_key": "typing",
        "event_type": "typing",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "state": "$status?$"},
        },
    },
    {
        "event_key": "referral",
        "event_type": "conversationStarted",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "ref": "$ref$"},
        },
        "keep": ["ref"],
    },
    {
        "event_key": "deleted",
        "event_type": "messageDeleted",
        "request_method": "POST",
        "request_parameters": {
            "method": "$event_key$",
            "params": {"from": "$from$", "to": "$to$", "mid": "$messageid$"},
        },
    },
]
SIGNALS = [E.TYPING, E.CONVERSATION_STARTED, E.MESSAGE_DELETED]


async def test_inbound_signals_reach_only_a_subscriber_that_names_them(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await inbound.register(inbound_definition(provider.url, WEBHOOKS))
    installation = await inbound.enable("acme-sms", numbers={"+61123456789": ["101"]})
    asking = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True, types=SIGNALS))
    everything = Subscriber(inbound, gateway_pb2.StreamEventsRequest(earliest=True))
    path = hook_path(installation)
    numbers = {"from": "+61855555555", "to": "+61123456789"}
    posts = [
        {"method": "referral", "params": {**numbers, "ref": "summer-ad"}},
        {"method": "typing", "params": {**numbers, "state": "on"}},
        {"method": "message", "params": {**numbers, "content": "hi"}},
        {"method": "deleted", "params": {**numbers, "mid": "m-42"}},
        {"method": "deleted", "params": {**numbers, "mid": "m-42"}},  # a retry: no new event
    ]
    for body in posts:
        assert (await post(http, inbound, path, body)) == (200, "")

    named = await asking.wait_for(3)
    classic = await everything.wait_for(1)
    await asking.close()
    await everything.close()

    assert [e.type for e in named] == [E.CONVERSATION_STARTED, E.TYPING, E.MESSAGE_DELETED]
    started, typing, deleted = named
    assert typing.status == "on"
    for event in named:  # routed by `to`, with its users, and no message of ours
        assert (getattr(event, "from"), event.to) == ("+61855555555", "+61123456789")
        assert event.installation_id == installation.id and list(event.users) == ["101"]
        assert event.message_id == ""
    assert dict(started.fields) == {"ref": "summer-ad"}
    assert deleted.provider_message_id == "m-42"
    assert [e.type for e in classic] == [E.MESSAGE]

"""What the delivery pipeline's service tests share (docs/delivery.md): a gateway with short
retry and timeout settings, a definition with `response_rules` or `provider_deduplicates`, sends
with SendOptions, and waiting for a message to reach a state (polling GetMessage, within a bound
that only stops a broken test; nothing asserts how long anything took)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory, definition

__all__ = [
    "FAST",
    "FINAL",
    "Q",
    "delivery_definition",
    "enable",
    "fails",
    "fast_gateway",
    "message",
    "outcome_event",
    "queued_send",
    "received_texts",
    "send_at",
    "send_within",
    "until_state",
]

#: Settings that keep every retry and timeout short (the provider is on 127.0.0.1).
FAST: dict[str, Any] = {
    "send_retry_initial_s": 0.05,
    "send_retry_max_s": 0.2,
    "send_max_attempts": 5,
    "provider_timeout_s": 2.0,
    "send_lease_s": 30.0,
    "send_reply_margin_s": 0.25,
}

Q = gateway_pb2.SendOptions.QUEUE
FINAL = (
    gateway_pb2.Message.SENT,
    gateway_pb2.Message.FAILED,
    gateway_pb2.Message.CANCELLED,
    gateway_pb2.Message.DELIVERED,
)


def delivery_definition(
    provider_url: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    deduplicates: bool = False,
    id: str = "acme-sms",
) -> str:
    """The conftest definition, its SendMessage carrying `$gateway_id$` (as `ref`), with
    `response_rules.errors` and `provider_deduplicates` when given (docs/format.md)."""
    parameters = {"from": "$from$", "to": "$to$", "content": "$content$", "ref": "$gateway_id$"}
    doc = json.loads(definition(provider_url, id=id, parameters=parameters))
    send = doc["API"]["SendMessage"]
    if errors:
        send["response_rules"] = {"errors": errors}
    if deduplicates:
        send["provider_deduplicates"] = True
    return json.dumps(doc)


async def fast_gateway(
    start_gateway: GatewayFactory,
    provider_url: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    deduplicates: bool = False,
    limits: gateway_pb2.SendLimits | None = None,
    **settings: Any,
) -> Gateway:
    """A gateway with :data:`FAST` settings (``settings`` override them), the definition
    registered and installation ``org-1`` enabled for +15550001111."""
    gateway: Gateway = await start_gateway(**{**FAST, **settings})
    await gateway.register(
        delivery_definition(provider_url, errors=errors, deduplicates=deduplicates)
    )
    await enable(gateway, limits=limits)
    return gateway


async def enable(
    gateway: Gateway,
    *,
    org: str = "org-1",
    number: str = "+15550001111",
    limits: gateway_pb2.SendLimits | None = None,
) -> gateway_pb2.Installation:
    """Enable acme-sms for ``org`` with one ``number`` and these ``limits``."""
    return await gateway.stub.EnableIntegration(
        gateway_pb2.EnableIntegrationRequest(
            org_id=org,
            integration_id="acme-sms",
            properties={"API key": "key-123"},
            numbers=[gateway_pb2.NumberAssignment(number=number, users=["101"])],
            send_limits=limits,
        )
    )


def send_at(seconds: float) -> gateway_pb2.SendOptions:
    """Options scheduling a send ``seconds`` from now."""
    options = gateway_pb2.SendOptions()
    options.send_at.FromDatetime(datetime.now(UTC) + timedelta(seconds=seconds))
    return options


async def queued_send(gateway: Gateway, **fields: Any) -> gateway_pb2.SendReply:
    """A QUEUE-mode send: replied QUEUED at once."""
    reply = await gateway.send(options=gateway_pb2.SendOptions(mode=Q), **fields)
    assert reply.state == gateway_pb2.Message.QUEUED
    return reply


async def fails(gateway: Gateway, **fields: Any) -> grpc.aio.AioRpcError:
    """The error a send fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.send(**fields)
    return caught.value


async def message(gateway: Gateway, message_id: str) -> gateway_pb2.Message:
    return await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=message_id))


async def until_state(
    gateway: Gateway,
    message_id: str,
    states: Iterable[gateway_pb2.Message.State.ValueType] = FINAL,
    *,
    attempts: int = 0,
    bound_s: float = 15.0,
) -> gateway_pb2.Message:
    """The message once it is in one of ``states`` with at least ``attempts`` attempts recorded
    (the bound only ends a test that hangs)."""
    wanted = set(states)
    async with asyncio.timeout(bound_s):
        while True:
            record = await message(gateway, message_id)
            if record.state in wanted and len(record.attempt_log) >= attempts:
                return record
            await asyncio.sleep(0.02)


def received_texts(provider: RunningFakeProvider, path: str = "/messages") -> list[str]:
    """The texts the provider received, in the order it received them."""
    return [r.json["content"] for r in provider.state.requests_to(path)]


async def outcome_event(
    gateway: Gateway, message_id: str, *, bound_s: float = 15.0
) -> gateway_pb2.Event:
    """The MESSAGE_SENT or MESSAGE_FAILED event of ``message_id``, read from StreamEvents (from
    the earliest event; the bound only ends a test that hangs)."""
    call = gateway.stub.StreamEvents(gateway_pb2.StreamEventsRequest(earliest=True))
    outcomes = (gateway_pb2.Event.MESSAGE_SENT, gateway_pb2.Event.MESSAGE_FAILED)
    try:
        async with asyncio.timeout(bound_s):
            async for batch in call:
                for event in batch.events:
                    if event.message_id == message_id and event.type in outcomes:
                        return event
    finally:
        call.cancel()
    raise AssertionError("the event stream ended")


async def send_within(gateway: Gateway, timeout_s: float, **fields: Any) -> gateway_pb2.SendReply:
    """A send whose caller waits at most ``timeout_s`` (its gRPC deadline)."""
    request = gateway_pb2.SendMessageRequest(
        org_id=fields.pop("org", "org-1"),
        to=fields.pop("to", "+15557654321"),
        text=fields.pop("text", "hello"),
        **fields,
    )
    setattr(request, "from", "+15550001111")
    reply: gateway_pb2.SendReply = await gateway.stub.SendMessage(request, timeout=timeout_s)
    return reply

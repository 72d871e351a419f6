"""Opt-outs enforced on sends over real sockets (docs/delivery.md, "Opt-outs"; issue 16): after
an inbound STOP a send from that number to that recipient is refused FAILED_PRECONDITION
(RECIPIENT_OPTED_OUT) before anything reaches the provider, until a START; and a provider error
the definition's `response_rules` maps `opted_out` records an opt-out (source "provider") that
refuses the next send the same way — numbers written as the caller likes; and a message queued
before the recipient opted out is not sent when its turn comes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ._delivery import FAST, Q, delivery_definition, fails, outcome_event, send_at, until_state
from .conftest import Gateway, GatewayFactory, rpc_details
from .test_inbound import hook_path, post
from .test_more_event_types import WEBHOOKS
from .test_opt_outs import OURS, THEIRS, start, stop

OPTED_OUT = [
    {"status": [400], "when": {"pointer": "/code", "one_of": [21610]}, "outcome": "opted_out"}
]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def _gateway(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> tuple[Gateway, gateway_pb2.Installation]:
    """A gateway with a sidecar, the opt-out webhook models and the opted-out error entry; the
    installation holds OURS in region AU."""
    gateway: Gateway = await start_gateway(sidecar=True, **FAST)
    doc = json.loads(delivery_definition(provider.url, errors=OPTED_OUT))
    doc["Webhook"] = WEBHOOKS
    await gateway.register(json.dumps(doc))
    installation = await gateway.enable("acme-sms", numbers={OURS: ["101"]}, region="AU")
    return gateway, installation


def _from(number: str) -> dict[str, str]:
    return {"from": number}


async def _refused(gateway: Gateway, **fields: object) -> None:
    error = await fails(gateway, **fields)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(error)["error_info"].reason == "RECIPIENT_OPTED_OUT"


async def test_an_inbound_stop_refuses_sends_until_start(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    session: aiohttp.ClientSession,
) -> None:
    gateway, installation = await _gateway(start_gateway, provider)
    path = hook_path(installation)
    assert await post(session, gateway, path, stop()) == (200, "")

    await _refused(gateway, to=THEIRS, **_from(OURS))
    await _refused(gateway, to="(08) 5555 5555", **_from("0123 456 789"))
    await _refused(gateway, to=THEIRS, options=gateway_pb2.SendOptions(mode=Q), **_from(OURS))
    assert provider.state.requests_to("/messages") == []
    # Another recipient, and the refused ones recorded nothing.
    other = await gateway.send(to="+61855555556", **_from(OURS))
    assert other.state == gateway_pb2.Message.SENT
    listed = await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest())
    assert [m.message_id for m in listed.messages] == [other.message_id]

    assert await post(session, gateway, path, start()) == (200, "")
    again = await gateway.send(to=THEIRS, text="welcome back", **_from(OURS))
    assert again.state == gateway_pb2.Message.SENT
    assert [r.json["to"] for r in provider.state.requests_to("/messages")] == [
        "+61855555556",
        THEIRS,
    ]


@pytest.mark.parametrize(
    ("sender", "recipient"), [(OURS, THEIRS), ("0123 456 789", "(08) 5555-5555")]
)
async def test_a_provider_opted_out_error_records_an_opt_out(
    start_gateway: GatewayFactory, provider: RunningFakeProvider, sender: str, recipient: str
) -> None:
    gateway, installation = await _gateway(start_gateway, provider)
    provider.state.script("/messages", Answer(status=400, json={"code": 21610}), Answer())

    await _refused(gateway, to=recipient, **_from(sender))

    listed = await gateway.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest())
    (opt_out,) = listed.opt_outs
    assert (getattr(opt_out, "from"), opt_out.to) == (OURS, THEIRS)
    assert (opt_out.source, opt_out.installation_id) == ("provider", installation.id)
    assert len(provider.state.requests_to("/messages")) == 1
    # Refused before the provider: it would answer 200 now.
    await _refused(gateway, to=THEIRS, **_from(OURS))
    await _refused(gateway, to=recipient, **_from(sender))
    assert len(provider.state.requests_to("/messages")) == 1
    # Other recipients still go.
    assert (await gateway.send(to="+61855555556", **_from(OURS))).state == (
        gateway_pb2.Message.SENT
    )


async def test_a_queued_message_to_a_recipient_who_opts_out_meanwhile_is_not_sent(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    session: aiohttp.ClientSession,
) -> None:
    gateway, installation = await _gateway(start_gateway, provider)
    scheduled = await gateway.send(
        to=THEIRS, text="reminder", options=send_at(1.0), metadata={"k": "v"}, **_from(OURS)
    )
    assert scheduled.state == gateway_pb2.Message.QUEUED

    assert await post(session, gateway, hook_path(installation), stop()) == (200, "")

    record = await until_state(gateway, scheduled.message_id)
    assert record.state == gateway_pb2.Message.FAILED
    assert (
        record.error == "RECIPIENT_OPTED_OUT: the recipient opted out of messages from this number"
    )
    assert [(a.reason, a.provider_status) for a in record.attempt_log] == [
        ("RECIPIENT_OPTED_OUT", 0)
    ]
    assert provider.state.requests_to("/messages") == []
    event = await outcome_event(gateway, scheduled.message_id)
    assert event.type == gateway_pb2.Event.MESSAGE_FAILED and dict(event.metadata) == {"k": "v"}
    assert event.error.startswith("RECIPIENT_OPTED_OUT: ")

"""(ext) The shipped chat definitions' conversation signals (docs/format.md, "Conversation
signals") through the real service: the file registered unchanged behind a stand-in for the
provider's host, an installation with its case set's values, and ``MarkRead`` and ``SendTyping``
as the provider's documentation writes them — the case runner (test_conformance.py) proves sends,
webhooks and Subscribe, not signals. The test id names the definition's file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ..service.conftest import GatewayFactory
from .test_conformance import FIXTURES
from .test_signed_refusals import _install

INBOUND = "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
READ = {"messaging_product": "whatsapp", "status": "read", "message_id": INBOUND}

# file → the path its messages API takes signals on, and the header that authenticates them
SIGNALS = {
    "whatsapp": (
        "/v25.0/106540352242922/messages",
        "Authorization",
        "Bearer EAAJB-test-access-token",
    ),
    "360dialog": ("/messages", "D360-API-KEY", "d360-test-api-key"),
}


def _signal(provider: str) -> gateway_pb2.SignalRequest:
    install: dict[str, Any] = json.loads((FIXTURES / provider / "install.json").read_text())
    [ours] = install["numbers"]
    request = gateway_pb2.SignalRequest(
        org_id="org-1", to="16505551234", provider_message_id=INBOUND
    )
    setattr(request, "from", ours)
    return request


@pytest.mark.parametrize("provider", sorted(SIGNALS), ids=[f"{p}.json" for p in sorted(SIGNALS)])
async def test_mark_read_and_typing_are_sent_as_documented(
    provider: str, start_gateway: GatewayFactory, provider_fake: RunningFakeProvider
) -> None:
    path, header, value = SIGNALS[provider]
    gateway, _, _ = await _install(start_gateway, provider, provider_fake)
    provider_fake.state.script(path, Answer(json={"success": True}))

    read = await gateway.stub.MarkRead(_signal(provider))
    typing = await gateway.stub.SendTyping(_signal(provider))

    assert read.provider_status == 200 and typing.provider_status == 200
    # Subscribe runs beside them after the enable: only the requests to the signals' path
    first, second = provider_fake.state.requests_to(path)[-2:]
    for request in (first, second):
        assert (request.method, request.path) == ("POST", path)
        assert request.header(header) == value
    assert first.json == READ
    assert second.json == {**READ, "typing_indicator": {"type": "text"}}

"""The shipped definitions' conversation signals (docs/format.md, "Conversation signals"), which
case sets do not cover: each file, registered unchanged in a gateway started as ``msgbridge test
--live`` starts one (its provider calls sent to the fake provider by a stand-in), makes the request
its platform documents for ``SendTyping`` — over real sockets, through the gRPC API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from client._live_cases import live_settings
from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc
from server.app import build_server
from server.demo import Answer, RunningFakeProvider

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "providers"
ORG = "org-1"

# provider → (its answer, the signal's to, the request it must receive: method, path, JSON
# body, the headers named)
TYPING: dict[str, tuple[Answer, str, tuple[str, str, Any, dict[str, str]]]] = {
    # https://developers.line.biz/en/reference/messaging-api/#display-a-loading-indicator:
    # 202 and an empty object
    "line": (
        Answer(status=202, json={}),
        "U4af4980629d8b3a8e3b9e4f1e1d2c3b4",
        (
            "POST",
            "/v2/bot/chat/loading/start",
            {"chatId": "U4af4980629d8b3a8e3b9e4f1e1d2c3b4", "loadingSeconds": 5},
            {"Authorization": "Bearer W1DhJ8sbR6QvNnq0cLx3fZ2yVpKe9gTtUo4aXiY7mHs="},
        ),
    ),
    # https://core.telegram.org/bots/api#sendchataction: chat_id and action "typing"; "Returns
    # True on success"
    "telegram": (
        Answer(json={"ok": True, "result": True}),
        "111222333",
        (
            "POST",
            "/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendChatAction",
            {"chat_id": "111222333", "action": "typing"},
            {"Content-Type": "application/json"},
        ),
    ),
}


@pytest.mark.parametrize("provider", sorted(TYPING), ids=[f"{p}.json" for p in sorted(TYPING)])
async def test_send_typing_makes_the_documented_request(
    provider: str, provider_fake: RunningFakeProvider, tmp_path: Path
) -> None:
    answer, to, (method, path, body, headers) = TYPING[provider]
    text = (ROOT / "integrations" / f"{provider}.json").read_text(encoding="utf-8")
    install = json.loads((FIXTURES / provider / "install.json").read_text(encoding="utf-8"))
    [ours] = install["numbers"]
    server, port = await build_server(live_settings(tmp_path, provider, provider_fake.url))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        await stub.RegisterIntegration(gateway_pb2.RegisterIntegrationRequest(definition_json=text))
        await stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=ORG,
                integration_id=provider,
                properties=install["properties"],
                numbers=[gateway_pb2.NumberAssignment(number=ours, users=["101"])],
            )
        )
        provider_fake.state.script(path, answer)
        request = gateway_pb2.SignalRequest(org_id=ORG, to=to)
        setattr(request, "from", ours)
        reply = await stub.SendTyping(request)
    finally:
        await channel.close()
        await server.stop(0)
    assert reply.provider_status == answer.status
    [sent] = provider_fake.state.requests_to(path)
    assert (sent.method, sent.json) == (method, body)
    assert {name: sent.header(name) for name in headers} == headers

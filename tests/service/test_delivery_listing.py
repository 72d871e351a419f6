"""ListMessages and the delivery CLI against the real service (docs/delivery.md; issue 16):
filters by state, installation, organisation and creation time, paging newest first; and
`msgbridge send --queue`, `send --at`, `messages` and `cancel` end to end over real sockets."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import grpc
import pytest

from client.cli import main
from msgbridge.v1 import gateway_pb2
from server.demo import Answer, RunningFakeProvider

from ._delivery import enable, fast_gateway, send_at, until_state
from .conftest import Gateway, GatewayFactory

M = gateway_pb2.Message
OTHER = "+15550002222"  # org-2's number


def _ids(reply: gateway_pb2.ListMessagesResponse) -> list[str]:
    return [m.message_id for m in reply.messages]


async def _listed(gateway: Gateway, **filters: object) -> list[str]:
    return _ids(await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest(**filters)))


async def test_list_messages_filters_and_pages_newest_first(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway = await fast_gateway(start_gateway, provider.url)
    second = await enable(gateway, org="org-2", number=OTHER)
    provider.state.script("/messages", Answer(status=500), Answer())
    with pytest.raises(grpc.aio.AioRpcError):
        await gateway.send(text="fails")  # FAILED (an undeclared 500)
    failed = (await _listed(gateway))[0]
    replies = [await gateway.send(text=f"sent {n}") for n in range(3)]
    sent = [r.message_id for r in replies]
    installation = replies[0].installation_id
    middle = datetime.now(UTC)
    scheduled = [
        (await gateway.send(text=f"later {n}", options=send_at(60))).message_id for n in range(2)
    ]
    theirs = [
        (await gateway.send(org="org-2", text=f"theirs {n}", **{"from": OTHER})).message_id
        for n in range(2)
    ]
    ours = [failed, *sent, *scheduled]

    everything = await _listed(gateway)
    assert everything == list(reversed([*ours, *theirs]))
    assert await _listed(gateway, states=[M.QUEUED]) == list(reversed(scheduled))
    assert await _listed(gateway, states=[M.FAILED]) == [failed]
    assert await _listed(gateway, installation_id=installation) == list(reversed(ours))
    assert await _listed(gateway, installation_id=second.id) == list(reversed(theirs))
    assert await _listed(gateway, installation_id=installation, states=[M.SENT, M.FAILED]) == list(
        reversed([failed, *sent])
    )
    assert await _listed(gateway, org_id="org-2", states=[M.SENT]) == list(reversed(theirs))
    assert await _listed(gateway, org_id="org-2", states=[M.QUEUED]) == []
    after = gateway_pb2.ListMessagesRequest(installation_id=installation)
    after.created_after.FromDatetime(middle)
    assert _ids(await gateway.stub.ListMessages(after)) == list(reversed(scheduled))
    before = gateway_pb2.ListMessagesRequest()
    before.created_before.FromDatetime(middle)
    assert _ids(await gateway.stub.ListMessages(before)) == list(reversed([failed, *sent]))

    paged: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await gateway.stub.ListMessages(
            gateway_pb2.ListMessagesRequest(page_size=3, page_token=token)
        )
        assert len(page.messages) <= 3
        paged += _ids(page)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert paged == everything and pages == 3
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.ListMessages(gateway_pb2.ListMessagesRequest(page_token="nonsense!"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _run_cli(*arguments: str) -> asyncio.Future[int]:
    """``msgbridge …`` in a thread (the service runs on this test's event loop)."""
    return asyncio.ensure_future(asyncio.to_thread(main, list(arguments)))


async def test_the_cli_queues_lists_and_cancels_against_the_service(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MSGBRIDGE_TARGET", raising=False)
    monkeypatch.delenv("MSGBRIDGE_TOKEN", raising=False)
    gateway = await fast_gateway(start_gateway, provider.url)
    target = ("--target", f"127.0.0.1:{gateway.port}")
    send = ("send", "--org", "org-1", "--from", "+15550001111", "--to", "+15557654321")

    assert await _run_cli(*send, "--text", "queued by the cli", "--queue", *target) == 0
    out = capsys.readouterr().out
    assert out.startswith("Queued ") and "GSM-7, 1 segment" in out
    queued_id = out.split()[1]
    assert (await until_state(gateway, queued_id)).state == M.SENT
    assert [r.json["content"] for r in provider.state.requests_to("/messages")] == [
        "queued by the cli"
    ]

    assert await _run_cli(*send, "--text", "later", "--at", "+1h", "--json", *target) == 0
    reply = json.loads(capsys.readouterr().out)
    assert (reply["state"], reply["segments"]) == ("QUEUED", 1)
    later_id = reply["messageId"]

    assert await _run_cli("messages", "--state", "queued", *target) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["ID", "STATE"]
    assert [row.split()[:2] for row in rows] == [[later_id, "queued"]]
    assert await _run_cli("messages", "--org", "org-1", "--json", "--page-size", "1", *target) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(m["messageId"], m["state"]) for m in listed] == [
        (later_id, "QUEUED"),
        (queued_id, "SENT"),
    ]

    assert await _run_cli("cancel", later_id, *target) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Cancelled {later_id}"
    assert "state:         cancelled" in out
    assert (
        await gateway.stub.GetMessage(gateway_pb2.GetMessageRequest(message_id=later_id))
    ).state == M.CANCELLED

    assert await _run_cli("cancel", queued_id, *target) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("FAILED_PRECONDITION: MESSAGE_NOT_CANCELLABLE: ")
    assert len(provider.state.requests_to("/messages")) == 1

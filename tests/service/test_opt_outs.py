"""Opt-outs end to end over real sockets (docs/delivery.md, "Opt-outs"): a STOP webhook records
one, ListOptOuts shows it (numbers written as the caller likes), a START webhook or ClearOptOut
removes it, a token scoped to another organisation neither sees nor clears it, and the
``msgbridge optouts`` commands list and clear them against the running service."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from client import AsyncClient
from client.cli import main
from msgbridge.v1 import gateway_pb2
from server.demo import RunningFakeProvider

from .conftest import Gateway, GatewayFactory, rpc_details
from .test_access_orgs import bearer, token_file
from .test_inbound import (
    hook_path,
    http,  # noqa: F401 (a fixture)
    inbound,  # noqa: F401 (a fixture)
    inbound_definition,
    post,
)
from .test_more_event_types import WEBHOOKS

OURS = "+61123456789"  # the installation's number, region AU: "0123456789" nationally
THEIRS = "+61855555555"  # "(08) 5555-5555" nationally


def stop(recipient: str = THEIRS, *, to: str = OURS) -> dict[str, Any]:
    return {"method": "stop", "params": {"from": recipient, "to": to, "keyword": "STOP"}}


def start(recipient: str = THEIRS, *, to: str = OURS) -> dict[str, Any]:
    return {"method": "start", "params": {"from": recipient, "to": to}}


def listing(**fields: str) -> gateway_pb2.ListOptOutsRequest:
    request = gateway_pb2.ListOptOutsRequest(**{k: v for k, v in fields.items() if k != "from_"})
    setattr(request, "from", fields.get("from_", ""))
    return request


def clearing(installation_id: str, from_: str, to: str) -> gateway_pb2.ClearOptOutRequest:
    request = gateway_pb2.ClearOptOutRequest(installation_id=installation_id, to=to)
    setattr(request, "from", from_)
    return request


def pairs(reply: gateway_pb2.ListOptOutsResponse) -> list[tuple[str, str]]:
    return [(getattr(o, "from"), o.to) for o in reply.opt_outs]


async def set_up(
    gateway: Gateway, provider: RunningFakeProvider
) -> tuple[gateway_pb2.Installation, str]:
    await gateway.register(inbound_definition(provider.url, WEBHOOKS))
    installation = await gateway.enable("acme-sms", numbers={OURS: ["101"]}, region="AU")
    return installation, hook_path(installation)


async def test_a_stop_webhook_records_an_opt_out_and_a_start_webhook_clears_it(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    installation, path = await set_up(inbound, provider)
    assert await post(http, inbound, path, stop()) == (200, "")

    reply = await inbound.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest())
    (opt_out,) = reply.opt_outs
    assert (getattr(opt_out, "from"), opt_out.to) == (OURS, THEIRS)
    assert (opt_out.org_id, opt_out.installation_id) == ("org-1", installation.id)
    assert opt_out.source == "inbound" and opt_out.HasField("created_at")
    assert reply.next_page_token == ""
    # The filters take numbers as a user writes them: the installation's region reads them.
    for written in (
        listing(installation_id=installation.id, to="(08) 5555-5555"),
        listing(installation_id=installation.id, from_="0123456789", to="08 5555 5555"),
        listing(org_id="org-1", to=THEIRS),
    ):
        assert pairs(await inbound.stub.ListOptOuts(written)) == [(OURS, THEIRS)]
    for other in (listing(org_id="org-2"), listing(to="+61855555556"), listing(from_=THEIRS)):
        assert pairs(await inbound.stub.ListOptOuts(other)) == []

    assert await post(http, inbound, path, start()) == (200, "")
    assert pairs(await inbound.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest())) == []


async def test_list_opt_outs_pages_newest_first_and_refuses_a_bad_token(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    _, path = await set_up(inbound, provider)
    recipients = [f"+6185555550{n}" for n in range(5)]
    for recipient in recipients:
        assert await post(http, inbound, path, stop(recipient)) == (200, "")

    first = await inbound.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest(page_size=2))
    assert len(first.opt_outs) == 2 and first.next_page_token
    async with await AsyncClient.connect(f"127.0.0.1:{inbound.port}") as client:
        paged = [o.to async for o in client.list_opt_outs(page_size=2)]
        whole = [o.to async for o in client.list_opt_outs()]
    assert paged == whole == list(reversed(recipients))
    assert [o.to for o in first.opt_outs] == whole[:2]

    for token in ("nonsense!", "12", first.next_page_token[:-2]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await inbound.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest(page_token=token))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_clear_opt_out_takes_numbers_as_written_and_says_whether_it_cleared(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    installation, path = await set_up(inbound, provider)
    assert await post(http, inbound, path, stop()) == (200, "")
    assert await post(http, inbound, path, stop("+61855555556")) == (200, "")

    reply = await inbound.stub.ClearOptOut(
        clearing(installation.id, "0123456789", "(08) 5555-5555")
    )
    assert reply.cleared is True
    again = await inbound.stub.ClearOptOut(clearing(installation.id, OURS, THEIRS))
    assert again.cleared is False
    left = await inbound.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest())
    assert pairs(left) == [(OURS, "+61855555556")]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inbound.stub.ClearOptOut(clearing(installation.id, "", " "))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = rpc_details(caught.value)["bad_request"].field_violations
    assert [v.field for v in violations] == ["from", "to"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inbound.stub.ClearOptOut(clearing("no-such-installation", OURS, THEIRS))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_token_scoped_to_another_org_neither_sees_nor_clears_them(
    tmp_path: Path,
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    tokens = {kind: secrets.token_urlsafe(24) for kind in ("full", "own", "other")}
    gateway: Gateway = await start_gateway(
        sidecar=True, api_tokens_file=token_file(tmp_path / "api-tokens", tokens)
    )
    full, own, other = (bearer(tokens[kind]) for kind in ("full", "own", "other"))
    await gateway.stub.RegisterIntegration(
        gateway_pb2.RegisterIntegrationRequest(
            definition_json=inbound_definition(provider.url, WEBHOOKS)
        ),
        metadata=full,
    )
    installations = {}
    for org, number in (("org-1", OURS), ("org-2", "+61123456780")):
        installations[org] = await gateway.stub.EnableIntegration(
            gateway_pb2.EnableIntegrationRequest(
                org_id=org,
                integration_id="acme-sms",
                properties={"API key": "key-123"},
                numbers=[gateway_pb2.NumberAssignment(number=number)],
            ),
            metadata=full,
        )
        assert await post(http, gateway, hook_path(installations[org]), stop(to=number)) == (
            200,
            "",
        )
    org1 = installations["org-1"].id

    everything = await gateway.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest(), metadata=full)
    assert sorted(o.org_id for o in everything.opt_outs) == ["org-1", "org-2"]
    mine = await gateway.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest(), metadata=other)
    assert [o.org_id for o in mine.opt_outs] == ["org-2"]
    theirs = await gateway.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest(), metadata=own)
    assert [o.org_id for o in theirs.opt_outs] == ["org-1"]

    for request, code in (
        (gateway_pb2.ListOptOutsRequest(org_id="org-1"), grpc.StatusCode.PERMISSION_DENIED),
        (gateway_pb2.ListOptOutsRequest(installation_id=org1), grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.stub.ListOptOuts(request, metadata=other)
        assert caught.value.code() == code
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.ClearOptOut(clearing(org1, OURS, THEIRS), metadata=other)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Still there; org-1's own token may clear it.
    assert (await gateway.stub.ClearOptOut(clearing(org1, OURS, THEIRS), metadata=own)).cleared
    left = await gateway.stub.ListOptOuts(gateway_pb2.ListOptOutsRequest(), metadata=full)
    assert [o.org_id for o in left.opt_outs] == ["org-2"]


def run_cli(*arguments: str) -> Any:
    """``msgbridge …`` in a thread (the service runs on this test's event loop)."""
    return asyncio.to_thread(main, list(arguments))


async def test_the_optouts_commands_list_and_clear(
    inbound: Gateway,  # noqa: F811
    provider: RunningFakeProvider,
    http: aiohttp.ClientSession,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    installation, path = await set_up(inbound, provider)
    for recipient in (THEIRS, "+61855555556"):
        assert await post(http, inbound, path, stop(recipient)) == (200, "")
    target = ("--target", f"127.0.0.1:{inbound.port}")

    assert await run_cli("optouts", *target) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["INSTALLATION", "ORG", "FROM", "TO", "SOURCE", "SINCE"]
    assert [row.split()[:5] for row in rows] == [
        [installation.id, "org-1", OURS, recipient, "inbound"]
        for recipient in ("+61855555556", THEIRS)
    ]

    filters = ("--installation", installation.id, "--to", "(08) 5555-5555")
    assert await run_cli("optouts", "--json", *filters, *target) == 0
    (line,) = capsys.readouterr().out.splitlines()
    shown = json.loads(line)
    assert (shown["from"], shown["to"], shown["orgId"]) == (OURS, THEIRS, "org-1")

    clear = ("optouts", "clear", installation.id, "0123456789", "08 5555 5555")
    assert await run_cli(*clear, *target) == 0
    assert capsys.readouterr().out.startswith("Cleared the opt-out of 08 5555 5555")
    assert await run_cli(*clear, "--json", *target) == 0
    assert json.loads(capsys.readouterr().out) == {"cleared": False}

    assert await run_cli("optouts", "--json", *target) == 0
    assert [json.loads(line)["to"] for line in capsys.readouterr().out.splitlines()] == [
        "+61855555556"
    ]
    # Usage errors exit 2 and reach no server.
    assert await run_cli("optouts", "clear", installation.id, OURS, *target) == 2
    assert "optouts clear INSTALLATION FROM TO" in capsys.readouterr().err
    assert await run_cli(*clear, "--org", "org-1", *target) == 2
    assert "filter the list" in capsys.readouterr().err

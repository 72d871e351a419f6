"""A shipped definition tried unchanged against a stand-in (docs/format.md, "Proving a
definition"): ``provider_stand_in`` sends one integration's provider calls — sends and Subscribe —
to the fake provider on 127.0.0.1, keeping their paths and queries, and only when the outbound
policy allows the stand-in's host."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import grpc
import pytest

from msgbridge.v1 import gateway_pb2
from server.app import build_server
from server.config import SettingsError
from server.demo import Answer, RunningFakeProvider

from .conftest import Gateway, GatewayFactory, service_settings
from .test_subscribe_chain import subscription_after

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"
FIXTURES = ROOT / "tests" / "fixtures" / "providers"


def shipped(provider: str) -> str:
    """The file that ships, byte for byte."""
    return (INTEGRATIONS / f"{provider}.json").read_text(encoding="utf-8")


def install(provider: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((FIXTURES / provider / "install.json").read_text())
    return data


async def test_a_shipped_https_definition_sends_to_the_stand_in(
    start_gateway: GatewayFactory,
    provider: RunningFakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert '"request_url": "https://api.bulksms.com/v1/messages"' in shipped("bulksms")
    caplog.set_level(logging.INFO)
    gateway: Gateway = await start_gateway(provider_stand_in=(f"bulksms={provider.url}",))
    warned = [r for r in caplog.records if getattr(r, "stand_in", None) == provider.url]
    assert warned and warned[0].levelno == logging.WARNING
    assert "bulksms" in warned[0].getMessage()

    integration = await gateway.register(shipped("bulksms"))
    webhooks = (Answer(json=[]), Answer(json={"id": 1}), Answer(json={"id": 2}))
    provider.state.script("/v1/webhooks", *webhooks)  # none exists: both are created
    values = install("bulksms")
    installation = await gateway.enable(
        integration.id,
        numbers=values["numbers"],  # type: ignore[arg-type]
        properties=values["properties"],  # type: ignore[arg-type]
        region="ZA",
    )
    # BulkSMS registers its webhooks (Subscribe) at the stand-in too: let that end first.
    subscription = await subscription_after(gateway, installation.id)
    assert subscription.state == gateway_pb2.Subscription.SUBSCRIBED, subscription.last_error
    provider.state.reset()
    answer = json.loads((FIXTURES / "bulksms" / "send" / "sms_gsm.json").read_text())["answer"]
    provider.state.script("*", Answer(status=answer["status"], json=answer["json"]))
    caplog.clear()
    reply = await gateway.send(**{"from": "+27837654321"}, to="+27821234567", text="Hi")

    assert reply.provider_message_id == "1234567890"
    (received,) = provider.state.requests
    assert (received.method, received.path, received.query) == ("POST", "/v1/messages", ())
    assert received.json == {
        "to": "+27821234567",
        "from": "+27837654321",
        "body": "Hi",
        "encoding": "TEXT",
    }
    redirected = [r for r in caplog.records if getattr(r, "stand_in", None) == provider.url]
    assert [getattr(r, "integration", None) for r in redirected] == ["bulksms"]
    secret = str(values["properties"]["Token Secret"])  # type: ignore[index]
    assert all(secret not in r.getMessage() + str(r.__dict__) for r in caplog.records)


async def test_subscribe_goes_to_the_stand_in_with_its_path(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    gateway: Gateway = await start_gateway(provider_stand_in=(f"telnyx={provider.url}",))
    integration = await gateway.register(shipped("telnyx"))
    values = install("telnyx")
    installation = await gateway.enable(
        integration.id,
        numbers=values["numbers"],  # type: ignore[arg-type]
        properties=values["properties"],  # type: ignore[arg-type]
        region="US",
    )
    async with asyncio.timeout(10):
        while True:
            got = await gateway.stub.GetInstallation(
                gateway_pb2.GetInstallationRequest(installation_id=installation.id)
            )
            if got.subscription.state != gateway_pb2.Subscription.PENDING:
                break
            await asyncio.sleep(0.02)
    subscription = got.subscription
    assert subscription.state == gateway_pb2.Subscription.SUBSCRIBED, subscription.last_error
    profile = values["properties"]["Messaging Profile ID"]  # type: ignore[index]
    (received,) = provider.state.requests
    assert (received.method, received.path) == ("PATCH", f"/v2/messaging_profiles/{profile}")


async def test_other_integrations_still_go_to_their_own_hosts(
    start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> None:
    """The stand-in is one integration's: another one's call keeps its URL (here refused by the
    policy, since it names a documentation address)."""
    gateway: Gateway = await start_gateway(provider_stand_in=(f"bulksms={provider.url}",))
    doc = json.loads(shipped("bulksms"))
    doc["id"] = "other"
    doc["API"]["SendMessage"]["request_url"] = "https://192.0.2.1/v1/messages"
    await gateway.register(json.dumps(doc))
    values = install("bulksms")
    await gateway.enable(
        "other",
        numbers=values["numbers"],  # type: ignore[arg-type]
        properties=values["properties"],  # type: ignore[arg-type]
        region="ZA",
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.send(**{"from": "+27837654321"}, to="+27821234567", text="Hi")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "192.0.2.1" in str(refused.value.details())
    assert provider.state.requests == []


@pytest.mark.parametrize(
    ("allow", "stand_in"),
    [
        ((), "bulksms=http://127.0.0.1:{port}"),  # loopback: not allowed by default
        (("10.0.0.0/8",), "bulksms=http://127.0.0.1:{port}"),
        (("127.0.0.1",), "bulksms=http://localhost.invalid:{port}"),  # no address at all
    ],
)
async def test_a_stand_in_the_policy_does_not_allow_is_refused_at_start(
    tmp_path: Path, provider: RunningFakeProvider, allow: tuple[str, ...], stand_in: str
) -> None:
    port = provider.url.rsplit(":", 1)[1]
    settings = service_settings(
        tmp_path, outbound_allow=allow, provider_stand_in=(stand_in.format(port=port),)
    )
    refused = r"^provider_stand_in bulksms=http://.*: provider calls cannot reach it: "
    with pytest.raises(SettingsError, match=refused):
        await build_server(settings)
    assert not list(tmp_path.iterdir())  # noqa: ASYNC240 - refused before anything was opened

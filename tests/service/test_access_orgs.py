"""Tokens scoped to organisations, and durable consumers, over the real service on 127.0.0.1.

The world: the conftest definition ``acme-sms`` installed for org-1, org-2 and org-3 (one number
each), one message sent and one inbound message received by each, one unmatched webhook. The
tokens: unscoped ``read`` and ``full``, ``full`` tokens scoped to org-1 ("own": acting on org-1's
records) and to org-2 ("other"), a ``full`` token for org-1 and org-3 and a ``read`` token for
org-1. The token file gives them without names, so that ``orgs=`` is the third field.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from server.demo import RunningFakeProvider
from server.security.api_access import hash_token

from .conftest import Gateway, GatewayFactory, definition, rpc_details

TIMEOUT = 10.0
OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
NUMBERS = {"org-1": "+15550001111", "org-2": "+15550002222", "org-3": "+15550003333"}
KINDS = ("read", "full", "own", "other")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass(kw_only=True)
class World:
    """The running service, its tokens and the records made for the tests."""

    channel: grpc.aio.Channel
    gateway: gateway_pb2_grpc.GatewayStub
    ingest: ingest_pb2_grpc.IngestStub
    tokens: dict[str, str]
    installations: dict[str, gateway_pb2.Installation] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    spare: str = ""  # an installation of org-1 without numbers, for DisableIntegration
    unmatched: str = ""

    def as_(self, kind: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens[kind])

    async def deliver(self, org: str, body: dict[str, Any]) -> ingest_pb2.WebhookVerdict:
        """What the sidecar forwards for a webhook posted to ``org``'s installation URL."""
        url = self.installations[org].webhook_url
        delivery = ingest_pb2.WebhookDelivery(
            method="POST",
            path="/" + url.split("://", 1)[1].split("/", 1)[1],
            headers=[ingest_pb2.Header(name="Content-Type", value="application/json")],
            body=json.dumps(body).encode(),
            url=url,
            remote_addr="127.0.0.1",
        )
        verdict: ingest_pb2.WebhookVerdict = await self.ingest.IngestWebhook(
            delivery, metadata=self.as_("ingest"), timeout=TIMEOUT
        )
        return verdict

    async def inbound(self, org: str, text: str) -> None:
        params = {"from": "+61855555555", "to": NUMBERS[org], "content": text}
        body = {"method": "message", "params": params}
        assert (await self.deliver(org, body)).http_status == 200


def token_file(path: Path, tokens: dict[str, str]) -> Path:
    lines = {
        "read": "read {}",
        "full": "full sha256:{}",
        "own": "full {} orgs=org-1",
        "other": "full sha256:{} orgs=org-2",
        "pair": "orgs=org-3,org-1",  # orgs= before the name, which is given here
        "reader": "read {} orgs=org-1",
        "ingest": "ingest sha256:{} sidecar",
    }
    text = []
    for kind, token in tokens.items():
        digest = hash_token(token).hex()
        if kind == "pair":
            text.append(f"full sha256:{digest} {lines[kind]} both-orgs")
        elif "sha256" in lines[kind]:
            text.append(lines[kind].format(digest))
        else:
            text.append(lines[kind].format(token))
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
async def world(
    tmp_path: Path, start_gateway: GatewayFactory, provider: RunningFakeProvider
) -> World:
    kinds = (*KINDS, "pair", "reader", "ingest")
    tokens = {kind: secrets.token_urlsafe(24) for kind in kinds}
    running: Gateway = await start_gateway(
        api_tokens_file=token_file(tmp_path / "api-tokens", tokens)
    )
    world = World(
        channel=running.channel,
        gateway=running.stub,
        ingest=ingest_pb2_grpc.IngestStub(running.channel),
        tokens=tokens,
    )
    await populate(world, provider)
    return world


async def populate(world: World, provider: RunningFakeProvider) -> None:
    full = world.as_("full")
    await world.gateway.RegisterIntegration(
        gateway_pb2.RegisterIntegrationRequest(definition_json=definition(provider.url)),
        metadata=full,
        timeout=TIMEOUT,
    )
    for org, number in NUMBERS.items():
        world.installations[org] = await world.gateway.EnableIntegration(
            enable_request(org, number), metadata=full, timeout=TIMEOUT
        )
        sent = await world.gateway.SendMessage(send_request(org), metadata=full, timeout=TIMEOUT)
        world.messages[org] = sent.message_id
        await world.inbound(org, f"hi {org}")
    spare = await world.gateway.EnableIntegration(
        enable_request("org-1", None), metadata=full, timeout=TIMEOUT
    )
    world.spare = spare.id
    await world.deliver("org-1", {"method": "nothing we know"})
    unmatched = await world.gateway.ListUnmatchedWebhooks(
        gateway_pb2.ListUnmatchedWebhooksRequest(), metadata=full, timeout=TIMEOUT
    )
    world.unmatched = unmatched.webhooks[0].id


def enable_request(org: str, number: str | None) -> gateway_pb2.EnableIntegrationRequest:
    return gateway_pb2.EnableIntegrationRequest(
        org_id=org,
        integration_id="acme-sms",
        properties={"API key": "key-123"},
        numbers=[gateway_pb2.NumberAssignment(number=number, users=["101"])] if number else [],
    )


def send_request(org: str) -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(org_id=org, to="+15557654321", text="hello")
    setattr(request, "from", NUMBERS[org])
    return request


def signal_request(org: str) -> gateway_pb2.SignalRequest:
    request = gateway_pb2.SignalRequest(org_id=org, to="+15557654321", provider_message_id="m-1")
    setattr(request, "from", NUMBERS[org])
    return request


def send_file_request(org: str) -> gateway_pb2.SendFileRequest:
    request = gateway_pb2.SendFileRequest(
        org_id=org, to="+15557654321", media_url="https://example.com/cat.png"
    )
    setattr(request, "from", NUMBERS[org])
    return request


async def first_batch(
    world: World, request: gateway_pb2.StreamEventsRequest, kind: str
) -> gateway_pb2.StreamEventsResponse:
    stream = world.gateway.StreamEvents(request, metadata=world.as_(kind), timeout=TIMEOUT)
    try:
        batch: gateway_pb2.StreamEventsResponse = await stream.read()
    finally:
        stream.cancel()
    return batch


async def outcome(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return OK


Call = Callable[[World, str], Awaitable[Any]]
Request = Callable[[World], Any]


def unary(method: str, request: Request) -> Call:
    async def call(world: World, kind: str) -> Any:
        rpc = getattr(world.gateway, method)
        return await rpc(request(world), metadata=world.as_(kind), timeout=TIMEOUT)

    return call


def streamed(request: Callable[[str], gateway_pb2.StreamEventsRequest]) -> Call:
    async def call(world: World, kind: str) -> Any:
        return await first_batch(world, request(kind), kind)

    return call


async def ingest_call(world: World, kind: str) -> Any:
    delivery = ingest_pb2.WebhookDelivery(method="POST", path="/webhooks/acme-sms/x")
    return await world.ingest.IngestWebhook(delivery, metadata=world.as_(kind), timeout=TIMEOUT)


async def ingest_stream_call(world: World, kind: str) -> Any:
    delivery = ingest_pb2.WebhookDelivery(method="POST", path="/webhooks/acme-sms/x")
    batch = ingest_pb2.DeliveryBatch(
        deliveries=[ingest_pb2.NumberedDelivery(id=1, delivery=delivery)]
    )
    call = world.ingest.IngestWebhooks(iter([batch]), metadata=world.as_(kind), timeout=TIMEOUT)
    return [answers async for answers in call]


async def upload_call(world: World, kind: str) -> Any:
    async def parts() -> AsyncIterator[gateway_pb2.UploadMediaRequest]:
        yield gateway_pb2.UploadMediaRequest(
            start=gateway_pb2.UploadMediaRequest.Start(org_id="org-1", filename="a.txt")
        )
        yield gateway_pb2.UploadMediaRequest(chunk=b"hello")

    return await world.gateway.UploadMedia(parts(), metadata=world.as_(kind), timeout=TIMEOUT)


async def get_media_call(world: World, kind: str) -> Any:
    """org-1's (unknown) file: NOT_FOUND once the call may read org-1's records."""
    request = gateway_pb2.GetMediaRequest(org_id="org-1", media_id="0" * 32)
    return [
        part
        async for part in world.gateway.GetMedia(request, metadata=world.as_(kind), timeout=TIMEOUT)
    ]


async def read_media_call(world: World, kind: str) -> Any:
    request = ingest_pb2.MediaRead(media_id="0" * 32, expires_at=1, signature="x")
    return [
        part
        async for part in world.ingest.ReadMedia(request, metadata=world.as_(kind), timeout=TIMEOUT)
    ]


def installation(world: World) -> str:
    return world.installations["org-1"].id


def on_installation(request: type[Any]) -> Request:
    return lambda w: request(installation_id=installation(w))


def clear_opt_out_request(world: World) -> gateway_pb2.ClearOptOutRequest:
    request = gateway_pb2.ClearOptOutRequest(installation_id=installation(world), to="+15557654321")
    setattr(request, "from", NUMBERS["org-1"])
    return request


DENIED_ALL = (DENIED, DENIED, DENIED)
ORG_CHECKED_READ = (OK, OK, NOT_FOUND)
ORG_CHECKED_WRITE = (DENIED, OK, NOT_FOUND)
ORG_NAMED_WRITE = (DENIED, OK, DENIED)
ORG_NAMED_READ = (OK, OK, DENIED)
OPEN = (OK, OK, OK)
# Every RPC of both services, on org-1's records (or naming org-1), and the codes for the
# unscoped read token, the unscoped full token and the token scoped to org-2. The token scoped to
# org-1 is answered as the unscoped full token, except for the operator-level RPCs (refused).
MATRIX: list[tuple[str, Call, tuple[grpc.StatusCode, grpc.StatusCode, grpc.StatusCode]]] = [
    (
        "RegisterIntegration",
        unary(
            "RegisterIntegration",
            lambda w: gateway_pb2.RegisterIntegrationRequest(
                definition_json=definition("http://127.0.0.1:9", id="beta-sms"), validate_only=True
            ),
        ),
        ORG_NAMED_WRITE,
    ),
    (
        "GetIntegration",
        unary(
            "GetIntegration", lambda w: gateway_pb2.GetIntegrationRequest(integration_id="acme-sms")
        ),
        OPEN,
    ),
    (
        "ListIntegrations",
        unary("ListIntegrations", lambda w: gateway_pb2.ListIntegrationsRequest()),
        OPEN,
    ),
    (
        "DeleteIntegration",
        unary(
            "DeleteIntegration",
            lambda w: gateway_pb2.DeleteIntegrationRequest(integration_id="nope"),
        ),
        (DENIED, NOT_FOUND, DENIED),
    ),
    (
        "EnableIntegration",
        unary("EnableIntegration", lambda w: enable_request("org-1", None)),
        ORG_NAMED_WRITE,
    ),
    (
        "UpdateInstallation",
        unary(
            "UpdateInstallation",
            lambda w: gateway_pb2.UpdateInstallationRequest(
                installation_id=installation(w), default_region="US"
            ),
        ),
        ORG_CHECKED_WRITE,
    ),
    (
        "GetInstallation",
        unary("GetInstallation", on_installation(gateway_pb2.GetInstallationRequest)),
        ORG_CHECKED_READ,
    ),
    (
        "ListInstallations",
        unary("ListInstallations", lambda w: gateway_pb2.ListInstallationsRequest(org_id="org-1")),
        ORG_NAMED_READ,
    ),
    (
        "DisableIntegration",
        unary(
            "DisableIntegration",
            lambda w: gateway_pb2.DisableIntegrationRequest(installation_id=w.spare),
        ),
        ORG_CHECKED_WRITE,
    ),
    ("SendMessage", unary("SendMessage", lambda w: send_request("org-1")), ORG_NAMED_WRITE),
    ("SendFile", unary("SendFile", lambda w: send_file_request("org-1")), ORG_NAMED_WRITE),
    # (ext) authorised as a send; acme-sms has no such request: FAILED_PRECONDITION once allowed
    *(
        (
            name,
            unary(name, lambda w: signal_request("org-1")),
            (DENIED, grpc.StatusCode.FAILED_PRECONDITION, DENIED),
        )
        for name in ("SendTyping", "MarkRead")
    ),
    (
        "GetMessage",
        unary(
            "GetMessage", lambda w: gateway_pb2.GetMessageRequest(message_id=w.messages["org-1"])
        ),
        ORG_CHECKED_READ,
    ),
    (
        "ListMessages",
        unary("ListMessages", lambda w: gateway_pb2.ListMessagesRequest(org_id="org-1")),
        ORG_NAMED_READ,
    ),
    (
        "CancelMessage",  # org-1's message was sent: FAILED_PRECONDITION once allowed
        unary(
            "CancelMessage",
            lambda w: gateway_pb2.CancelMessageRequest(message_id=w.messages["org-1"]),
        ),
        (DENIED, grpc.StatusCode.FAILED_PRECONDITION, NOT_FOUND),
    ),
    (
        "StreamEvents",
        streamed(lambda kind: gateway_pb2.StreamEventsRequest(earliest=True, org_id="org-1")),
        ORG_NAMED_READ,
    ),
    # A durable consumer takes leases: the acknowledging scope. A scoped token's consumer is its
    # own, on its own organisations' events, so the token scoped to org-2 may have one too.
    (
        "StreamEvents",
        streamed(lambda kind: gateway_pb2.StreamEventsRequest(earliest=True, consumer=f"c-{kind}")),
        (DENIED, OK, OK),
    ),
    (
        "AckEvents",
        unary("AckEvents", lambda w: gateway_pb2.AckEventsRequest(consumer="c", cursors=[1, 2])),
        (DENIED, OK, OK),
    ),
    (
        "ListEvents",
        unary("ListEvents", lambda w: gateway_pb2.ListEventsRequest(org_id="org-1")),
        ORG_NAMED_READ,
    ),
    (
        "ListUnmatchedWebhooks",
        unary("ListUnmatchedWebhooks", lambda w: gateway_pb2.ListUnmatchedWebhooksRequest()),
        ORG_NAMED_READ,
    ),
    (
        "ListWebhooks",
        unary("ListWebhooks", lambda w: gateway_pb2.ListWebhooksRequest()),
        ORG_NAMED_READ,
    ),
    (
        "ReplayWebhook",
        unary("ReplayWebhook", lambda w: gateway_pb2.ReplayWebhookRequest(id=w.unmatched)),
        ORG_NAMED_WRITE,
    ),
    (
        "RetrySubscription",
        unary("RetrySubscription", on_installation(gateway_pb2.RetrySubscriptionRequest)),
        ORG_CHECKED_WRITE,
    ),
    (
        "BeginAuthorization",  # acme-sms has no OAuth2: FAILED_PRECONDITION once allowed
        unary("BeginAuthorization", on_installation(gateway_pb2.BeginAuthorizationRequest)),
        (DENIED, grpc.StatusCode.FAILED_PRECONDITION, NOT_FOUND),
    ),
    (
        "ListOptOuts",
        unary("ListOptOuts", lambda w: gateway_pb2.ListOptOutsRequest(org_id="org-1")),
        ORG_NAMED_READ,
    ),
    ("ClearOptOut", unary("ClearOptOut", clear_opt_out_request), ORG_CHECKED_WRITE),
    ("UploadMedia", upload_call, ORG_NAMED_WRITE),
    ("GetMedia", get_media_call, (NOT_FOUND, NOT_FOUND, DENIED)),
    ("IngestWebhook", ingest_call, DENIED_ALL),
    ("IngestWebhooks", ingest_stream_call, DENIED_ALL),
    ("ReadMedia", read_media_call, DENIED_ALL),
]

NOT_PER_ORG = {
    "ReadMedia",
    "RegisterIntegration",
    "DeleteIntegration",
    "ListUnmatchedWebhooks",
    "ListWebhooks",
    "ReplayWebhook",
    "IngestWebhook",
    "IngestWebhooks",
}


def test_the_matrix_covers_every_rpc_of_both_services() -> None:
    services = (
        gateway_pb2.DESCRIPTOR.services_by_name["Gateway"],
        ingest_pb2.DESCRIPTOR.services_by_name["Ingest"],
    )
    every = {method.name for service in services for method in service.methods}
    assert {method for method, _, _ in MATRIX} == every


async def test_each_rpc_for_each_kind_of_token(world: World) -> None:
    seen: list[tuple[str, str, grpc.StatusCode, grpc.StatusCode]] = []
    for method, call, (read, full, other) in MATRIX:
        # The refused first, so that what the allowed ones change cannot explain a refusal.
        codes = {
            kind: await outcome(call(world, kind)) for kind in ("read", "other", "own", "full")
        }
        own = DENIED if method in NOT_PER_ORG else full
        expected = {"read": read, "full": full, "own": own, "other": other}
        seen.extend((method, kind, codes[kind], expected[kind]) for kind in KINDS)
    wrong = [entry for entry in seen if entry[2] != entry[3]]
    assert wrong == []


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_another_orgs_record_is_answered_as_a_missing_one(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    other = world.as_("other")
    org1_installation, org1_message = installation(world), world.messages["org-1"]
    for rpc, request, real_id in (
        (world.gateway.GetInstallation, gateway_pb2.GetInstallationRequest, org1_installation),
        (world.gateway.RetrySubscription, gateway_pb2.RetrySubscriptionRequest, org1_installation),
        (
            world.gateway.DisableIntegration,
            gateway_pb2.DisableIntegrationRequest,
            org1_installation,
        ),
        (world.gateway.GetMessage, gateway_pb2.GetMessageRequest, org1_message),
    ):
        id_field = "message_id" if rpc is world.gateway.GetMessage else "installation_id"
        hidden = await refused(rpc(request(**{id_field: real_id}), metadata=other, timeout=TIMEOUT))
        absent = await refused(
            rpc(request(**{id_field: "no-such-id"}), metadata=other, timeout=TIMEOUT)
        )
        assert hidden.code() == absent.code() == NOT_FOUND
        assert same_but_the_id(hidden.details(), real_id) == same_but_the_id(
            absent.details(), "no-such-id"
        )
        hidden_info = rpc_details(hidden)["error_info"]
        absent_info = rpc_details(absent)["error_info"]
        assert hidden_info.reason == absent_info.reason
        assert {k: same_but_the_id(v, real_id) for k, v in hidden_info.metadata.items()} == {
            k: same_but_the_id(v, "no-such-id") for k, v in absent_info.metadata.items()
        }
    # The operator sees the probes in the log (by the token's name, never the token).
    probes = [r for r in caplog.records if r.getMessage().startswith("another organisation's")]
    assert [getattr(r, "record", None) for r in probes] == ["installation"] * 3 + ["message"]
    assert all(
        world.tokens["other"] not in r.getMessage() + str(r.__dict__) for r in caplog.records
    )
    # org-1's installation is untouched.
    still = await world.gateway.GetInstallation(
        gateway_pb2.GetInstallationRequest(installation_id=installation(world)),
        metadata=world.as_("full"),
        timeout=TIMEOUT,
    )
    assert still.enabled


async def test_an_org_named_outside_the_token_is_permission_denied(world: World) -> None:
    error = await refused(
        world.gateway.SendMessage(
            send_request("org-1"), metadata=world.as_("other"), timeout=TIMEOUT
        )
    )
    assert error.code() == DENIED
    info = rpc_details(error)["error_info"]
    assert (info.reason, dict(info.metadata)) == ("ORG_NOT_ALLOWED", {"org": "org-1"})
    operator = await refused(
        world.gateway.ListUnmatchedWebhooks(
            gateway_pb2.ListUnmatchedWebhooksRequest(), metadata=world.as_("own"), timeout=TIMEOUT
        )
    )
    assert operator.code() == DENIED
    assert rpc_details(operator)["error_info"].reason == "ORG_SCOPED_TOKEN"


def same_but_the_id(text: str | None, record_id: str) -> str:
    return (text or "").replace(record_id, "ID")


def orgs_of(events: Sequence[gateway_pb2.Event]) -> list[str]:
    return sorted({event.org_id for event in events})


async def test_lists_and_streams_without_a_filter_show_only_the_tokens_orgs(world: World) -> None:
    for kind, orgs in (
        ("full", ["org-1", "org-2", "org-3"]),
        ("read", ["org-1", "org-2", "org-3"]),
        ("own", ["org-1"]),
        ("reader", ["org-1"]),
        ("other", ["org-2"]),
        ("pair", ["org-1", "org-3"]),
    ):
        listed = await world.gateway.ListEvents(
            gateway_pb2.ListEventsRequest(), metadata=world.as_(kind), timeout=TIMEOUT
        )
        assert orgs_of(listed.events) == orgs, kind
        streamed = await first_batch(world, gateway_pb2.StreamEventsRequest(earliest=True), kind)
        assert orgs_of(streamed.events) == orgs, kind
        installations = await world.gateway.ListInstallations(
            gateway_pb2.ListInstallationsRequest(), metadata=world.as_(kind), timeout=TIMEOUT
        )
        assert sorted({i.org_id for i in installations.installations}) == orgs, kind
        integration = await world.gateway.GetIntegration(
            gateway_pb2.GetIntegrationRequest(integration_id="acme-sms"),
            metadata=world.as_(kind),
            timeout=TIMEOUT,
        )
        # Enabled installations among those the token sees (org-1 has a spare one).
        assert integration.installation_count == len(orgs) + orgs.count("org-1"), kind


async def test_a_read_token_cannot_take_leases_on_a_durable_consumer(world: World) -> None:
    for n in range(20):
        await world.inbound("org-1", f"burst {n}")
    joining = gateway_pb2.StreamEventsRequest(earliest=True, consumer="prod")
    for kind in ("read", "reader"):
        error = await refused(first_batch(world, joining, kind))
        assert error.code() == DENIED
        info = rpc_details(error)["error_info"]
        assert info.reason == "SCOPE_INSUFFICIENT"
        assert dict(info.metadata) == {
            "method": "/msgbridge.v1.Gateway/StreamEvents",
            "scope": "read",
            "required": "full",
        }
        assert "durable consumer" in (error.details() or "")

    # Nothing is held away from the full-scope consumer: it gets every event at once.
    listed = await world.gateway.ListEvents(
        gateway_pb2.ListEventsRequest(), metadata=world.as_("full"), timeout=TIMEOUT
    )
    every = [event.cursor for event in listed.events]
    assert len(every) >= 23
    batch = await first_batch(world, joining, "full")
    assert [event.cursor for event in batch.events] == every
    # A read token still streams, without a consumer.
    plain = await first_batch(world, gateway_pb2.StreamEventsRequest(earliest=True), "read")
    assert [event.cursor for event in plain.events] == every


async def test_a_scoped_tokens_consumer_is_its_own(world: World) -> None:
    prod = gateway_pb2.StreamEventsRequest(earliest=True, consumer="prod", max_batch=1)
    mine = world.gateway.StreamEvents(prod, metadata=world.as_("own"), timeout=TIMEOUT)
    try:
        leased = await mine.read()
        assert orgs_of(leased.events) == ["org-1"]
        # The full-scope consumer of the same name still gets every event, org-1's included.
        everything = gateway_pb2.StreamEventsRequest(earliest=True, consumer="prod")
        batch = await first_batch(world, everything, "full")
        assert orgs_of(batch.events) == ["org-1", "org-2", "org-3"]
        # Acknowledging as another set of organisations acknowledges nothing of this consumer.
        ack = gateway_pb2.AckEventsRequest(
            consumer="prod", cursors=[e.cursor for e in leased.events]
        )
        acked = [
            (
                await world.gateway.AckEvents(ack, metadata=world.as_(kind), timeout=TIMEOUT)
            ).acknowledged
            for kind in ("other", "pair", "own")
        ]
        assert acked == [0, 0, 1]
    finally:
        mine.cancel()

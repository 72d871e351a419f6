"""The API-token matrix: no token, a wrong or malformed one, each scope against each group of
RPCs, the ingest token on the Gateway and the others on Ingest, and tokens scoped to
organisations, on a second server whose token file has ``orgs=`` fields.

Scoped tokens: one cannot read, send, stream, list, acknowledge, change installations or
subscribe as another organisation (PERMISSION_DENIED or NOT_FOUND, never OK); its unfiltered
StreamEvents and ListEvents see only its organisations' events; RegisterIntegration,
DeleteIntegration, ListUnmatchedWebhooks and ReplayWebhook are refused to it; GetIntegration and
ListIntegrations are allowed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import gateway_pb2, ingest_pb2

from ._case import Cases, expect, expect_status
from ._env import ACME_NUMBER, Env, RpcResult, ScopedEnv, demo_definition, send_request

__all__ = ["CASES"]

cases = Cases("tokens")
CASES = cases.all

_DENIED = ("PERMISSION_DENIED",)
_NOT_THEIRS = ("PERMISSION_DENIED", "NOT_FOUND")
_NONE = "no-such-id"

# One request of each Gateway RPC, harmless if a broken check let it through.
_WRITES: dict[str, Message] = {
    "RegisterIntegration": gateway_pb2.RegisterIntegrationRequest(
        definition_json='{"id": "adv-token"}', validate_only=True
    ),
    "DeleteIntegration": gateway_pb2.DeleteIntegrationRequest(integration_id=_NONE),
    "EnableIntegration": gateway_pb2.EnableIntegrationRequest(org_id="acme", integration_id=_NONE),
    "UpdateInstallation": gateway_pb2.UpdateInstallationRequest(installation_id=_NONE),
    "DisableIntegration": gateway_pb2.DisableIntegrationRequest(installation_id=_NONE),
    "SendMessage": send_request("acme", "+1", "t", to="+1"),
    "SendFile": gateway_pb2.SendFileRequest(org_id="acme", to="+1", media_url="http://127.0.0.1/"),
    "AckEvents": gateway_pb2.AckEventsRequest(consumer="adv", cursors=[1]),
    "ReplayWebhook": gateway_pb2.ReplayWebhookRequest(id=_NONE),
    "RetrySubscription": gateway_pb2.RetrySubscriptionRequest(installation_id=_NONE),
    "BeginAuthorization": gateway_pb2.BeginAuthorizationRequest(installation_id=_NONE),
}
_READS: dict[str, Message] = {
    "GetIntegration": gateway_pb2.GetIntegrationRequest(integration_id="demo"),
    "ListIntegrations": gateway_pb2.ListIntegrationsRequest(page_size=1),
    "ListInstallations": gateway_pb2.ListInstallationsRequest(org_id="alive"),
    "ListEvents": gateway_pb2.ListEventsRequest(org_id="alive", page_size=1),
    "ListUnmatchedWebhooks": gateway_pb2.ListUnmatchedWebhooksRequest(page_size=1),
    "GetMessage": gateway_pb2.GetMessageRequest(message_id=_NONE),
}


def _call_case(
    name: str,
    method: str,
    request: Message,
    token: Callable[[Env], str | None],
    wanted: tuple[str, ...],
) -> None:
    async def run(env: Env) -> str:
        result = await env.gateway.call(method, request, token(env))
        return expect_status(result.code, wanted)

    cases.add(name, run)


for _method in ("ListIntegrations", "SendMessage", "GetMessage", "RegisterIntegration"):
    _request = {**_WRITES, **_READS}[_method]
    _call_case(f"no-token-{_method}", _method, _request, lambda env: None, ("UNAUTHENTICATED",))
    _call_case(
        f"wrong-token-{_method}",
        _method,
        _request,
        lambda env: "x" + env.tokens.full[1:],
        ("UNAUTHENTICATED",),
    )
_call_case(
    "4kb-token",
    "ListIntegrations",
    _READS["ListIntegrations"],
    lambda env: "a" * 4000,
    ("UNAUTHENTICATED",),
)

for _method, _request in _WRITES.items():
    _call_case(f"read-token-{_method}", _method, _request, lambda env: env.tokens.read, _DENIED)
for _method, _request in _READS.items():
    _wanted = ("NOT_FOUND",) if _method == "GetMessage" else ("OK",)
    _call_case(f"read-token-{_method}", _method, _request, lambda env: env.tokens.read, _wanted)
for _method in ("ListIntegrations", "SendMessage", "GetMessage"):
    _request = {**_WRITES, **_READS}[_method]
    _call_case(f"ingest-token-{_method}", _method, _request, lambda env: env.tokens.ingest, _DENIED)


@cases.case("basic-authorization-header")
async def _basic(env: Env) -> str:
    metadata = (("authorization", "Basic YWRtaW46YWRtaW4="),)
    try:
        await env.gateway.stub.ListIntegrations(
            gateway_pb2.ListIntegrationsRequest(), metadata=metadata, timeout=10
        )
    except grpc.aio.AioRpcError as exc:
        return expect_status(exc.code().name, ("UNAUTHENTICATED",))
    return expect_status("OK", ("UNAUTHENTICATED",))


_DELIVERY = ingest_pb2.WebhookDelivery(
    method="POST", path="/webhooks/demo", body=b"{}"
).SerializeToString()

for _scope in ("read", "full", None):

    async def _ingest(env: Env, scope: str | None = _scope) -> str:
        token = {"read": env.tokens.read, "full": env.tokens.full, None: None}[scope]
        result = await env.gateway.raw("/msgbridge.v1.Ingest/IngestWebhook", _DELIVERY, token)
        return expect_status(result.code, ("UNAUTHENTICATED",) if scope is None else _DENIED)

    cases.add(f"{_scope or 'no'}-token-IngestWebhook", _ingest)


@cases.case("no-token-health")
async def _health(env: Env) -> str:
    stub = health_pb2_grpc.HealthStub(env.gateway.channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return expect_status(
        health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), ("SERVING",)
    )


# --- organisation-scoped tokens ----------------------------------------------------------------

Scoped = Callable[[ScopedEnv], Awaitable[RpcResult]]


def _scoped_case(name: str, call: Scoped, wanted: tuple[str, ...]) -> None:
    async def run(env: Env) -> str:
        scoped = await env.scoped()
        return expect_status((await call(scoped)).code, wanted)

    cases.add(f"scoped-{name}", run, scoped=True)


def _as(token: str, method: str, request: Message) -> Scoped:
    async def call(scoped: ScopedEnv) -> RpcResult:
        return await scoped.api.call(method, request, getattr(scoped, token))

    return call


def _with(token: str, method: str, build: Callable[[ScopedEnv], Message]) -> Scoped:
    async def call(scoped: ScopedEnv) -> RpcResult:
        return await scoped.api.call(method, build(scoped), getattr(scoped, token))

    return call


def _send(org: str, number: str) -> Message:
    return send_request(org, number, "t")


_scoped_case(
    "read-get-message-of-other-org",
    _with(
        "acme_read",
        "GetMessage",
        lambda s: gateway_pb2.GetMessageRequest(message_id=s.message_ids["globex"]),
    ),
    _NOT_THEIRS,
)
_scoped_case(
    "read-get-message-of-own-org",
    _with(
        "acme_read",
        "GetMessage",
        lambda s: gateway_pb2.GetMessageRequest(message_id=s.message_ids["acme"]),
    ),
    ("OK",),
)
_scoped_case(
    "read-list-events-of-other-org",
    _as("acme_read", "ListEvents", gateway_pb2.ListEventsRequest(org_id="globex")),
    _NOT_THEIRS,
)
_scoped_case(
    "read-list-installations-of-other-org",
    _as("acme_read", "ListInstallations", gateway_pb2.ListInstallationsRequest(org_id="globex")),
    _NOT_THEIRS,
)
_scoped_case(
    "read-get-installation-of-other-org",
    _with(
        "acme_read",
        "GetInstallation",
        lambda s: gateway_pb2.GetInstallationRequest(installation_id=s.installations["globex"].id),
    ),
    _NOT_THEIRS,
)
_scoped_case(
    "read-get-integration",
    _as("acme_read", "GetIntegration", gateway_pb2.GetIntegrationRequest(integration_id="demo")),
    ("OK",),
)
_scoped_case(
    "read-list-integrations",
    _as("acme_read", "ListIntegrations", gateway_pb2.ListIntegrationsRequest()),
    ("OK",),
)
_scoped_case(
    "read-list-unmatched",
    _as("acme_read", "ListUnmatchedWebhooks", gateway_pb2.ListUnmatchedWebhooksRequest()),
    _DENIED,
)
_scoped_case(
    "full-send-as-other-org",
    _as("acme_full", "SendMessage", _send("globex", "+15550004444")),
    _NOT_THEIRS,
)
_scoped_case(
    "full-send-as-own-org", _as("acme_full", "SendMessage", _send("acme", ACME_NUMBER)), ("OK",)
)
_scoped_case(
    "full-enable-for-other-org",
    _as(
        "acme_full",
        "EnableIntegration",
        gateway_pb2.EnableIntegrationRequest(
            org_id="globex",
            integration_id="spare",
            properties={"Server": "127.0.0.1:9", "API key": "k-0123456789abcdef"},
            numbers=[gateway_pb2.NumberAssignment(number="+15550005555")],
        ),
    ),
    _NOT_THEIRS,
)
_scoped_case(
    "full-update-installation-of-other-org",
    _with(
        "acme_full",
        "UpdateInstallation",
        lambda s: gateway_pb2.UpdateInstallationRequest(
            installation_id=s.installations["globex"].id,
            properties={"API key": "stolen-0123456789"},
        ),
    ),
    _NOT_THEIRS,
)
_scoped_case(
    "full-disable-installation-of-other-org",
    _with(
        "acme_full",
        "DisableIntegration",
        lambda s: gateway_pb2.DisableIntegrationRequest(
            installation_id=s.installations["globex"].id
        ),
    ),
    _NOT_THEIRS,
)
_scoped_case(
    "full-register-integration",
    _as(
        "acme_full",
        "RegisterIntegration",
        gateway_pb2.RegisterIntegrationRequest(
            definition_json=json.dumps(demo_definition("adv-scoped"))
        ),
    ),
    _DENIED,
)
_scoped_case(
    "full-delete-integration",
    _as(
        "acme_full",
        "DeleteIntegration",
        gateway_pb2.DeleteIntegrationRequest(integration_id="spare", force=True),
    ),
    _DENIED,
)
_scoped_case(
    "full-list-unmatched",
    _as("acme_full", "ListUnmatchedWebhooks", gateway_pb2.ListUnmatchedWebhooksRequest()),
    _DENIED,
)
_scoped_case(
    "full-replay-webhook",
    _with(
        "acme_full",
        "ReplayWebhook",
        lambda s: gateway_pb2.ReplayWebhookRequest(id=s.unmatched_id or _NONE),
    ),
    _DENIED,
)
_scoped_case(
    "two-orgs-list-events-of-third-org",
    _as("two_orgs_read", "ListEvents", gateway_pb2.ListEventsRequest(org_id="initech")),
    _NOT_THEIRS,
)


def _stream_case(
    name: str, token: str, request: gateway_pb2.StreamEventsRequest, wanted: tuple[str, ...]
) -> None:
    async def call(scoped: ScopedEnv) -> RpcResult:
        return await scoped.api.stream(request, getattr(scoped, token), wait_s=3)

    _scoped_case(name, call, wanted)


_stream_case(
    "read-stream-other-org",
    "acme_read",
    gateway_pb2.StreamEventsRequest(org_id="globex", earliest=True),
    _NOT_THEIRS,
)
_stream_case(
    "full-subscribe-consumer-as-other-org",
    "acme_full",
    gateway_pb2.StreamEventsRequest(org_id="globex", earliest=True, consumer="globex-consumer"),
    _NOT_THEIRS,
)


async def _ack_other(env: Env) -> str:
    # The unscoped token leases globex's events to a consumer; acme's token then acknowledges them.
    # A scoped token's consumer names are its own (the server keeps them apart by organisation),
    # so the acknowledgement may be refused, or answered with nothing acknowledged: never may it
    # take the events from the consumer that holds them.
    scoped = await env.scoped()
    leased = await scoped.api.stream(
        gateway_pb2.StreamEventsRequest(org_id="globex", earliest=True, consumer="globex-consumer"),
        scoped.full,
        wait_s=3,
    )
    expect(leased.code == "OK" and bool(leased.reply), f"leasing globex's events: {leased.code}")
    cursors = [event.cursor for response in leased.reply for event in response.events]
    request = gateway_pb2.AckEventsRequest(consumer="globex-consumer", cursors=cursors)
    acked = await scoped.api.call("AckEvents", request, scoped.acme_full)
    if acked.code != "OK":
        return expect_status(acked.code, _NOT_THEIRS)
    count = acked.reply.acknowledged
    expect(count == 0, f"acme's token acknowledged {count} of globex's leased events")
    again = await scoped.api.call(
        "AckEvents",
        gateway_pb2.AckEventsRequest(consumer="globex-consumer", cursors=cursors),
        scoped.full,
    )
    expect(
        again.code == "OK" and again.reply.acknowledged == len(cursors),
        f"globex's consumer still holds its events: {again.code}",
    )
    return "OK, acknowledged nothing of another organisation's consumer"


cases.add("scoped-full-ack-events-of-other-org", _ack_other, scoped=True)


def _own_events_case(name: str, token: str, orgs: set[str]) -> None:
    async def run(env: Env) -> str:
        scoped = await env.scoped()
        listed = await scoped.api.call(
            "ListEvents", gateway_pb2.ListEventsRequest(), getattr(scoped, token)
        )
        expect_status(listed.code, ("OK",))
        seen = {event.org_id for event in listed.reply.events}
        expect(seen == orgs, f"unfiltered ListEvents saw {sorted(seen)}, expected {sorted(orgs)}")
        streamed = await scoped.api.stream(
            gateway_pb2.StreamEventsRequest(earliest=True),
            getattr(scoped, token),
            responses=10,
            wait_s=2,
        )
        expect_status(streamed.code, ("OK",))
        seen = {event.org_id for response in streamed.reply for event in response.events}
        expect(
            seen <= orgs,
            f"unfiltered StreamEvents saw {sorted(seen)}, expected only {sorted(orgs)}",
        )
        return "OK, own events only"

    cases.add(f"scoped-{name}", run, scoped=True)


_own_events_case("read-unfiltered-events-own-org-only", "acme_read", {"acme"})
_own_events_case("two-orgs-unfiltered-events", "two_orgs_read", {"acme", "globex"})

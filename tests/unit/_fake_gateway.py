"""A fake Gateway servicer on a real grpc.aio server (127.0.0.1, port 0) in its own thread.

The server runs on its own event loop in a background thread, so sync clients (and the CLI) and
async clients on the test's loop can both call it. The servicer records each request with its
metadata, returns canned replies, and fails a method on demand with a google.rpc.Status.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

RECEIVED = timestamp_pb2.Timestamp(seconds=1_790_000_000)


def integration(integration_id: str, version: int = 1) -> gateway_pb2.Integration:
    return gateway_pb2.Integration(
        id=integration_id,
        version=version,
        name=f"{integration_id.title()} SMS",
        properties=[
            gateway_pb2.PropertyField(name="api_key", secret=True, required=True),
            gateway_pb2.PropertyField(name="account", description="the account id"),
        ],
        capabilities=gateway_pb2.Capabilities(send_message=True, inbound_sms=True, auth="Basic"),
        warnings=[gateway_pb2.DefinitionProblem(pointer="/logo", message="not a URL")],
        created_at=RECEIVED,
        installation_count=2,
    )


def event(cursor: int, kind: gateway_pb2.Event.Type.ValueType, **fields: Any) -> gateway_pb2.Event:
    sender = fields.pop("from_", "+15550001111")
    made = gateway_pb2.Event(
        cursor=cursor,
        type=kind,
        org_id=fields.pop("org_id", "acme"),
        integration_id="acme",
        installation_id="inst-1",
        to="+15550002222",
        received_at=RECEIVED,
        **fields,
    )
    setattr(made, "from", sender)
    return made


EVENTS = [
    event(1, gateway_pb2.Event.MESSAGE, text="hello", users=["101", "102"]),
    event(2, gateway_pb2.Event.MMS, media_urls=["https://files.example/a.png"]),
    event(3, gateway_pb2.Event.MESSAGE_DELIVERED, message_id="msg-1", status="delivered"),
    event(4, gateway_pb2.Event.MESSAGE, text="again", org_id="other"),
    event(5, gateway_pb2.Event.MESSAGE_FAILED, message_id="msg-2", error="unreachable"),
]


def rich_status(
    code: int,
    message: str,
    *,
    reason: str,
    metadata: dict[str, str] | None = None,
    violations: tuple[tuple[str, str], ...] = (),
    retry_seconds: float | None = None,
) -> status_pb2.Status:
    """A google.rpc.Status as the real server builds it: ErrorInfo, BadRequest, RetryInfo."""
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain="msgbridge", metadata=metadata or {})
    )
    if violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations
                ]
            )
        )
    if retry_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_seconds * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


PERMISSION_DENIED = rich_status(
    code_pb2.PERMISSION_DENIED,
    "+15559999999 is not a number of the organisation's installations",
    reason="NUMBER_NOT_IN_INSTALLATION",
    metadata={"integration": "acme"},
)
INVALID_DEFINITION = rich_status(
    code_pb2.INVALID_ARGUMENT,
    "the definition has 2 errors",
    reason="INVALID_DEFINITION",
    violations=(
        ("/API/SendMessage/request_url", "must be an absolute URL"),
        ("/properties/0", "a property needs a name"),
    ),
)
NOT_SUPPORTED = rich_status(
    code_pb2.FAILED_PRECONDITION,
    "the integration 'acme' has no MarkRead request",
    reason="NOT_SUPPORTED",
    metadata={"integration": "acme", "signal": "MarkRead"},
)
RATE_LIMITED = rich_status(
    code_pb2.RESOURCE_EXHAUSTED,
    "the provider answered 429",
    reason="PROVIDER_RATE_LIMITED",
    metadata={"integration": "acme", "provider_status": "429"},
    retry_seconds=7.5,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    method: str
    request: Any
    metadata: dict[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    """How a method fails: a rich status, or a plain code with raw trailing metadata."""

    status: status_pb2.Status | None = None
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    details: str = ""
    trailing_metadata: tuple[tuple[str, bytes], ...] = ()


class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    """Canned replies; every call recorded; failures set per method with :meth:`fail`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, Failure] = {}
        self.hold_stream = False  # keep StreamEvents open after its events (as a live stream)
        self.stream_cancelled = threading.Event()
        self.fail_stream_after_first_batch: status_pb2.Status | None = None
        # StreamEvents calls past this many are refused PERMISSION_DENIED, so that a follower,
        # which reconnects whenever a stream ends, stops (None: never refused).
        self.refuse_streams_after: int | None = None

    def reset(self) -> None:
        self.calls.clear()
        self.failures.clear()
        self.hold_stream = False
        self.stream_cancelled.clear()
        self.fail_stream_after_first_batch = None
        self.refuse_streams_after = None

    def fail(self, method: str, status: status_pb2.Status) -> None:
        self.failures[method] = Failure(status=status)

    def fail_plain(
        self,
        method: str,
        code: grpc.StatusCode,
        details: str,
        trailing_metadata: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        self.failures[method] = Failure(
            code=code, details=details, trailing_metadata=trailing_metadata
        )

    def requests(self, method: str) -> list[Any]:
        return [call.request for call in self.calls if call.method == method]

    async def _enter(self, method: str, request: Message, context: Any) -> None:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        self.calls.append(Call(method=method, request=request, metadata=metadata))
        failure = self.failures.get(method)
        if failure is None:
            return
        if failure.status is not None:
            await context.abort_with_status(rpc_status.to_status(failure.status))
        await context.abort(
            failure.code, failure.details, trailing_metadata=failure.trailing_metadata
        )

    # -- integrations ---------------------------------------------------------------------------

    async def RegisterIntegration(self, request: Any, context: Any) -> Any:
        await self._enter("RegisterIntegration", request, context)
        stored = integration("acme", version=0 if request.validate_only else 1)
        stored.definition_json = request.definition_json
        return gateway_pb2.RegisterIntegrationResponse(
            integration=stored, validate_only=request.validate_only
        )

    async def GetIntegration(self, request: Any, context: Any) -> Any:
        await self._enter("GetIntegration", request, context)
        return integration(request.integration_id, version=request.version or 3)

    async def ListIntegrations(self, request: Any, context: Any) -> Any:
        await self._enter("ListIntegrations", request, context)
        if request.page_token == "":
            return gateway_pb2.ListIntegrationsResponse(
                integrations=[integration("acme"), integration("beta")], next_page_token="p2"
            )
        assert request.page_token == "p2"
        return gateway_pb2.ListIntegrationsResponse(integrations=[integration("gamma")])

    async def DeleteIntegration(self, request: Any, context: Any) -> Any:
        await self._enter("DeleteIntegration", request, context)
        return gateway_pb2.DeleteIntegrationResponse(
            disabled_installations=2 if request.force else 0
        )

    # -- installations --------------------------------------------------------------------------

    @staticmethod
    def _installation(
        installation_id: str,
        org_id: str,
        integration_id: str,
        properties: dict[str, str],
        numbers: list[gateway_pb2.NumberAssignment],
        region: str,
        enabled: bool = True,
    ) -> gateway_pb2.Installation:
        values = [
            # Like the real server: a secret's value is never returned, only that it is set.
            gateway_pb2.PropertyValue(name=name, secret=name == "api_key", set=True)
            if name == "api_key"
            else gateway_pb2.PropertyValue(name=name, value=value, set=True)
            for name, value in sorted(properties.items())
        ]
        normalized = [
            gateway_pb2.NumberAssignment(number=n.number, users=n.users, normalized=n.number)
            for n in numbers
        ]
        return gateway_pb2.Installation(
            id=installation_id,
            org_id=org_id,
            integration_id=integration_id,
            properties=values,
            numbers=normalized,
            default_region=region,
            enabled=enabled,
            webhook_url=f"https://gw.example/webhooks/{integration_id}/tok-{installation_id}",
            subscription=gateway_pb2.Subscription(
                state=gateway_pb2.Subscription.SUBSCRIBED, attempts=1
            ),
            created_at=RECEIVED,
        )

    async def EnableIntegration(self, request: Any, context: Any) -> Any:
        await self._enter("EnableIntegration", request, context)
        return self._installation(
            "inst-1",
            request.org_id,
            request.integration_id,
            dict(request.properties),
            list(request.numbers),
            request.default_region,
        )

    async def UpdateInstallation(self, request: Any, context: Any) -> Any:
        await self._enter("UpdateInstallation", request, context)
        return self._installation(
            request.installation_id,
            "acme",
            "acme",
            dict(request.properties),
            list(request.numbers),
            request.default_region,
        )

    async def GetInstallation(self, request: Any, context: Any) -> Any:
        await self._enter("GetInstallation", request, context)
        return self._installation(
            request.installation_id,
            "acme",
            "acme",
            {"api_key": "", "account": "AC1"},
            [gateway_pb2.NumberAssignment(number="+15550001111", users=["101"])],
            "US",
        )

    async def ListInstallations(self, request: Any, context: Any) -> Any:
        await self._enter("ListInstallations", request, context)
        first = self._installation("inst-1", "acme", "acme", {}, [], "")
        second = self._installation("inst-2", "other", "beta", {}, [], "", enabled=False)
        if request.page_token == "":
            return gateway_pb2.ListInstallationsResponse(installations=[first], next_page_token="n")
        return gateway_pb2.ListInstallationsResponse(installations=[second])

    async def DisableIntegration(self, request: Any, context: Any) -> Any:
        await self._enter("DisableIntegration", request, context)
        return self._installation(request.installation_id, "acme", "acme", {}, [], "", False)

    async def RetrySubscription(self, request: Any, context: Any) -> Any:
        await self._enter("RetrySubscription", request, context)
        return self._installation(request.installation_id, "acme", "acme", {}, [], "")

    # -- sending --------------------------------------------------------------------------------

    async def SendMessage(self, request: Any, context: Any) -> Any:
        await self._enter("SendMessage", request, context)
        return gateway_pb2.SendReply(
            message_id="msg-1",
            provider_message_id="SM123",
            provider_status=201,
            attempts=1,
            installation_id="inst-1",
            integration_id=request.integration_id or "acme",
            replayed=bool(request.idempotency_key == "used"),
        )

    async def SendTyping(self, request: Any, context: Any) -> Any:
        return await self._signal("SendTyping", request, context)

    async def MarkRead(self, request: Any, context: Any) -> Any:
        return await self._signal("MarkRead", request, context)

    async def _signal(self, method: str, request: Any, context: Any) -> Any:
        await self._enter(method, request, context)
        return gateway_pb2.SignalReply(
            installation_id="inst-1",
            integration_id=request.integration_id or "acme",
            provider_status=200,
        )

    async def SendFile(self, request: Any, context: Any) -> Any:
        await self._enter("SendFile", request, context)
        # No provider id in the provider's answer: the optional field stays unset.
        return gateway_pb2.SendReply(
            message_id="msg-2",
            provider_status=202,
            attempts=2,
            installation_id="inst-1",
            integration_id="acme",
        )

    async def GetMessage(self, request: Any, context: Any) -> Any:
        await self._enter("GetMessage", request, context)
        message = gateway_pb2.Message(
            message_id=request.message_id,
            org_id="acme",
            to="+15550002222",
            text="hi",
            state=gateway_pb2.Message.DELIVERED,
            provider_message_id="SM123",
            provider_status=201,
            attempts=1,
            metadata={"ticket": "42"},
        )
        setattr(message, "from", "+15550001111")
        return message

    # -- events ---------------------------------------------------------------------------------

    @staticmethod
    def _matching(
        org_id: str, integration_id: str, types: list[int], after: int
    ) -> list[gateway_pb2.Event]:
        return [
            e
            for e in EVENTS
            if e.cursor > after
            and (not org_id or e.org_id == org_id)
            and (not integration_id or e.integration_id == integration_id)
            and (not types or e.type in types)
        ]

    async def StreamEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("StreamEvents", request, context)
        limit = self.refuse_streams_after
        if limit is not None and len(self.requests("StreamEvents")) > limit:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no more streams (test)")
        start = request.WhichOneof("start")
        after = request.after_cursor if start == "after_cursor" else 0
        events = (
            []
            if start is None and not request.consumer
            else self._matching(request.org_id, request.integration_id, list(request.types), after)
        )
        size = request.max_batch or 2
        batches = [events[i : i + size] for i in range(0, len(events), size)]

        ended = False  # by the servicer itself: all sent, or aborted

        def on_done(_: Any) -> None:
            # The RPC ended without the servicer ending it: the client cancelled. (The aio
            # context's cancelled() stays False here, and the client's cancellation may land while
            # a batch is being written rather than while the stream waits.)
            if not ended:
                self.stream_cancelled.set()

        context.add_done_callback(on_done)
        for number, batch in enumerate(batches):
            yield gateway_pb2.StreamEventsResponse(events=batch)
            if number == 0 and self.fail_stream_after_first_batch is not None:
                ended = True
                await context.abort_with_status(
                    rpc_status.to_status(self.fail_stream_after_first_batch)
                )
        if self.hold_stream:
            await asyncio.Event().wait()
        ended = True

    async def AckEvents(self, request: Any, context: Any) -> Any:
        await self._enter("AckEvents", request, context)
        return gateway_pb2.AckEventsResponse(acknowledged=len(request.cursors))

    async def ListEvents(self, request: Any, context: Any) -> Any:
        await self._enter("ListEvents", request, context)
        events = self._matching(
            request.org_id, request.integration_id, list(request.types), request.after_cursor
        )
        return gateway_pb2.ListEventsResponse(events=events[: request.page_size or 2])

    # -- unmatched webhooks ---------------------------------------------------------------------

    async def ListUnmatchedWebhooks(self, request: Any, context: Any) -> Any:
        await self._enter("ListUnmatchedWebhooks", request, context)
        webhooks = [
            gateway_pb2.UnmatchedWebhook(
                id=f"wh-{n}",
                kind=gateway_pb2.UnmatchedWebhook.UNMATCHED,
                integration_id="acme",
                reason="no webhook model matched",
                method="POST",
                path="/webhooks/acme",
                content_type="application/json",
                body=b'{"odd": true}',
                received_at=RECEIVED,
            )
            for n in (1, 2)
        ]
        if request.page_token == "":
            return gateway_pb2.ListUnmatchedWebhooksResponse(
                webhooks=webhooks[:1], next_page_token="w2"
            )
        return gateway_pb2.ListUnmatchedWebhooksResponse(webhooks=webhooks[1:])

    async def ReplayWebhook(self, request: Any, context: Any) -> Any:
        await self._enter("ReplayWebhook", request, context)
        if request.id == "wh-1":
            return gateway_pb2.ReplayWebhookResponse(events=[EVENTS[0]])
        return gateway_pb2.ReplayWebhookResponse(reason="still no webhook model matched")


@dataclass(frozen=True, kw_only=True, slots=True)
class RunningGateway:
    fake: FakeGateway
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def running_gateway(server_credentials: Any = None) -> Iterator[RunningGateway]:
    """Serves a :class:`FakeGateway` (and grpc.health.v1) on 127.0.0.1, port 0, in a thread."""
    fake = FakeGateway()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-gateway", daemon=True)
    thread.start()
    server: grpc.aio.Server | None = None

    async def start() -> Any:
        nonlocal server
        server = grpc.aio.server()
        gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("msgbridge.v1.Gateway", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if server_credentials is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", server_credentials)
        await server.start()
        return port

    async def stop() -> None:
        if server is not None:
            await server.stop(None)

    try:
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        yield RunningGateway(fake=fake, port=port)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()

"""The gRPC servicer of ``msgbridge.v1.Gateway``: thin — translate, call, map errors.

Every RPC first asks :meth:`GatewayServicer._authorize` who calls and whether the request may touch
what it names (the token's organisations; see :mod:`server.security.api_access._caller`), then runs
inside :func:`server.api._rpc.rpc` (:func:`~server.api._rpc.rpc_stream` for ``StreamEvents``), the
one error boundary of every RPC, the Ingest service's too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc, ingest_pb2, ingest_pb2_grpc

from ..core._catalog import (
    IntegrationCatalog,
    LoadedIntegration,
    capabilities_of,
    definition_refused,
)
from ..core._events import EventHub, follow_events
from ..core._installations import InstallationDirectory, NumberInput, installation_not_found
from ..core._provider_credentials import AuthorizationStatus, InstallationAuth
from ..core._subscriptions import SubscriptionKeeper
from ..core.ingest._ingestor import Ingestor
from ..core.send._sender import SendOutcome, SendPath, SendRequest
from ..engine import DEFINITION_TOO_LARGE, MAX_DEFINITION_BYTES
from ..errors import FailedPrecondition, InvalidRequest, NotFound
from ..security.api_access import AccessPolicy, Caller, gateway_method
from ..store import (
    EventFilter,
    EventRecord,
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NewEvent,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ._paging import as_async, fill, in_memory, list_page, page_request
from ._replies import REPLY_BUDGET, Page, ReadLimit, capped, clip_text, pages_by_size
from ._rpc import rpc, rpc_stream

__all__ = ["GatewayServicer", "IngestServicer", "event_pb"]

logger = logging.getLogger(__name__)

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Handler = Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]
_Record = TypeVar("_Record")
_Pb = TypeVar("_Pb", bound=Message)

_SUBSCRIPTION_STATES = {
    "not_required": gateway_pb2.Subscription.NOT_REQUIRED,
    "pending": gateway_pb2.Subscription.PENDING,
    "subscribed": gateway_pb2.Subscription.SUBSCRIBED,
    "failed": gateway_pb2.Subscription.FAILED,
}
_MESSAGE_STATES = {
    MessageState.PENDING: gateway_pb2.Message.PENDING,
    MessageState.SENT: gateway_pb2.Message.SENT,
    MessageState.DELIVERED: gateway_pb2.Message.DELIVERED,
    MessageState.FAILED: gateway_pb2.Message.FAILED,
}
_ANYONE = Caller()  # the caller of every call when no API token is configured
# A request's bytes beyond its definition's: field tags, the length, validate_only.
_FIELD_OVERHEAD_BYTES = 64
# A replay's reason joins every problem found; the reply keeps its start.
_MAX_REASON_BYTES = 16_384


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    if value is not None:
        stamp.FromDatetime(value)
    return stamp


def _cursor(event: EventRecord) -> int:
    return event.cursor


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        send_path: SendPath,
        ingestor: Ingestor,
        hub: EventHub,
        subscriptions: SubscriptionKeeper,
        auth: InstallationAuth,
        authorization: AuthorizationStatus,
        default_deadline_s: float,
        lease_s: float = 30.0,
        access: AccessPolicy | None = None,
    ) -> None:
        self._access = access or AccessPolicy()
        self._ingestor = ingestor
        self._auth = auth
        self._authorization = authorization
        self._hub = hub
        self._subscriptions = subscriptions
        self._lease_s = lease_s
        self._store = store
        self._catalog = catalog
        self._installations = installations
        self._send_path = send_path
        self._default_deadline_s = default_deadline_s

    # --- who calls -----------------------------------------------------------------------------

    async def _authorize(self, request: Message, context: grpc.aio.ServicerContext) -> Caller:
        """The caller, once the request may go ahead as far as what it names goes.

        For a token scoped to organisations: an ``org_id`` the request names must be one of
        them (PERMISSION_DENIED), and an installation or a message it names must belong to one
        — otherwise NOT_FOUND, the same answer as for an id that does not exist. Filters and
        durable consumers are narrowed by the handlers, with the caller returned.
        """
        if not self._access.enforced:
            return _ANYONE  # no tokens: nothing to look up on the hot path
        caller = Caller.of(self._access, context.invocation_metadata() or ())
        if caller.orgs is None:
            return caller
        caller.check_org(_named(request, "org_id"))
        installation_id = _named(request, "installation_id")
        if installation_id:
            installation = await self._installations.get(installation_id)
            if not caller.sees(installation.org_id):
                _log_hidden("installation", caller)
                raise installation_not_found(installation_id)
        message_id = _named(request, "message_id")
        if message_id:
            message = await self._store.get_message(message_id)
            if message is None or not caller.sees(message.org_id):
                if message is not None:
                    _log_hidden("message", caller)
                raise _message_not_found(message_id)
        return caller

    async def _installation_count(self, integration_id: str, caller: Caller) -> int:
        """How many enabled installations use the integration, among those the caller sees."""
        if caller.orgs is None:
            return await self._store.count_installations(integration_id)
        installations = await self._store.list_installations(integration_id=integration_id)
        return sum(1 for i in installations if i.enabled and caller.sees(i.org_id))

    # --- integrations ---------------------------------------------------------------------------

    async def _integration_pb(
        self, loaded: LoadedIntegration, *, count_for: Caller | None
    ) -> gateway_pb2.Integration:
        definition = loaded.definition
        caps = capabilities_of(definition)
        pb = gateway_pb2.Integration(
            id=loaded.id,
            version=loaded.version,
            name=definition.name,
            logo=definition.logo or "",
            properties=[
                gateway_pb2.PropertyField(
                    name=p.name,
                    secret=p.secret,
                    required=p.required,
                    description=p.description or "",
                    default=p.default or "",
                )
                for p in definition.properties
            ],
            capabilities=gateway_pb2.Capabilities(
                send_message=caps.send_message,
                send_file=caps.send_file,
                inbound_sms=caps.inbound_sms,
                inbound_mms=caps.inbound_mms,
                delivery_receipts=caps.delivery_receipts,
                subscribe=caps.subscribe,
                webhook_auth=caps.webhook_auth,
                auth=caps.auth,
            ),
            warnings=[
                gateway_pb2.DefinitionProblem(pointer=w.pointer or "/", message=w.message)
                for w in loaded.warnings
            ],
            definition_json=loaded.definition_json,
            created_at=_ts(loaded.created_at),
            installation_count=(
                await self._installation_count(loaded.id, count_for) if count_for is not None else 0
            ),
        )
        return capped(pb)

    @rpc
    async def RegisterIntegration(
        self, request: gateway_pb2.RegisterIntegrationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RegisterIntegrationResponse:
        caller = await self._authorize(request, context)
        if request.ByteSize() > MAX_DEFINITION_BYTES + _FIELD_OVERHEAD_BYTES:
            # Refused before its text is read: each read of a string field makes a copy, and a
            # request may be near the server's receive limit.
            raise definition_refused([DEFINITION_TOO_LARGE])
        if not request.definition_json.strip():
            raise InvalidRequest(
                "definition_json is required", violations=[("definition_json", "required")]
            )
        if request.validate_only:
            definition = await self._catalog.validate(request.definition_json)
            loaded = LoadedIntegration(
                id=definition.id,
                version=0,
                definition=definition,
                definition_json=request.definition_json,
                created_at=datetime.now().astimezone(),
            )
            pb = await self._integration_pb(loaded, count_for=None)
            return gateway_pb2.RegisterIntegrationResponse(integration=pb, validate_only=True)
        loaded = await self._catalog.register(request.definition_json)
        return gateway_pb2.RegisterIntegrationResponse(
            integration=await self._integration_pb(loaded, count_for=caller)
        )

    @rpc
    async def GetIntegration(
        self, request: gateway_pb2.GetIntegrationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Integration:
        caller = await self._authorize(request, context)
        loaded = await self._catalog.get(request.integration_id, request.version or None)
        return await self._integration_pb(loaded, count_for=caller)

    @rpc
    async def ListIntegrations(
        self, request: gateway_pb2.ListIntegrationsRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListIntegrationsResponse:
        caller = await self._authorize(request, context)
        offset, size = page_request(request.page_size, request.page_token)
        listing = await list_page(
            in_memory(self._catalog.list),  # whole, until the catalog reads a page itself
            offset,
            size,
            functools.partial(self._integration_pb, count_for=caller),
        )
        return gateway_pb2.ListIntegrationsResponse(
            integrations=listing.page.items, next_page_token=listing.next_token
        )

    @rpc
    async def DeleteIntegration(
        self, request: gateway_pb2.DeleteIntegrationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.DeleteIntegrationResponse:
        await self._authorize(request, context)
        await self._catalog.get(request.integration_id)  # NOT_FOUND when unknown
        users = [
            i
            for i in await self._store.list_installations(integration_id=request.integration_id)
            if i.enabled
        ]
        if users and not request.force:
            raise FailedPrecondition(
                f"{len(users)} enabled installation(s) use this integration; disable them or force",
                reason="INTEGRATION_IN_USE",
                metadata={"integration": request.integration_id, "installations": str(len(users))},
            )
        for installation in users:
            await self._installations.disable(installation.id)
        await self._catalog.delete(request.integration_id)
        return gateway_pb2.DeleteIntegrationResponse(disabled_installations=len(users))

    # --- installations --------------------------------------------------------------------------

    async def _installation_pb(self, record: InstallationRecord) -> gateway_pb2.Installation:
        auth_state, auth_error = "not_required", ""
        try:
            definition = (await self._catalog.get(record.integration_id)).definition
            declared = definition.properties
            auth_state, auth_error = await self._authorization.of(record, definition)
        except NotFound:
            declared = ()
        values = []
        for prop in declared:
            value = record.properties.get(prop.name)
            values.append(
                gateway_pb2.PropertyValue(
                    name=prop.name,
                    value="" if prop.secret or value is None else value,
                    secret=prop.secret,
                    set=bool(value),
                )
            )
        pb = gateway_pb2.Installation(
            id=record.id,
            org_id=record.org_id,
            integration_id=record.integration_id,
            properties=values,
            numbers=[
                gateway_pb2.NumberAssignment(number=n.given, users=n.users, normalized=n.number)
                for n in record.numbers
            ],
            default_region=record.default_region or "",
            enabled=record.enabled,
            webhook_url=self._installations.webhook_url(record),
            subscription=gateway_pb2.Subscription(
                state=_SUBSCRIPTION_STATES.get(
                    record.subscription_state, gateway_pb2.Subscription.STATE_UNSPECIFIED
                ),
                last_error=record.subscription_error or "",
            ),
            created_at=_ts(record.created_at),
            updated_at=_ts(record.updated_at),
            authorization=gateway_pb2.Authorization(
                state=_AUTHORIZATION_STATES[auth_state], error=auth_error
            ),
        )
        return capped(pb)

    async def _visible_installations(
        self, request: gateway_pb2.ListInstallationsRequest, caller: Caller
    ) -> tuple[InstallationRecord, ...]:
        everything = await self._store.list_installations(
            org_id=request.org_id or None, integration_id=request.integration_id or None
        )
        return tuple(r for r in everything if caller.sees(r.org_id))

    @staticmethod
    def _numbers(items: Sequence[gateway_pb2.NumberAssignment]) -> list[NumberInput]:
        return [NumberInput(number=n.number, users=tuple(n.users)) for n in items]

    @rpc
    async def EnableIntegration(
        self, request: gateway_pb2.EnableIntegrationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        record = await self._installations.enable(
            org_id=request.org_id,
            integration_id=request.integration_id,
            properties=dict(request.properties),
            numbers=self._numbers(request.numbers),
            default_region=request.default_region or None,
        )
        if record.subscription_state == "pending":
            self._subscriptions.schedule(record)
        return await self._installation_pb(record)

    @rpc
    async def UpdateInstallation(
        self, request: gateway_pb2.UpdateInstallationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        record = await self._installations.update(
            request.installation_id,
            properties=dict(request.properties),
            clear_properties=list(request.clear_properties),
            numbers=self._numbers(request.numbers) if request.set_numbers else None,
            default_region=(request.default_region if request.HasField("default_region") else None),
        )
        return await self._installation_pb(record)

    @rpc
    async def GetInstallation(
        self, request: gateway_pb2.GetInstallationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        return await self._installation_pb(await self._installations.get(request.installation_id))

    @rpc
    async def ListInstallations(
        self, request: gateway_pb2.ListInstallationsRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListInstallationsResponse:
        caller = await self._authorize(request, context)
        offset, size = page_request(request.page_size, request.page_token)
        listing = await list_page(
            # Whole, until the store reads a page of installations itself.
            in_memory(lambda: self._visible_installations(request, caller)),
            offset,
            size,
            self._installation_pb,
        )
        return gateway_pb2.ListInstallationsResponse(
            installations=listing.page.items, next_page_token=listing.next_token
        )

    @rpc
    async def DisableIntegration(
        self, request: gateway_pb2.DisableIntegrationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        before = await self._installations.get(request.installation_id)
        record = await self._installations.disable(request.installation_id)
        if before.enabled:
            await self._subscriptions.unsubscribe(record)
        return await self._installation_pb(record)

    # --- sending --------------------------------------------------------------------------------

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        budget = self._default_deadline_s if remaining is None else min(remaining, 24 * 3600)
        return time.monotonic() + budget

    @staticmethod
    def _reply(outcome: SendOutcome) -> gateway_pb2.SendReply:
        reply = gateway_pb2.SendReply(
            message_id=outcome.message_id,
            provider_status=outcome.provider_status,
            attempts=outcome.attempts,
            installation_id=outcome.installation_id,
            integration_id=outcome.integration_id,
            replayed=outcome.replayed,
        )
        if outcome.provider_message_id is not None:
            reply.provider_message_id = outcome.provider_message_id
        return reply

    async def _send(
        self,
        request: gateway_pb2.SendMessageRequest | gateway_pb2.SendFileRequest,
        context: grpc.aio.ServicerContext,
    ) -> gateway_pb2.SendReply:
        media = (
            (request.media_url, request.media_type, request.filename)
            if isinstance(request, gateway_pb2.SendFileRequest)
            else None
        )
        send = SendRequest(
            kind=MessageKind.SMS if media is None else MessageKind.MMS,
            org_id=request.org_id,
            from_number=getattr(request, "from"),
            to=request.to,
            text=request.text,
            media_url=media[0] if media else "",
            media_type=media[1] if media else "",
            filename=media[2] if media else "",
            extension=request.extension,
            domain=request.domain,
            integration_id=request.integration_id,
            idempotency_key=request.idempotency_key,
            metadata=dict(request.metadata),
        )
        return self._reply(await self._send_path.send(send, deadline=self._deadline(context)))

    @rpc
    async def SendMessage(
        self, request: gateway_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SendReply:
        await self._authorize(request, context)
        return await self._send(request, context)

    @rpc
    async def SendFile(
        self, request: gateway_pb2.SendFileRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SendReply:
        await self._authorize(request, context)
        return await self._send(request, context)

    @rpc
    async def GetMessage(
        self, request: gateway_pb2.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Message:
        await self._authorize(request, context)
        record = await self._store.get_message(request.message_id)
        if record is None:
            raise _message_not_found(request.message_id)
        return message_pb(record)

    # --- inbound ------------------------------------------------------------------------------

    def _filter(
        self, org_id: str, integration_id: str, types: Sequence[int], caller: Caller
    ) -> EventFilter:
        names = set()
        for value in types:
            name = _EVENT_TYPE_NAMES.get(int(value))
            if name is None:
                raise InvalidRequest(
                    "unknown event type", violations=[("types", f"{value} is not an event type")]
                )
            names.add(name)
        return EventFilter(
            org_id=org_id or None,
            integration_id=integration_id or None,
            types=frozenset(names),
            orgs=caller.orgs,
        )

    @rpc_stream
    async def StreamEvents(
        self, request: gateway_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[gateway_pb2.StreamEventsResponse, None]:
        caller = await self._authorize(request, context)
        event_filter = self._filter(request.org_id, request.integration_id, request.types, caller)
        batch = ReadLimit(request.max_batch if 0 < request.max_batch <= 5000 else 500)
        if request.consumer:
            consumer = caller.consumer(request.consumer, method=_STREAM_EVENTS)
            stream = self._consumer_stream(consumer, request, event_filter, batch)
        else:
            start = request.WhichOneof("start")
            if start == "after_cursor":
                after = request.after_cursor
            elif start == "earliest":
                after = await self._store.earliest_cursor()
            else:
                after = await self._store.latest_cursor()
            stream = follow_events(
                self._store, self._hub, after=after, event_filter=event_filter, batch=batch
            )
        async for events in stream:
            # A batch is counted in events; each response also fits the reply size limit.
            largest = 0
            for page in pages_by_size(event_pb(e) for e in events):
                largest = max(largest, page.largest)
                yield gateway_pb2.StreamEventsResponse(events=page.items)
            batch.saw_largest(largest)

    async def _consumer_stream(
        self,
        consumer: str,
        request: gateway_pb2.StreamEventsRequest,
        event_filter: EventFilter,
        batch: ReadLimit,
    ) -> AsyncIterator[tuple[EventRecord, ...]]:
        subscriber = uuid.uuid4().hex
        start_after: int | None = None
        if request.WhichOneof("start") == "after_cursor":
            start_after = request.after_cursor
        elif request.WhichOneof("start") == "earliest":
            start_after = await self._store.earliest_cursor()
        try:
            while not self._hub.closed:
                mark = self._hub.mark()
                events = await self._store.lease_events(
                    consumer,
                    subscriber=subscriber,
                    filter=event_filter,
                    limit=batch(),
                    lease_s=self._lease_s,
                    now=datetime.now(UTC),
                    start_after=start_after,
                )
                if events:
                    yield events
                    continue
                await self._hub.wait(mark, at_most_s=min(2.0, self._lease_s / 2))
        finally:
            await asyncio.shield(self._store.release_leases(consumer, subscriber))

    @rpc
    async def AckEvents(
        self, request: gateway_pb2.AckEventsRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.AckEventsResponse:
        caller = await self._authorize(request, context)
        if not request.consumer:
            raise InvalidRequest("consumer is required", violations=[("consumer", "required")])
        consumer = caller.consumer(request.consumer, method=_ACK_EVENTS)
        count = await self._store.ack_events(consumer, list(request.cursors))
        return gateway_pb2.AckEventsResponse(acknowledged=count)

    @rpc
    async def ListEvents(
        self, request: gateway_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListEventsResponse:
        caller = await self._authorize(request, context)
        event_filter = self._filter(request.org_id, request.integration_id, request.types, caller)
        # The page token is the cursor to go on after: ListEvents pages by cursor.
        after, size = page_request(request.page_size, request.page_token)
        if not request.page_token:
            after = request.after_cursor or await self._store.earliest_cursor()
        listing = await list_page(
            lambda after, limit: self._store.read_events(after, filter=event_filter, limit=limit),
            after,
            size,
            _event_pb,
            cursor=_cursor,
        )
        # A full page has a token even when it ended at the newest event: more "may follow"
        # (the next_page_token comment of gateway.proto's ListEventsResponse).
        return gateway_pb2.ListEventsResponse(
            events=listing.page.items,
            next_page_token=str(listing.end) if listing.page.full else "",
        )

    @rpc
    async def ListUnmatchedWebhooks(
        self, request: gateway_pb2.ListUnmatchedWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListUnmatchedWebhooksResponse:
        await self._authorize(request, context)
        offset, size = page_request(request.page_size, request.page_token)
        listing = await list_page(
            lambda offset, limit: self._store.list_webhook_requests(
                outcomes=frozenset(_UNMATCHED_KINDS),
                integration_id=request.integration_id or None,
                limit=limit,
                offset=offset,
            ),
            offset,
            size,
            _unmatched_pb,
        )
        return gateway_pb2.ListUnmatchedWebhooksResponse(
            webhooks=listing.page.items, next_page_token=listing.next_token
        )

    @rpc
    async def ReplayWebhook(
        self, request: gateway_pb2.ReplayWebhookRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ReplayWebhookResponse:
        await self._authorize(request, context)
        result = await self._ingestor.replay(request.id)
        reason = clip_text(result.reason, _MAX_REASON_BYTES)
        page: Page[gateway_pb2.Event] = Page(
            max(1, len(result.events)), budget=REPLY_BUDGET - len(reason.encode())
        )
        await fill(page, result.events, _event_pb)
        return gateway_pb2.ReplayWebhookResponse(
            events=page.items,
            reason=reason,
            omitted_events=len(result.events) - len(page.items),
        )

    @rpc
    async def RetrySubscription(
        self, request: gateway_pb2.RetrySubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        record = await self._installations.get(request.installation_id)
        await self._subscriptions.subscribe_now(record)
        return await self._installation_pb(await self._installations.get(record.id))

    @rpc
    async def BeginAuthorization(
        self, request: gateway_pb2.BeginAuthorizationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.BeginAuthorizationResponse:
        await self._authorize(request, context)
        record = await self._installations.get(request.installation_id)
        url = await self._auth.begin(record)
        return gateway_pb2.BeginAuthorizationResponse(
            authorization_url=url, redirect_uri=self._auth.redirect_uri
        )


_STREAM_EVENTS = gateway_method("StreamEvents")
_ACK_EVENTS = gateway_method("AckEvents")


def _named(request: Message, field: str) -> str:
    """The string field ``field`` of ``request`` ("" when its type has no such field)."""
    if field not in request.DESCRIPTOR.fields_by_name:
        return ""
    value: str = getattr(request, field)
    return value


def _log_hidden(record: str, caller: Caller) -> None:
    # For the operator: a scoped token reached for another organisation's record (the caller
    # is answered as for a missing one).
    logger.info(
        "another organisation's record answered as not found",
        extra={"record": record, "token": caller.name},
    )


def _message_not_found(message_id: str) -> NotFound:
    return NotFound(f"no message {message_id!r}", reason="MESSAGE_NOT_FOUND")


_AUTHORIZATION_STATES = {
    "not_required": gateway_pb2.Authorization.NOT_REQUIRED,
    "unauthorized": gateway_pb2.Authorization.UNAUTHORIZED,
    "authorized": gateway_pb2.Authorization.AUTHORIZED,
    "expired": gateway_pb2.Authorization.EXPIRED,
    "error": gateway_pb2.Authorization.ERROR,
}


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    """The internal service a separate sidecar calls (``msgbridge sidecar --core``)."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    @rpc
    async def IngestWebhook(
        self, request: ingest_pb2.WebhookDelivery, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.WebhookVerdict:
        return await self._ingestor.ingest(request)


_EVENT_TYPES = {
    "message": gateway_pb2.Event.MESSAGE,
    "mms": gateway_pb2.Event.MMS,
    "messageDelivered": gateway_pb2.Event.MESSAGE_DELIVERED,
    "messageFailed": gateway_pb2.Event.MESSAGE_FAILED,
    "messageSent": gateway_pb2.Event.MESSAGE_SENT,
}
_EVENT_TYPE_NAMES: dict[int, str] = {int(value): name for name, value in _EVENT_TYPES.items()}
_UNMATCHED_KINDS = {
    WebhookOutcome.UNMATCHED: gateway_pb2.UnmatchedWebhook.UNMATCHED,
    WebhookOutcome.UNROUTABLE: gateway_pb2.UnmatchedWebhook.UNROUTABLE,
    WebhookOutcome.UNAUTHENTICATED: gateway_pb2.UnmatchedWebhook.UNAUTHENTICATED,
}


def event_pb(event: NewEvent) -> gateway_pb2.Event:
    pb = gateway_pb2.Event(
        cursor=getattr(event, "cursor", 0),
        type=_EVENT_TYPES.get(event.type, gateway_pb2.Event.TYPE_UNSPECIFIED),
        org_id=event.org_id,
        installation_id=event.installation_id,
        integration_id=event.integration_id,
        users=event.users,
        to=event.to_number,
        text=event.text,
        media_urls=event.media_urls,
        provider_message_id=event.provider_message_id,
        message_id=event.message_id,
        status=event.status,
        error=event.error,
        metadata=dict(event.metadata),
        received_at=_ts(event.received_at),
    )
    setattr(pb, "from", event.from_number)
    return pb


def unmatched_pb(record: WebhookRequestRecord) -> gateway_pb2.UnmatchedWebhook:
    return gateway_pb2.UnmatchedWebhook(
        id=record.id,
        kind=_UNMATCHED_KINDS.get(record.outcome, gateway_pb2.UnmatchedWebhook.KIND_UNSPECIFIED),
        integration_id=record.integration_id,
        installation_id=record.installation_id or "",
        reason=record.reason,
        method=record.method,
        path=record.path,
        query=record.query,
        content_type=record.content_type,
        body=record.body,
        received_at=_ts(record.received_at),
        replayed=record.replayed_at is not None,
    )


def message_pb(record: MessageRecord) -> gateway_pb2.Message:
    pb = gateway_pb2.Message(
        message_id=record.id,
        org_id=record.org_id,
        installation_id=record.installation_id,
        integration_id=record.integration_id,
        to=record.to_number,
        text=record.text,
        media_url=record.media_url or "",
        state=_MESSAGE_STATES[record.state],
        provider_status=record.provider_status or 0,
        attempts=record.attempts,
        error=record.error or "",
        metadata=dict(record.metadata),
        created_at=_ts(record.created_at),
        updated_at=_ts(record.updated_at),
    )
    setattr(pb, "from", record.from_number)
    if record.provider_message_id is not None:
        pb.provider_message_id = record.provider_message_id
    return capped(pb)


_event_pb = as_async(event_pb)
_unmatched_pb = as_async(unmatched_pb)

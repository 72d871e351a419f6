"""The gRPC servicer of ``msgbridge.v1.Gateway``: thin — translate, call the core, convert.

Every RPC first asks its :class:`Authorizer` who calls and whether the request may touch what it
names, and runs inside :func:`rpc` (or :func:`rpc_stream`), the one error boundary. Records
become messages in :mod:`server.api._convert`; the List RPCs page through
:func:`server.api._paging.list_page`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

import grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

from ..core import (
    AuthorizationStatus,
    ConversationSignals,
    EventHub,
    ExchangeLog,
    Ingestor,
    InstallationAuth,
    InstallationDirectory,
    IntegrationCatalog,
    LoadedIntegration,
    SendLimits,
    SendPath,
    Signal,
    SubscriptionKeeper,
    definition_refused,
    follow_consumer,
    follow_events,
    limits_from_json,
    normalize_address,
    normalize_number,
)
from ..engine import DEFINITION_TOO_LARGE, MAX_DEFINITION_BYTES, Property
from ..errors import FailedPrecondition, InvalidRequest, NotFound
from ..metrics import NO_METRICS, Metrics
from ..security.api_access import AccessPolicy, Caller, gateway_method
from ..store import (
    EventFilter,
    EventRecord,
    InstallationRecord,
    MessageRecord,
    OptOutRecord,
    RecordNotFound,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ..tracing import streamed_spans
from ._authorize import Authorizer, message_not_found
from ._convert import (
    DEFAULT_EVENT_TYPES,
    UNMATCHED_OUTCOMES,
    event_pb,
    event_type_name,
    installation_pb,
    integration_pb,
    message_pb,
    number_inputs,
    opt_out_pb,
    send_reply,
    send_request,
    unmatched_pb,
)
from ._delivery import limits_of, states_of
from ._keysets import (
    key_token,
    keyed_page,
    name_token,
    read_key_token,
    read_name_token,
    read_time_id_token,
)
from ._media import MediaRpcs
from ._paging import as_async, fill, list_page, page_request
from ._replies import REPLY_BUDGET, Page, ReadLimit, clip_text, pages_by_size
from ._rpc import rpc, rpc_stream
from ._signals import signal_reply, signal_request

__all__ = ["GatewayServicer"]

# A request's bytes beyond its definition's: field tags, the length, validate_only.
_FIELD_OVERHEAD_BYTES = 64
# A replay's reason joins every problem found; the reply keeps its start.
_MAX_REASON_BYTES = 16_384
_STREAM_EVENTS = gateway_method("StreamEvents")
_ACK_EVENTS = gateway_method("AckEvents")


_opt_out_pb = as_async(opt_out_pb)
_unmatched_pb = as_async(unmatched_pb)
_message_pb = as_async(message_pb)


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        send_path: SendPath,
        signals: ConversationSignals,
        ingestor: Ingestor,
        hub: EventHub,
        subscriptions: SubscriptionKeeper,
        auth: InstallationAuth,
        authorization: AuthorizationStatus,
        default_deadline_s: float,
        lease_s: float = 30.0,
        access: AccessPolicy | None = None,
        media: MediaRpcs | None = None,
        exchanges: ExchangeLog | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._exchanges = exchanges
        self._metrics = metrics
        self._authorize = Authorizer(
            access or AccessPolicy(), installations=installations, store=store
        )
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
        self._signals = signals
        self._default_deadline_s = default_deadline_s
        self._media = media if media is not None else MediaRpcs(None, send_max_age_s=0.0)
        # Events carry their stored files' signed URLs (docs/media.md) when media is on.
        self._event_pb = functools.partial(
            event_pb, media_url=self._media.media_url if self._media.signs else None
        )
        self._event_pb_async = as_async(self._event_pb)

    # --- integrations ---------------------------------------------------------------------------

    async def _integration_pb(
        self, loaded: LoadedIntegration, *, count_for: Caller | None
    ) -> gateway_pb2.Integration:
        """``loaded`` with how many enabled installations use it among those ``count_for``
        sees (none counted when None: a definition only validated)."""
        count = 0
        if count_for is not None:
            count = await self._installation_count(loaded.id, count_for)
        return integration_pb(loaded, installation_count=count)

    async def _installation_count(self, integration_id: str, caller: Caller) -> int:
        if caller.orgs is None:
            return await self._store.count_installations(integration_id)
        installations = await self._store.list_installations(
            integration_id=integration_id, org_ids=caller.orgs
        )
        return sum(1 for i in installations if i.enabled)

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
        _, size = page_request(request.page_size, "")
        listing, last = await keyed_page(
            lambda after, limit: self._catalog.list(after=after, limit=limit),
            read_name_token(request.page_token),
            size,
            functools.partial(self._integration_pb, count_for=caller),
            _integration_id,
        )
        return gateway_pb2.ListIntegrationsResponse(
            integrations=listing.page.items,
            next_page_token="" if last is None else name_token(last),
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
        """``record`` with its definition's properties and its authorization state (neither,
        once its integration is deleted)."""
        declared: Sequence[Property] = ()
        authorization = ("not_required", "")
        try:
            definition = (await self._catalog.get(record.integration_id)).definition
            authorization = await self._authorization.of(record, definition)
            declared = definition.properties
        except NotFound:
            pass
        return installation_pb(
            record,
            declared=declared,
            webhook_url=self._installations.webhook_url(record),
            authorization=authorization,
        )

    @rpc
    async def EnableIntegration(
        self, request: gateway_pb2.EnableIntegrationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        record = await self._installations.enable(
            org_id=request.org_id,
            integration_id=request.integration_id,
            properties=dict(request.properties),
            numbers=number_inputs(request.numbers),
            default_region=request.default_region or None,
            limits=limits_of(
                request.send_limits if request.HasField("send_limits") else None, request.numbers
            ),
        )
        if record.subscription_state == "pending":
            self._subscriptions.schedule(record)
        return await self._installation_pb(record)

    @rpc
    async def UpdateInstallation(
        self, request: gateway_pb2.UpdateInstallationRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Installation:
        await self._authorize(request, context)
        before = await self._installations.get(request.installation_id)
        record = await self._installations.update(
            request.installation_id,
            properties=dict(request.properties),
            clear_properties=list(request.clear_properties),
            numbers=number_inputs(request.numbers) if request.set_numbers else None,
            default_region=(request.default_region if request.HasField("default_region") else None),
            limits=_update_limits(request, before),
        )
        await self._subscriptions.after_update(before, record)
        return await self._installation_pb(await self._installations.get(record.id))

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
        _, size = page_request(request.page_size, "")
        org_id = request.org_id or None  # a named org was checked by _authorize

        async def read(
            after: tuple[datetime, str] | None, limit: int
        ) -> Sequence[InstallationRecord]:
            return await self._store.list_installations(
                org_id=org_id,
                integration_id=request.integration_id or None,
                # Else a scoped token sees its own organisations' only.
                org_ids=caller.orgs if org_id is None else None,
                after=after,
                limit=limit,
            )

        listing, last = await keyed_page(
            read, read_time_id_token(request.page_token), size, self._installation_pb, _created_key
        )
        return gateway_pb2.ListInstallationsResponse(
            installations=listing.page.items, next_page_token=_time_id_token(last)
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

    async def _send(
        self,
        request: gateway_pb2.SendMessageRequest | gateway_pb2.SendFileRequest,
        context: grpc.aio.ServicerContext,
    ) -> gateway_pb2.SendReply:
        """SendMessage and SendFile: the same path, with the caller's deadline (at most a day)."""
        caller = await self._authorize(request, context)
        if isinstance(request, gateway_pb2.SendFileRequest):
            request = await self._media.hosted(request, caller)
        remaining = context.time_remaining()
        budget = self._default_deadline_s if remaining is None else min(remaining, 24 * 3600)
        outcome = await self._send_path.send(
            send_request(request), deadline=time.monotonic() + budget
        )
        return send_reply(outcome)

    @rpc
    async def SendMessage(
        self, request: gateway_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SendReply:
        return await self._send(request, context)

    @rpc
    async def SendFile(
        self, request: gateway_pb2.SendFileRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SendReply:
        return await self._send(request, context)

    # (ext) conversation signals (docs/format.md, "Conversation signals"): authorised as a send,
    # made at once, never queued

    @rpc
    async def SendTyping(
        self, request: gateway_pb2.SignalRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SignalReply:
        return await self._signal(request, context, Signal.TYPING)

    @rpc
    async def MarkRead(
        self, request: gateway_pb2.SignalRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SignalReply:
        return await self._signal(request, context, Signal.READ)

    async def _signal(
        self, request: gateway_pb2.SignalRequest, context: grpc.aio.ServicerContext, signal: Signal
    ) -> gateway_pb2.SignalReply:
        await self._authorize(request, context)
        return signal_reply(await self._signals.send(signal_request(request, signal)))

    @rpc
    async def UploadMedia(
        self,
        request_iterator: AsyncIterator[gateway_pb2.UploadMediaRequest],
        context: grpc.aio.ServicerContext,
    ) -> gateway_pb2.MediaInfo:
        caller = await self._authorize(gateway_pb2.GetMediaRequest(), context)
        return await self._media.upload(request_iterator, caller)

    @rpc_stream
    async def GetMedia(
        self, request: gateway_pb2.GetMediaRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[gateway_pb2.GetMediaResponse, None]:
        caller = await self._authorize(request, context)
        async for part in self._media.get(request, caller):
            yield part

    @rpc
    async def GetMessage(
        self, request: gateway_pb2.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Message:
        await self._authorize(request, context)
        record = await self._store.get_message(request.message_id)
        if record is None:
            raise message_not_found(request.message_id)
        if self._exchanges is None:
            return message_pb(record)
        return message_pb(record, await self._exchanges.of_message(record.id))

    @rpc
    async def ListMessages(
        self, request: gateway_pb2.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListMessagesResponse:
        caller = await self._authorize(request, context)
        _, size = page_request(request.page_size, "")
        orgs = caller.orgs
        if request.org_id:  # a named org was checked by _authorize
            orgs = frozenset({request.org_id})
        states = states_of(request.states)
        after = request.created_after.ToDatetime(UTC) if request.HasField("created_after") else None
        before = (
            request.created_before.ToDatetime(UTC) if request.HasField("created_before") else None
        )

        async def read(key: tuple[datetime, str] | None, limit: int) -> Sequence[MessageRecord]:
            return await self._store.list_messages(
                org_ids=orgs,
                installation_id=request.installation_id or None,
                states=states,
                created_after=after,
                created_before=before,
                after=key,
                limit=limit,
            )

        listing, last = await keyed_page(
            read, read_time_id_token(request.page_token), size, _message_pb, _created_key
        )
        return gateway_pb2.ListMessagesResponse(
            messages=listing.page.items, next_page_token=_time_id_token(last)
        )

    @rpc
    async def CancelMessage(
        self, request: gateway_pb2.CancelMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.Message:
        await self._authorize(request, context)
        try:
            record, cancelled = await self._store.cancel_message(
                request.message_id, now=datetime.now(UTC)
            )
        except RecordNotFound:
            raise message_not_found(request.message_id) from None
        if not cancelled:
            raise FailedPrecondition(
                f"the message is {record.state.value}: only a queued message can be cancelled",
                reason="MESSAGE_NOT_CANCELLABLE",
                metadata={"state": record.state.value},
            )
        return message_pb(record)

    # --- opt-outs (docs/delivery.md, "Opt-outs") ----------------------------------------------

    async def _normalizer(self, installation_id: str) -> Callable[[str], str]:
        """How numbers a caller writes are normalised as the installation named stores them
        (NOT_FOUND when unknown): with its default region, or (ext) verbatim when its
        definition's addresses are ids or user names (docs/format.md, "Numbers", "Addresses").
        With none named, as phone numbers without a region."""
        if not installation_id:
            return lambda text: normalize_number(text, None)
        installation = await self._installations.get(installation_id)
        integration = await self._catalog.get(installation.integration_id)
        region, addresses = installation.default_region, integration.definition.addresses
        return lambda text: normalize_address(text, region, addresses)

    @rpc
    async def ListOptOuts(
        self, request: gateway_pb2.ListOptOutsRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListOptOutsResponse:
        caller = await self._authorize(request, context)
        _, size = page_request(request.page_size, "")
        after = _opt_out_key(request.page_token)
        normalize = await self._normalizer(request.installation_id)
        from_number = normalize(getattr(request, "from")) or None
        to_number = normalize(request.to) or None
        # A named org was checked by _authorize; else a scoped token sees its own orgs only.
        org_ids = frozenset({request.org_id}) if request.org_id else caller.orgs

        async def read(
            after: tuple[datetime, str, str, str] | None, limit: int
        ) -> Sequence[OptOutRecord]:
            return await self._store.list_opt_outs(
                org_ids=org_ids,
                installation_id=request.installation_id or None,
                from_number=from_number,
                to_number=to_number,
                after=after,
                limit=limit,
            )

        listing, last = await keyed_page(read, after, size, _opt_out_pb, _opt_out_sort_key)
        return gateway_pb2.ListOptOutsResponse(
            opt_outs=listing.page.items, next_page_token="" if last is None else key_token(*last)
        )

    @rpc
    async def ClearOptOut(
        self, request: gateway_pb2.ClearOptOutRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ClearOptOutResponse:
        await self._authorize(request, context)
        missing = [
            (name, "required")
            for name, value in (
                ("installation_id", request.installation_id),
                ("from", getattr(request, "from")),
                ("to", request.to),
            )
            if not value.strip()
        ]
        if missing:
            raise InvalidRequest("installation_id, from and to are required", violations=missing)
        normalize = await self._normalizer(request.installation_id)
        cleared = await self._store.clear_opt_out(
            request.installation_id,
            normalize(getattr(request, "from")),
            normalize(request.to),
        )
        return gateway_pb2.ClearOptOutResponse(cleared=cleared)

    # --- inbound ------------------------------------------------------------------------------

    @staticmethod
    def _filter(
        org_id: str, integration_id: str, types: Sequence[int], caller: Caller
    ) -> EventFilter:
        names = set()
        for value in types:
            name = event_type_name(value)
            if name is None:
                raise InvalidRequest(
                    "unknown event type", violations=[("types", f"{value} is not an event type")]
                )
            names.add(name)
        return EventFilter(
            org_id=org_id or None,
            integration_id=integration_id or None,
            # No types: the first version's, never the later ones (docs/format.md, "More event
            # types").
            types=frozenset(names) or DEFAULT_EVENT_TYPES,
            orgs=caller.orgs,
        )

    @rpc_stream
    async def StreamEvents(
        self, request: gateway_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[gateway_pb2.StreamEventsResponse, None]:
        caller = await self._authorize(request, context)
        event_filter = self._filter(request.org_id, request.integration_id, request.types, caller)
        batch = ReadLimit(request.max_batch if 0 < request.max_batch <= 5000 else 500)
        stream = await self._follow(request, caller, event_filter, batch)
        kind = "consumer" if request.consumer else "cursor"
        self._metrics.subscriber(kind, 1)
        # Closed with the call, not when collected: a consumer's leases are released at once.
        try:
            async with contextlib.aclosing(stream):
                async for events in stream:
                    # A batch is counted in events; each response also fits the reply size limit.
                    largest = 0
                    with streamed_spans(events):  # docs/operations.md, "Traces"
                        for page in pages_by_size(self._event_pb(e) for e in events):
                            largest = max(largest, page.largest)
                            yield gateway_pb2.StreamEventsResponse(events=page.items)
                    batch.saw_largest(largest)
        finally:
            self._metrics.subscriber(kind, -1)

    async def _follow(
        self,
        request: gateway_pb2.StreamEventsRequest,
        caller: Caller,
        event_filter: EventFilter,
        batch: ReadLimit,
    ) -> AsyncGenerator[tuple[EventRecord, ...], None]:
        """The batches of events a ``StreamEvents`` request asks for: its durable consumer's, or
        every event after where it starts."""
        consumer = (
            caller.consumer(request.consumer, method=_STREAM_EVENTS) if request.consumer else ""
        )
        start = request.WhichOneof("start")
        after: int | None = None  # a consumer that has acknowledged nothing: from the newest
        if start == "after_cursor":
            after = request.after_cursor
        elif start == "earliest":
            after = await self._store.earliest_cursor()
        if consumer:
            return follow_consumer(
                self._store,
                self._hub,
                consumer,
                event_filter=event_filter,
                batch=batch,
                lease_s=self._lease_s,
                start_after=after,
            )
        if after is None:
            after = await self._store.latest_cursor()
        return follow_events(
            self._store, self._hub, after=after, event_filter=event_filter, batch=batch
        )

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
            self._event_pb_async,
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
        webhooks, token = await self._webhooks(request, UNMATCHED_OUTCOMES)
        return gateway_pb2.ListUnmatchedWebhooksResponse(webhooks=webhooks, next_page_token=token)

    @rpc
    async def ListWebhooks(
        self, request: gateway_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListWebhooksResponse:
        await self._authorize(request, context)
        webhooks, token = await self._webhooks(request, frozenset())  # every outcome
        return gateway_pb2.ListWebhooksResponse(webhooks=webhooks, next_page_token=token)

    async def _webhooks(
        self,
        request: gateway_pb2.ListUnmatchedWebhooksRequest | gateway_pb2.ListWebhooksRequest,
        outcomes: frozenset[WebhookOutcome],
    ) -> tuple[Sequence[gateway_pb2.UnmatchedWebhook], str]:
        """A page of the kept webhook requests with one of ``outcomes`` (empty: any), newest
        first, and the next page's token."""
        _, size = page_request(request.page_size, "")

        async def read(
            after: tuple[datetime, str] | None, limit: int
        ) -> Sequence[WebhookRequestRecord]:
            return await self._store.list_webhook_requests(
                outcomes=outcomes,
                integration_id=request.integration_id or None,
                after=after,
                limit=limit,
            )

        listing, last = await keyed_page(
            read, read_time_id_token(request.page_token), size, _unmatched_pb, _received_key
        )
        return listing.page.items, _time_id_token(last)

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
        await fill(page, result.events, self._event_pb_async)
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


def _cursor(event: EventRecord) -> int:
    return event.cursor


def _update_limits(
    request: gateway_pb2.UpdateInstallationRequest, before: InstallationRecord
) -> SendLimits | None:
    """The limits an update sets: ``send_limits`` when given; the numbers' own rates when it
    sets the numbers (the new numbers' rates replace the old ones'; the other limits stay);
    None keeps the installation's."""
    if request.HasField("send_limits"):
        return limits_of(request.send_limits, request.numbers) or SendLimits()
    if not request.set_numbers:
        return None
    own = limits_of(None, request.numbers)
    kept = limits_from_json(before.send_limits_json)
    return replace(kept, numbers=own.numbers if own is not None else MappingProxyType({}))


def _integration_id(loaded: LoadedIntegration) -> str:
    """Where ``IntegrationCatalog.list`` goes on after ``loaded``."""
    return loaded.id


def _created_key(record: InstallationRecord | MessageRecord) -> tuple[datetime, str]:
    """Where ``Store.list_installations`` and ``Store.list_messages`` go on after ``record``."""
    return (record.created_at, record.id)


def _received_key(record: WebhookRequestRecord) -> tuple[datetime, str]:
    """Where ``Store.list_webhook_requests`` goes on after ``record``."""
    return (record.received_at, record.id)


def _time_id_token(key: tuple[datetime, str] | None) -> str:
    """The next page's token after ``key`` (none when nothing follows)."""
    return "" if key is None else key_token(*key)


def _opt_out_sort_key(record: OptOutRecord) -> tuple[datetime, str, str, str]:
    """Where ``Store.list_opt_outs`` goes on after ``record``."""
    return (record.created_at, record.installation_id, record.from_number, record.to_number)


def _opt_out_key(token: str) -> tuple[datetime, str, str, str] | None:
    key = read_key_token(token, 3)
    if key is None:
        return None
    moment, (installation_id, from_number, to_number) = key
    return (moment, installation_id, from_number, to_number)

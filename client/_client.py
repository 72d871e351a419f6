"""Typed clients of the ``msgbridge.v1.Gateway`` service: :class:`AsyncClient` and :class:`Client`.

Both have the same methods, named after the RPCs in snake_case, and return the generated protobuf
messages (typed by their ``.pyi`` stubs). List methods iterate over every page (the server ends a
page at its page size or its reply size limit, whichever comes first, and the next page token is
followed); ``stream_events`` yields events one by one although the server sends them in batches.
A failed call raises a :class:`~client.MsgbridgeError` subclass. :class:`Client` wraps a
synchronous grpc channel: no event loop is run behind it.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from msgbridge.v1 import gateway_pb2, gateway_pb2_grpc

from . import _delivery, _media, _requests
from ._delivery import MessageState, SendLimits, SendOptions
from ._errors import error_from_rpc
from ._media import AsyncUploadSource, MediaDestination, UploadSource
from ._options import ClientOptions
from ._requests import EventType, NumberAssignments
from ._rich import MessageTemplate, QuickReply

__all__ = ["DEFAULT_TARGET", "AsyncClient", "Client"]

DEFAULT_TARGET = "localhost:50051"

_R = TypeVar("_R", bound=Message)


class AsyncClient:
    """The asyncio client. Create it with :meth:`connect`; close it, or use ``async with``."""

    def __init__(self, channel: grpc.aio.Channel, *, options: ClientOptions | None = None) -> None:
        self._options = options or ClientOptions()
        self._channel = channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self._metadata = self._options.call_metadata()

    @classmethod
    async def connect(
        cls, target: str = DEFAULT_TARGET, *, options: ClientOptions | None = None
    ) -> AsyncClient:
        """A client of the gateway at ``target`` (``HOST:PORT``).

        The channel connects on the first call (and reconnects by itself); an unreachable server
        shows as :class:`~client.UnavailableError` from that call.
        """
        options = options or ClientOptions()
        arguments = options.channel_arguments()
        if options.tls is None:
            channel = grpc.aio.insecure_channel(target, options=arguments)
        else:
            credentials = options.tls.channel_credentials()
            channel = grpc.aio.secure_channel(target, credentials, options=arguments)
        return cls(channel, options=options)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self, method: Callable[..., Awaitable[Any]], request: Message, reply_type: type[_R]
    ) -> _R:
        try:
            reply = await method(request, timeout=self._options.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        return _expect(reply, reply_type)

    # -- integrations ---------------------------------------------------------------------------

    async def register_integration(
        self, definition_json: str, *, validate_only: bool = False
    ) -> gateway_pb2.RegisterIntegrationResponse:
        request = gateway_pb2.RegisterIntegrationRequest(
            definition_json=definition_json, validate_only=validate_only
        )
        return await self._call(
            self._stub.RegisterIntegration, request, gateway_pb2.RegisterIntegrationResponse
        )

    async def get_integration(
        self, integration_id: str, *, version: int = 0
    ) -> gateway_pb2.Integration:
        request = gateway_pb2.GetIntegrationRequest(integration_id=integration_id, version=version)
        return await self._call(self._stub.GetIntegration, request, gateway_pb2.Integration)

    async def list_integrations(
        self, *, page_size: int = 0
    ) -> AsyncIterator[gateway_pb2.Integration]:
        token = ""
        while True:
            request = gateway_pb2.ListIntegrationsRequest(page_size=page_size, page_token=token)
            page = await self._call(
                self._stub.ListIntegrations, request, gateway_pb2.ListIntegrationsResponse
            )
            for integration in page.integrations:
                yield integration
            token = page.next_page_token
            if not token:
                return

    async def delete_integration(
        self, integration_id: str, *, force: bool = False
    ) -> gateway_pb2.DeleteIntegrationResponse:
        request = gateway_pb2.DeleteIntegrationRequest(integration_id=integration_id, force=force)
        return await self._call(
            self._stub.DeleteIntegration, request, gateway_pb2.DeleteIntegrationResponse
        )

    # -- installations --------------------------------------------------------------------------

    async def enable_integration(
        self,
        *,
        org_id: str,
        integration_id: str,
        properties: Mapping[str, str],
        numbers: NumberAssignments,
        default_region: str | None = None,
        send_limits: SendLimits | None = None,
    ) -> gateway_pb2.Installation:
        """``send_limits``: the installation's own limits (None: the definition's defaults)."""
        request = _requests.enable_integration_request(
            org_id=org_id,
            integration_id=integration_id,
            properties=properties,
            numbers=numbers,
            default_region=default_region,
            send_limits=send_limits,
        )
        return await self._call(self._stub.EnableIntegration, request, gateway_pb2.Installation)

    async def update_installation(
        self,
        installation_id: str,
        *,
        properties: Mapping[str, str] | None = None,
        clear_properties: Sequence[str] = (),
        numbers: NumberAssignments | None = None,
        default_region: str | None = None,
        send_limits: SendLimits | None = None,
    ) -> gateway_pb2.Installation:
        """Sets ``properties`` and clears ``clear_properties``; ``numbers`` and ``send_limits``,
        given, replace all (an empty ``SendLimits()``: every limit back to the defaults)."""
        request = _requests.update_installation_request(
            installation_id,
            properties=properties,
            clear_properties=clear_properties,
            numbers=numbers,
            default_region=default_region,
            send_limits=send_limits,
        )
        return await self._call(self._stub.UpdateInstallation, request, gateway_pb2.Installation)

    async def get_installation(self, installation_id: str) -> gateway_pb2.Installation:
        request = gateway_pb2.GetInstallationRequest(installation_id=installation_id)
        return await self._call(self._stub.GetInstallation, request, gateway_pb2.Installation)

    async def list_installations(
        self, *, org_id: str = "", integration_id: str = "", page_size: int = 0
    ) -> AsyncIterator[gateway_pb2.Installation]:
        token = ""
        while True:
            request = gateway_pb2.ListInstallationsRequest(
                org_id=org_id, integration_id=integration_id, page_size=page_size, page_token=token
            )
            page = await self._call(
                self._stub.ListInstallations, request, gateway_pb2.ListInstallationsResponse
            )
            for installation in page.installations:
                yield installation
            token = page.next_page_token
            if not token:
                return

    async def disable_integration(self, installation_id: str) -> gateway_pb2.Installation:
        request = gateway_pb2.DisableIntegrationRequest(installation_id=installation_id)
        return await self._call(self._stub.DisableIntegration, request, gateway_pb2.Installation)

    async def retry_subscription(self, installation_id: str) -> gateway_pb2.Installation:
        request = gateway_pb2.RetrySubscriptionRequest(installation_id=installation_id)
        return await self._call(self._stub.RetrySubscription, request, gateway_pb2.Installation)

    # -- sending --------------------------------------------------------------------------------

    async def send_message(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        text: str,
        extension: str = "",
        domain: str = "",
        integration_id: str = "",
        idempotency_key: str = "",
        metadata: Mapping[str, str] | None = None,
        options: SendOptions | None = None,
        replies: Sequence[QuickReply] = (),
        template: MessageTemplate | None = None,
        reply_to: str = "",
    ) -> gateway_pb2.SendReply:
        """``options``: how the send waits (:class:`~client.SendOptions`; None: WAIT). The
        reply's ``state`` is SENT, or QUEUED / SENDING when it came before the provider's answer;
        its ``encoding`` and ``segments`` say what the text takes. (ext) ``replies``: quick
        replies or buttons; ``template``: an approved message template (``text`` may then be
        empty); ``reply_to``: the provider's id of the message this one answers
        (docs/format.md, "Replies, templates and reply-to")."""
        request = _requests.send_message_request(
            org_id=org_id,
            from_=from_,
            to=to,
            text=text,
            extension=extension,
            domain=domain,
            integration_id=integration_id,
            idempotency_key=idempotency_key,
            metadata=metadata,
            options=options,
            replies=replies,
            template=template,
            reply_to=reply_to,
        )
        return await self._call(self._stub.SendMessage, request, gateway_pb2.SendReply)

    async def send_file(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        media_url: str = "",
        media_id: str = "",
        text: str = "",
        media_type: str = "",
        filename: str = "",
        extension: str = "",
        domain: str = "",
        integration_id: str = "",
        idempotency_key: str = "",
        metadata: Mapping[str, str] | None = None,
        media_urls: Sequence[str] = (),
        options: SendOptions | None = None,
        reply_to: str = "",
        media_kind: str = "",
    ) -> gateway_pb2.SendReply:
        """The file is at ``media_url``, or stored by :meth:`upload_media` as ``media_id`` (one
        of them; docs/media.md). ``media_urls``: the message's further files after it
        (docs/format.md, "Several requests per send"); ``options`` and ``reply_to`` as in
        :meth:`send_message`; ``media_kind``: the first file's kind — image, video, audio or
        document — when not the one its media type or URL says (docs/format.md, "Media
        kinds")."""
        request = _requests.send_file_request(
            org_id=org_id,
            from_=from_,
            to=to,
            media_url=media_url,
            text=text,
            media_type=media_type,
            filename=filename,
            extension=extension,
            domain=domain,
            integration_id=integration_id,
            idempotency_key=idempotency_key,
            metadata=metadata,
            media_urls=media_urls,
            options=options,
            media_id=media_id,
            reply_to=reply_to,
            media_kind=media_kind,
        )
        return await self._call(self._stub.SendFile, request, gateway_pb2.SendReply)

    # -- (ext) conversation signals (docs/format.md, "Conversation signals") -----------------------

    async def send_typing(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        provider_message_id: str = "",
        integration_id: str = "",
        extension: str = "",
        domain: str = "",
    ) -> gateway_pb2.SignalReply:
        """Shows ``to`` that ``from_`` is typing, at once (never queued); ``provider_message_id``:
        the inbound message being answered, for providers that want it. FailedPreconditionError
        (reason NOT_SUPPORTED) when the integration has no SendTyping request."""
        request = _requests.signal_request(
            org_id=org_id,
            from_=from_,
            to=to,
            provider_message_id=provider_message_id,
            integration_id=integration_id,
            extension=extension,
            domain=domain,
        )
        return await self._call(self._stub.SendTyping, request, gateway_pb2.SignalReply)

    async def mark_read(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        provider_message_id: str,
        integration_id: str = "",
        extension: str = "",
        domain: str = "",
    ) -> gateway_pb2.SignalReply:
        """Tells the provider that the inbound message ``provider_message_id`` (its event's
        ``provider_message_id``) from ``to`` to our number ``from_`` was read, at once.
        FailedPreconditionError (reason NOT_SUPPORTED) when the integration has no MarkRead
        request."""
        request = _requests.signal_request(
            org_id=org_id,
            from_=from_,
            to=to,
            provider_message_id=provider_message_id,
            integration_id=integration_id,
            extension=extension,
            domain=domain,
        )
        return await self._call(self._stub.MarkRead, request, gateway_pb2.SignalReply)

    async def get_message(self, message_id: str) -> gateway_pb2.Message:
        request = gateway_pb2.GetMessageRequest(message_id=message_id)
        return await self._call(self._stub.GetMessage, request, gateway_pb2.Message)

    async def list_messages(
        self,
        *,
        org_id: str = "",
        installation_id: str = "",
        states: Sequence[MessageState] = (),
        created_after: datetime.datetime | None = None,
        created_before: datetime.datetime | None = None,
        page_size: int = 0,
    ) -> AsyncIterator[gateway_pb2.Message]:
        """Messages, newest first; filters left empty match any. The times must be aware
        datetimes (``created_after`` inclusive, ``created_before`` exclusive)."""
        token = ""
        while True:
            request = _delivery.list_messages_request(
                org_id=org_id,
                installation_id=installation_id,
                states=states,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
                page_token=token,
            )
            page = await self._call(
                self._stub.ListMessages, request, gateway_pb2.ListMessagesResponse
            )
            for message in page.messages:
                yield message
            token = page.next_page_token
            if not token:
                return

    async def cancel_message(self, message_id: str) -> gateway_pb2.Message:
        """Cancels a QUEUED or scheduled message (FailedPreconditionError, reason
        MESSAGE_NOT_CANCELLABLE, once it is SENDING or has an outcome)."""
        request = _delivery.cancel_message_request(message_id)
        return await self._call(self._stub.CancelMessage, request, gateway_pb2.Message)

    # -- events ---------------------------------------------------------------------------------

    async def stream_event_batches(
        self,
        *,
        org_id: str = "",
        integration_id: str = "",
        types: Sequence[EventType] = (),
        after_cursor: int | None = None,
        earliest: bool = False,
        consumer: str = "",
        max_batch: int = 0,
    ) -> AsyncGenerator[gateway_pb2.StreamEventsResponse, None]:
        """The batches as the server sends them (acknowledge a batch at a time, say).

        Starts after ``after_cursor``, or from the earliest kept event, or (neither) from now; a
        ``consumer`` resumes after its last acknowledged event (it takes leases, so it needs a
        ``full`` token; a ``read`` token streams without one). Runs until the caller stops
        iterating (which cancels the call) or the server ends the stream. Empty ``types``: the
        first five types; the later ones (``OPTED_OUT``, ``OPTED_IN``, ``MESSAGE_READ``,
        ``MESSAGE_STATUS``, ``TYPING``, ``CONVERSATION_STARTED``, ``MESSAGE_DELETED``) come only
        when named.
        """
        request = _requests.stream_events_request(
            org_id=org_id,
            integration_id=integration_id,
            types=types,
            after_cursor=after_cursor,
            earliest=earliest,
            consumer=consumer,
            max_batch=max_batch,
        )
        call = self._stub.StreamEvents(request, metadata=self._metadata)
        try:
            async for batch in call:
                yield _expect(batch, gateway_pb2.StreamEventsResponse)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    async def stream_events(
        self,
        *,
        org_id: str = "",
        integration_id: str = "",
        types: Sequence[EventType] = (),
        after_cursor: int | None = None,
        earliest: bool = False,
        consumer: str = "",
        max_batch: int = 0,
    ) -> AsyncGenerator[gateway_pb2.Event, None]:
        """Every event, one at a time, in cursor order (see :meth:`stream_event_batches`)."""
        batches = self.stream_event_batches(
            org_id=org_id,
            integration_id=integration_id,
            types=types,
            after_cursor=after_cursor,
            earliest=earliest,
            consumer=consumer,
            max_batch=max_batch,
        )
        try:
            async for batch in batches:
                for event in batch.events:
                    yield event
        finally:
            await batches.aclose()

    async def ack_events(
        self, consumer: str, cursors: Sequence[int]
    ) -> gateway_pb2.AckEventsResponse:
        request = gateway_pb2.AckEventsRequest(consumer=consumer, cursors=list(cursors))
        return await self._call(self._stub.AckEvents, request, gateway_pb2.AckEventsResponse)

    async def list_events(
        self,
        *,
        org_id: str = "",
        integration_id: str = "",
        types: Sequence[EventType] = (),
        after_cursor: int = 0,
        page_size: int = 0,
    ) -> AsyncIterator[gateway_pb2.Event]:
        """The stored events that match, after ``after_cursor``, without waiting for new ones."""
        token = ""
        while True:
            request = _requests.list_events_request(
                org_id=org_id,
                integration_id=integration_id,
                types=types,
                after_cursor=after_cursor,
                page_size=page_size,
                page_token=token,
            )
            page = await self._call(self._stub.ListEvents, request, gateway_pb2.ListEventsResponse)
            for event in page.events:
                yield event
            after_cursor, more = _next_events_page(page, after_cursor, page_size)
            token = page.next_page_token
            if not more:
                return

    # -- unmatched webhooks ---------------------------------------------------------------------

    async def list_unmatched_webhooks(
        self, *, integration_id: str = "", page_size: int = 0
    ) -> AsyncIterator[gateway_pb2.UnmatchedWebhook]:
        token = ""
        while True:
            request = gateway_pb2.ListUnmatchedWebhooksRequest(
                integration_id=integration_id, page_size=page_size, page_token=token
            )
            page = await self._call(
                self._stub.ListUnmatchedWebhooks, request, gateway_pb2.ListUnmatchedWebhooksResponse
            )
            for webhook in page.webhooks:
                yield webhook
            token = page.next_page_token
            if not token:
                return

    async def list_webhooks(
        self, *, integration_id: str = "", page_size: int = 0
    ) -> AsyncIterator[gateway_pb2.UnmatchedWebhook]:
        """Every kept webhook request, whatever its outcome, newest first."""
        token = ""
        while True:
            request = gateway_pb2.ListWebhooksRequest(
                integration_id=integration_id, page_size=page_size, page_token=token
            )
            page = await self._call(
                self._stub.ListWebhooks, request, gateway_pb2.ListWebhooksResponse
            )
            for webhook in page.webhooks:
                yield webhook
            token = page.next_page_token
            if not token:
                return

    async def replay_webhook(self, webhook_id: str) -> gateway_pb2.ReplayWebhookResponse:
        request = gateway_pb2.ReplayWebhookRequest(id=webhook_id)
        return await self._call(
            self._stub.ReplayWebhook, request, gateway_pb2.ReplayWebhookResponse
        )

    # -- opt-outs (docs/delivery.md, "Opt-outs") -----------------------------------------------

    async def list_opt_outs(
        self,
        *,
        org_id: str = "",
        installation_id: str = "",
        from_: str = "",
        to: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[gateway_pb2.OptOut]:
        """Recipients who opted out (newest first), filtered by what is given; numbers may be
        written in any form (the server normalises them with the installation's region)."""
        token = ""
        while True:
            request = _requests.list_opt_outs_request(
                org_id=org_id,
                installation_id=installation_id,
                from_=from_,
                to=to,
                page_size=page_size,
                page_token=token,
            )
            page = await self._call(
                self._stub.ListOptOuts, request, gateway_pb2.ListOptOutsResponse
            )
            for opt_out in page.opt_outs:
                yield opt_out
            token = page.next_page_token
            if not token:
                return

    async def clear_opt_out(self, installation_id: str, from_: str, to: str) -> bool:
        """Clear an opt-out: sends from ``from_`` to ``to`` are allowed again. False when there
        was none."""
        request = _requests.clear_opt_out_request(installation_id, from_, to)
        reply = await self._call(self._stub.ClearOptOut, request, gateway_pb2.ClearOptOutResponse)
        return reply.cleared

    # -- files (docs/media.md) ------------------------------------------------------------------

    async def upload_media(
        self,
        org_id: str,
        source: AsyncUploadSource,
        *,
        filename: str | None = None,
        integration_id: str = "",
    ) -> gateway_pb2.MediaInfo:
        """Store a file for :meth:`send_file`'s ``media_id``: its id, sniffed type, size, SHA-256
        and a signed URL.

        ``source``: the bytes, a path (read a chunk at a time on a worker thread, never whole),
        a binary file, or chunks of any size (sync or async iterable); they are sent in chunks of
        at most 1 MiB. ``filename`` is for the caller's records (default: a path's name);
        ``integration_id`` applies that integration's content types. An unreadable path raises
        ``OSError`` before anything is sent; a source that fails cancels the upload and its
        exception is raised. :class:`~client.InvalidArgumentError` ``MEDIA_TOO_LARGE``,
        ``MEDIA_TYPE_NOT_ALLOWED`` or ``MEDIA_EMPTY`` when the gateway keeps nothing. Like
        every stream, it has no deadline.
        """
        start = _media.upload_start(org_id, source, filename, integration_id)
        sent = _media.Sent()
        async with _media.async_source_chunks(source) as chunks:
            call = self._stub.UploadMedia(metadata=self._metadata)
            server = _ServerStatus(call)
            try:
                try:
                    await call.write(start)
                    async for chunk in chunks:
                        if call.done():  # the gateway refused it already: its status says why
                            break
                        await call.write(sent.add(chunk))
                    await call.done_writing()
                except (asyncio.InvalidStateError, grpc.RpcError):
                    # The call ended while being written (a refusal, or the write raced with
                    # it and grpc said INTERNAL): its final status, awaited below, says why.
                    pass
                reply = await call
            except grpc.RpcError as exc:
                raise error_from_rpc(server.error or exc) from exc
            except BaseException:
                call.cancel()
                raise
        return sent.checked(_expect(reply, gateway_pb2.MediaInfo))

    async def _media_parts(
        self, org_id: str, media_id: str
    ) -> AsyncGenerator[gateway_pb2.GetMediaResponse, None]:
        call = self._stub.GetMedia(
            _media.get_media_request(org_id, media_id), metadata=self._metadata
        )
        try:
            async for part in call:
                yield _expect(part, gateway_pb2.GetMediaResponse)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    async def get_media(self, org_id: str, media_id: str) -> tuple[gateway_pb2.MediaInfo, bytes]:
        """A stored file (an upload or an inbound message's) and its description, whole in
        memory (:meth:`download_media` writes it to a file instead). ``org_id`` "": any of the
        token's organisations. :class:`~client.NotFoundError` ``MEDIA_NOT_FOUND`` when unknown
        or another organisation's; a ``MsgbridgeError`` DATA_LOSS when the bytes do not match
        their description."""
        received = _media.Received()
        body = bytearray()
        parts = self._media_parts(org_id, media_id)
        try:
            async for part in parts:
                body += received.take(part)
        finally:
            await parts.aclose()
        return received.finish(), bytes(body)

    async def download_media(
        self,
        org_id: str,
        media_id: str,
        destination: MediaDestination,
        *,
        overwrite: bool = False,
    ) -> gateway_pb2.MediaInfo:
        """Write a stored file to ``destination`` (a path, or a binary file open for writing) as
        it comes, a chunk at a time; its description. A path that exists raises
        ``FileExistsError`` before anything is fetched, unless ``overwrite``; a download that
        fails leaves no file at the path (an existing file is replaced only once the new one is
        complete). Errors as :meth:`get_media`."""
        target = _media.DownloadTarget(destination, overwrite=overwrite)
        await asyncio.to_thread(target.open)
        complete = False
        parts = self._media_parts(org_id, media_id)
        try:
            received = _media.Received()
            async for part in parts:
                if chunk := received.take(part):
                    await asyncio.to_thread(target.write, chunk)
            info = received.finish()
            complete = True
        finally:
            await parts.aclose()
            await asyncio.to_thread(functools.partial(target.close, complete=complete))
        return info

    # -- health ---------------------------------------------------------------------------------

    async def check_health(self, service: str = "") -> health_pb2.HealthCheckResponse:
        """grpc.health.v1 Check: ``status`` is SERVING when the service (or the server) is up."""
        request = health_pb2.HealthCheckRequest(service=service)
        return await self._call(self._health.Check, request, health_pb2.HealthCheckResponse)


class Client:
    """The synchronous client over a sync grpc channel; the same methods as :class:`AsyncClient`."""

    def __init__(self, channel: grpc.Channel, *, options: ClientOptions | None = None) -> None:
        self._options = options or ClientOptions()
        self._channel = channel
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self._metadata = self._options.call_metadata()

    @classmethod
    def connect(
        cls, target: str = DEFAULT_TARGET, *, options: ClientOptions | None = None
    ) -> Client:
        """A client of the gateway at ``target``; the channel connects on the first call."""
        options = options or ClientOptions()
        arguments = options.channel_arguments()
        if options.tls is None:
            channel = grpc.insecure_channel(target, options=arguments)
        else:
            credentials = options.tls.channel_credentials()
            channel = grpc.secure_channel(target, credentials, options=arguments)
        return cls(channel, options=options)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Message, reply_type: type[_R]) -> _R:
        try:
            reply = method(request, timeout=self._options.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        return _expect(reply, reply_type)

    # -- integrations ---------------------------------------------------------------------------

    def register_integration(
        self, definition_json: str, *, validate_only: bool = False
    ) -> gateway_pb2.RegisterIntegrationResponse:
        request = gateway_pb2.RegisterIntegrationRequest(
            definition_json=definition_json, validate_only=validate_only
        )
        return self._call(
            self._stub.RegisterIntegration, request, gateway_pb2.RegisterIntegrationResponse
        )

    def get_integration(self, integration_id: str, *, version: int = 0) -> gateway_pb2.Integration:
        request = gateway_pb2.GetIntegrationRequest(integration_id=integration_id, version=version)
        return self._call(self._stub.GetIntegration, request, gateway_pb2.Integration)

    def list_integrations(self, *, page_size: int = 0) -> Iterator[gateway_pb2.Integration]:
        token = ""
        while True:
            request = gateway_pb2.ListIntegrationsRequest(page_size=page_size, page_token=token)
            page = self._call(
                self._stub.ListIntegrations, request, gateway_pb2.ListIntegrationsResponse
            )
            yield from page.integrations
            token = page.next_page_token
            if not token:
                return

    def delete_integration(
        self, integration_id: str, *, force: bool = False
    ) -> gateway_pb2.DeleteIntegrationResponse:
        request = gateway_pb2.DeleteIntegrationRequest(integration_id=integration_id, force=force)
        return self._call(
            self._stub.DeleteIntegration, request, gateway_pb2.DeleteIntegrationResponse
        )

    # -- installations --------------------------------------------------------------------------

    def enable_integration(
        self,
        *,
        org_id: str,
        integration_id: str,
        properties: Mapping[str, str],
        numbers: NumberAssignments,
        default_region: str | None = None,
        send_limits: SendLimits | None = None,
    ) -> gateway_pb2.Installation:
        """``send_limits``: the installation's own limits (None: the definition's defaults)."""
        request = _requests.enable_integration_request(
            org_id=org_id,
            integration_id=integration_id,
            properties=properties,
            numbers=numbers,
            default_region=default_region,
            send_limits=send_limits,
        )
        return self._call(self._stub.EnableIntegration, request, gateway_pb2.Installation)

    def update_installation(
        self,
        installation_id: str,
        *,
        properties: Mapping[str, str] | None = None,
        clear_properties: Sequence[str] = (),
        numbers: NumberAssignments | None = None,
        default_region: str | None = None,
        send_limits: SendLimits | None = None,
    ) -> gateway_pb2.Installation:
        """Sets ``properties`` and clears ``clear_properties``; ``numbers`` and ``send_limits``,
        given, replace all (an empty ``SendLimits()``: every limit back to the defaults)."""
        request = _requests.update_installation_request(
            installation_id,
            properties=properties,
            clear_properties=clear_properties,
            numbers=numbers,
            default_region=default_region,
            send_limits=send_limits,
        )
        return self._call(self._stub.UpdateInstallation, request, gateway_pb2.Installation)

    def get_installation(self, installation_id: str) -> gateway_pb2.Installation:
        request = gateway_pb2.GetInstallationRequest(installation_id=installation_id)
        return self._call(self._stub.GetInstallation, request, gateway_pb2.Installation)

    def list_installations(
        self, *, org_id: str = "", integration_id: str = "", page_size: int = 0
    ) -> Iterator[gateway_pb2.Installation]:
        token = ""
        while True:
            request = gateway_pb2.ListInstallationsRequest(
                org_id=org_id, integration_id=integration_id, page_size=page_size, page_token=token
            )
            page = self._call(
                self._stub.ListInstallations, request, gateway_pb2.ListInstallationsResponse
            )
            yield from page.installations
            token = page.next_page_token
            if not token:
                return

    def disable_integration(self, installation_id: str) -> gateway_pb2.Installation:
        request = gateway_pb2.DisableIntegrationRequest(installation_id=installation_id)
        return self._call(self._stub.DisableIntegration, request, gateway_pb2.Installation)

    def retry_subscription(self, installation_id: str) -> gateway_pb2.Installation:
        request = gateway_pb2.RetrySubscriptionRequest(installation_id=installation_id)
        return self._call(self._stub.RetrySubscription, request, gateway_pb2.Installation)

    # -- sending --------------------------------------------------------------------------------

    def send_message(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        text: str,
        extension: str = "",
        domain: str = "",
        integration_id: str = "",
        idempotency_key: str = "",
        metadata: Mapping[str, str] | None = None,
        options: SendOptions | None = None,
        replies: Sequence[QuickReply] = (),
        template: MessageTemplate | None = None,
        reply_to: str = "",
    ) -> gateway_pb2.SendReply:
        """``options``: how the send waits (:class:`~client.SendOptions`; None: WAIT). The
        reply's ``state`` is SENT, or QUEUED / SENDING when it came before the provider's answer;
        its ``encoding`` and ``segments`` say what the text takes. (ext) ``replies``: quick
        replies or buttons; ``template``: an approved message template (``text`` may then be
        empty); ``reply_to``: the provider's id of the message this one answers
        (docs/format.md, "Replies, templates and reply-to")."""
        request = _requests.send_message_request(
            org_id=org_id,
            from_=from_,
            to=to,
            text=text,
            extension=extension,
            domain=domain,
            integration_id=integration_id,
            idempotency_key=idempotency_key,
            metadata=metadata,
            options=options,
            replies=replies,
            template=template,
            reply_to=reply_to,
        )
        return self._call(self._stub.SendMessage, request, gateway_pb2.SendReply)

    def send_file(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        media_url: str = "",
        media_id: str = "",
        text: str = "",
        media_type: str = "",
        filename: str = "",
        extension: str = "",
        domain: str = "",
        integration_id: str = "",
        idempotency_key: str = "",
        metadata: Mapping[str, str] | None = None,
        media_urls: Sequence[str] = (),
        options: SendOptions | None = None,
        reply_to: str = "",
        media_kind: str = "",
    ) -> gateway_pb2.SendReply:
        """The file is at ``media_url``, or stored by :meth:`upload_media` as ``media_id`` (one
        of them; docs/media.md). ``media_urls``: the message's further files after it
        (docs/format.md, "Several requests per send"); ``options`` and ``reply_to`` as in
        :meth:`send_message`; ``media_kind``: the first file's kind — image, video, audio or
        document — when not the one its media type or URL says (docs/format.md, "Media
        kinds")."""
        request = _requests.send_file_request(
            org_id=org_id,
            from_=from_,
            to=to,
            media_url=media_url,
            text=text,
            media_type=media_type,
            filename=filename,
            extension=extension,
            domain=domain,
            integration_id=integration_id,
            idempotency_key=idempotency_key,
            metadata=metadata,
            media_urls=media_urls,
            options=options,
            media_id=media_id,
            reply_to=reply_to,
            media_kind=media_kind,
        )
        return self._call(self._stub.SendFile, request, gateway_pb2.SendReply)

    # -- (ext) conversation signals (docs/format.md, "Conversation signals") -----------------------

    def send_typing(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        provider_message_id: str = "",
        integration_id: str = "",
        extension: str = "",
        domain: str = "",
    ) -> gateway_pb2.SignalReply:
        """Shows ``to`` that ``from_`` is typing, at once (never queued); ``provider_message_id``:
        the inbound message being answered, for providers that want it. FailedPreconditionError
        (reason NOT_SUPPORTED) when the integration has no SendTyping request."""
        request = _requests.signal_request(
            org_id=org_id,
            from_=from_,
            to=to,
            provider_message_id=provider_message_id,
            integration_id=integration_id,
            extension=extension,
            domain=domain,
        )
        return self._call(self._stub.SendTyping, request, gateway_pb2.SignalReply)

    def mark_read(
        self,
        *,
        org_id: str,
        from_: str,
        to: str,
        provider_message_id: str,
        integration_id: str = "",
        extension: str = "",
        domain: str = "",
    ) -> gateway_pb2.SignalReply:
        """Tells the provider that the inbound message ``provider_message_id`` (its event's
        ``provider_message_id``) from ``to`` to our number ``from_`` was read, at once.
        FailedPreconditionError (reason NOT_SUPPORTED) when the integration has no MarkRead
        request."""
        request = _requests.signal_request(
            org_id=org_id,
            from_=from_,
            to=to,
            provider_message_id=provider_message_id,
            integration_id=integration_id,
            extension=extension,
            domain=domain,
        )
        return self._call(self._stub.MarkRead, request, gateway_pb2.SignalReply)

    def get_message(self, message_id: str) -> gateway_pb2.Message:
        request = gateway_pb2.GetMessageRequest(message_id=message_id)
        return self._call(self._stub.GetMessage, request, gateway_pb2.Message)

    def list_messages(
        self,
        *,
        org_id: str = "",
        installation_id: str = "",
        states: Sequence[MessageState] = (),
        created_after: datetime.datetime | None = None,
        created_before: datetime.datetime | None = None,
        page_size: int = 0,
    ) -> Iterator[gateway_pb2.Message]:
        """Messages, newest first; see :meth:`AsyncClient.list_messages`."""
        token = ""
        while True:
            request = _delivery.list_messages_request(
                org_id=org_id,
                installation_id=installation_id,
                states=states,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
                page_token=token,
            )
            page = self._call(self._stub.ListMessages, request, gateway_pb2.ListMessagesResponse)
            yield from page.messages
            token = page.next_page_token
            if not token:
                return

    def cancel_message(self, message_id: str) -> gateway_pb2.Message:
        """Cancels a QUEUED or scheduled message; see :meth:`AsyncClient.cancel_message`."""
        request = _delivery.cancel_message_request(message_id)
        return self._call(self._stub.CancelMessage, request, gateway_pb2.Message)

    # -- events ---------------------------------------------------------------------------------

    def stream_event_batches(
        self,
        *,
        org_id: str = "",
        integration_id: str = "",
        types: Sequence[EventType] = (),
        after_cursor: int | None = None,
        earliest: bool = False,
        consumer: str = "",
        max_batch: int = 0,
    ) -> Generator[gateway_pb2.StreamEventsResponse, None, None]:
        """The batches as the server sends them; see :meth:`AsyncClient.stream_event_batches`."""
        request = _requests.stream_events_request(
            org_id=org_id,
            integration_id=integration_id,
            types=types,
            after_cursor=after_cursor,
            earliest=earliest,
            consumer=consumer,
            max_batch=max_batch,
        )
        call = self._stub.StreamEvents(request, metadata=self._metadata)
        try:
            for batch in call:
                yield _expect(batch, gateway_pb2.StreamEventsResponse)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    def stream_events(
        self,
        *,
        org_id: str = "",
        integration_id: str = "",
        types: Sequence[EventType] = (),
        after_cursor: int | None = None,
        earliest: bool = False,
        consumer: str = "",
        max_batch: int = 0,
    ) -> Generator[gateway_pb2.Event, None, None]:
        """Every event, one at a time, in cursor order (see :meth:`stream_event_batches`)."""
        batches = self.stream_event_batches(
            org_id=org_id,
            integration_id=integration_id,
            types=types,
            after_cursor=after_cursor,
            earliest=earliest,
            consumer=consumer,
            max_batch=max_batch,
        )
        try:
            for batch in batches:
                yield from batch.events
        finally:
            batches.close()

    def ack_events(self, consumer: str, cursors: Sequence[int]) -> gateway_pb2.AckEventsResponse:
        request = gateway_pb2.AckEventsRequest(consumer=consumer, cursors=list(cursors))
        return self._call(self._stub.AckEvents, request, gateway_pb2.AckEventsResponse)

    def list_events(
        self,
        *,
        org_id: str = "",
        integration_id: str = "",
        types: Sequence[EventType] = (),
        after_cursor: int = 0,
        page_size: int = 0,
    ) -> Iterator[gateway_pb2.Event]:
        """The stored events that match, after ``after_cursor``, without waiting for new ones."""
        token = ""
        while True:
            request = _requests.list_events_request(
                org_id=org_id,
                integration_id=integration_id,
                types=types,
                after_cursor=after_cursor,
                page_size=page_size,
                page_token=token,
            )
            page = self._call(self._stub.ListEvents, request, gateway_pb2.ListEventsResponse)
            yield from page.events
            after_cursor, more = _next_events_page(page, after_cursor, page_size)
            token = page.next_page_token
            if not more:
                return

    # -- unmatched webhooks ---------------------------------------------------------------------

    def list_unmatched_webhooks(
        self, *, integration_id: str = "", page_size: int = 0
    ) -> Iterator[gateway_pb2.UnmatchedWebhook]:
        token = ""
        while True:
            request = gateway_pb2.ListUnmatchedWebhooksRequest(
                integration_id=integration_id, page_size=page_size, page_token=token
            )
            page = self._call(
                self._stub.ListUnmatchedWebhooks, request, gateway_pb2.ListUnmatchedWebhooksResponse
            )
            yield from page.webhooks
            token = page.next_page_token
            if not token:
                return

    def list_webhooks(
        self, *, integration_id: str = "", page_size: int = 0
    ) -> Iterator[gateway_pb2.UnmatchedWebhook]:
        """Every kept webhook request, whatever its outcome, newest first."""
        token = ""
        while True:
            request = gateway_pb2.ListWebhooksRequest(
                integration_id=integration_id, page_size=page_size, page_token=token
            )
            page = self._call(self._stub.ListWebhooks, request, gateway_pb2.ListWebhooksResponse)
            yield from page.webhooks
            token = page.next_page_token
            if not token:
                return

    def replay_webhook(self, webhook_id: str) -> gateway_pb2.ReplayWebhookResponse:
        request = gateway_pb2.ReplayWebhookRequest(id=webhook_id)
        return self._call(self._stub.ReplayWebhook, request, gateway_pb2.ReplayWebhookResponse)

    # -- opt-outs (docs/delivery.md, "Opt-outs") -----------------------------------------------

    def list_opt_outs(
        self,
        *,
        org_id: str = "",
        installation_id: str = "",
        from_: str = "",
        to: str = "",
        page_size: int = 0,
    ) -> Iterator[gateway_pb2.OptOut]:
        """Recipients who opted out (newest first), filtered by what is given; numbers may be
        written in any form (the server normalises them with the installation's region)."""
        token = ""
        while True:
            request = _requests.list_opt_outs_request(
                org_id=org_id,
                installation_id=installation_id,
                from_=from_,
                to=to,
                page_size=page_size,
                page_token=token,
            )
            page = self._call(self._stub.ListOptOuts, request, gateway_pb2.ListOptOutsResponse)
            yield from page.opt_outs
            token = page.next_page_token
            if not token:
                return

    def clear_opt_out(self, installation_id: str, from_: str, to: str) -> bool:
        """Clear an opt-out: sends from ``from_`` to ``to`` are allowed again. False when there
        was none."""
        request = _requests.clear_opt_out_request(installation_id, from_, to)
        reply = self._call(self._stub.ClearOptOut, request, gateway_pb2.ClearOptOutResponse)
        return reply.cleared

    # -- files (docs/media.md) ------------------------------------------------------------------

    def upload_media(
        self,
        org_id: str,
        source: UploadSource,
        *,
        filename: str | None = None,
        integration_id: str = "",
    ) -> gateway_pb2.MediaInfo:
        """Store a file for :meth:`send_file`'s ``media_id``; see :meth:`AsyncClient.upload_media`
        (a sync client takes no async iterable)."""
        start = _media.upload_start(org_id, source, filename, integration_id)
        sent = _media.Sent()
        with _media.source_chunks(source) as chunks:
            feed = _media.SyncUploadFeed(start, chunks, sent)
            call = self._stub.UploadMedia.future(iter(feed), metadata=self._metadata)
            feed.attach(call)
            try:
                reply = call.result()
            except grpc.FutureCancelledError:
                if feed.failure is None:  # pragma: no cover - only the feed cancels it
                    raise
                raise feed.failure from None
            except grpc.RpcError as exc:
                raise error_from_rpc(exc) from exc
            except BaseException:
                call.cancel()
                raise
        return sent.checked(_expect(reply, gateway_pb2.MediaInfo))

    def _media_parts(
        self, org_id: str, media_id: str
    ) -> Generator[gateway_pb2.GetMediaResponse, None, None]:
        call = self._stub.GetMedia(
            _media.get_media_request(org_id, media_id), metadata=self._metadata
        )
        try:
            for part in call:
                yield _expect(part, gateway_pb2.GetMediaResponse)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    def get_media(self, org_id: str, media_id: str) -> tuple[gateway_pb2.MediaInfo, bytes]:
        """A stored file and its description, whole; see :meth:`AsyncClient.get_media`."""
        received = _media.Received()
        body = bytearray()
        parts = self._media_parts(org_id, media_id)
        try:
            for part in parts:
                body += received.take(part)
        finally:
            parts.close()
        return received.finish(), bytes(body)

    def download_media(
        self,
        org_id: str,
        media_id: str,
        destination: MediaDestination,
        *,
        overwrite: bool = False,
    ) -> gateway_pb2.MediaInfo:
        """Write a stored file to ``destination`` as it comes; see
        :meth:`AsyncClient.download_media`."""
        target = _media.DownloadTarget(destination, overwrite=overwrite)
        target.open()
        complete = False
        parts = self._media_parts(org_id, media_id)
        try:
            received = _media.Received()
            for part in parts:
                if chunk := received.take(part):
                    target.write(chunk)
            info = received.finish()
            complete = True
        finally:
            parts.close()
            target.close(complete=complete)
        return info

    # -- health ---------------------------------------------------------------------------------

    def check_health(self, service: str = "") -> health_pb2.HealthCheckResponse:
        """grpc.health.v1 Check: ``status`` is SERVING when the service (or the server) is up."""
        request = health_pb2.HealthCheckRequest(service=service)
        return self._call(self._health.Check, request, health_pb2.HealthCheckResponse)


class _ServerStatus:
    """The status the server ended a grpc.aio call with, when grpc.aio reports another.

    When a write fails because the server has just ended the call (an upload refused while being
    sent), grpc.aio sets its own INTERNAL "Internal error from Core" — before or after the
    server's status, which it then replaces or is replaced by. The server's status, with its
    details, is kept here as the call reports it, for the caller's error. Reads the call's status
    as grpc.aio's own ``_create_rpc_error`` does; ``error`` stays None when that is not there
    (another grpc) or the server's status never came, and the call's error stands.
    """

    _GRPC_OWN = "Internal error from Core"

    def __init__(self, call: Any) -> None:
        self.error: grpc.aio.AioRpcError | None = None
        call.add_done_callback(self._done)

    def _done(self, call: Any) -> None:
        status = getattr(getattr(call, "_cython_call", None), "_status", None)
        if self.error is not None or status is None:
            return
        try:
            code = next(c for c in grpc.StatusCode if c.value[0] == status.code())
            if code == grpc.StatusCode.OK or (
                code == grpc.StatusCode.INTERNAL and status.details() == self._GRPC_OWN
            ):
                return
            self.error = grpc.aio.AioRpcError(
                code,
                grpc.aio.Metadata(),
                grpc.aio.Metadata.from_tuple(status.trailing_metadata() or ()),
                details=status.details(),
            )
        except (AttributeError, StopIteration, TypeError, ValueError):  # pragma: no cover
            self.error = None


def _expect(reply: object, reply_type: type[_R]) -> _R:
    # The grpc runtime is untyped; this keeps the promise the annotations make.
    if not isinstance(reply, reply_type):  # pragma: no cover - only a broken stub gets here
        raise TypeError(f"expected {reply_type.__name__}, got {type(reply).__name__}")
    return reply


def _next_events_page(
    page: gateway_pb2.ListEventsResponse, after_cursor: int, page_size: int
) -> tuple[int, bool]:
    """Where the next ListEvents page starts, and whether to ask for it.

    A page with a next_page_token is followed (the server ends a page early when it reaches the
    reply size limit, so a short page is no sign of the end). A server that sets no token pages
    by cursor alone: ask again after the last event until a page comes back empty, or short of a
    page_size we chose. A page whose cursors do not move forward ends the listing rather than
    asking for the same page forever.
    """
    if not page.events:
        return after_cursor, False
    last = page.events[-1].cursor
    if last <= after_cursor:
        return after_cursor, False
    if page.next_page_token:
        return last, True
    if page_size > 0 and len(page.events) < page_size:
        return last, False
    return last, True

"""Records to protobuf messages and requests to the core's inputs, and the enum tables between
them (a record's state or type ⇄ the proto's enum value).

Every function here is pure: what needs a lookup (a definition's properties, an installation's
authorization, a count) is looked up by the servicer and passed in. A converted record that could
be too large for a reply on its own is :func:`capped` here; events and webhooks are capped by the
page or stream that takes them (:class:`Page`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from msgbridge.v1 import gateway_pb2

from ..core import (
    LoadedIntegration,
    NumberInput,
    QuickReply,
    SendOutcome,
    SendRequest,
    capabilities_of,
)
from ..engine import Property
from ..store import (
    EventMedia,
    InstallationRecord,
    MediaRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NewEvent,
    OptOutRecord,
    ProviderExchange,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ._delivery import (
    MESSAGE_STATES,
    attempt_pb,
    number_throughput_pb,
    send_limits_pb,
    send_options,
)
from ._exchanges import exchange_pb, headers_pb
from ._replies import capped

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "UNMATCHED_OUTCOMES",
    "event_pb",
    "event_type_name",
    "installation_pb",
    "integration_pb",
    "media_info_pb",
    "message_pb",
    "number_inputs",
    "opt_out_pb",
    "send_reply",
    "send_request",
    "timestamp",
    "unmatched_pb",
]

# --- enum tables ---------------------------------------------------------------------------------

_EVENT_TYPES = {
    "message": gateway_pb2.Event.MESSAGE,
    "mms": gateway_pb2.Event.MMS,
    "messageDelivered": gateway_pb2.Event.MESSAGE_DELIVERED,
    "messageFailed": gateway_pb2.Event.MESSAGE_FAILED,
    "messageSent": gateway_pb2.Event.MESSAGE_SENT,
    "optedOut": gateway_pb2.Event.OPTED_OUT,
    "optedIn": gateway_pb2.Event.OPTED_IN,
    "messageRead": gateway_pb2.Event.MESSAGE_READ,
    "messageStatus": gateway_pb2.Event.MESSAGE_STATUS,
    "typing": gateway_pb2.Event.TYPING,
    "conversationStarted": gateway_pb2.Event.CONVERSATION_STARTED,
    "messageDeleted": gateway_pb2.Event.MESSAGE_DELETED,
}
_EVENT_TYPE_NAMES: dict[int, str] = {int(value): name for name, value in _EVENT_TYPES.items()}
#: The types an event filter without types means (docs/format.md, "More event types"): those of
#: the first version of the API, so a subscriber written before the later types never gets one.
DEFAULT_EVENT_TYPES = frozenset(
    {"message", "mms", "messageDelivered", "messageFailed", "messageSent"}
)
_MESSAGE_STATES = MESSAGE_STATES
_UNMATCHED_KINDS = {
    WebhookOutcome.UNMATCHED: gateway_pb2.UnmatchedWebhook.UNMATCHED,
    WebhookOutcome.UNROUTABLE: gateway_pb2.UnmatchedWebhook.UNROUTABLE,
    WebhookOutcome.UNAUTHENTICATED: gateway_pb2.UnmatchedWebhook.UNAUTHENTICATED,
}
#: The outcomes of the kept webhooks ``ListUnmatchedWebhooks`` lists.
UNMATCHED_OUTCOMES = frozenset(_UNMATCHED_KINDS)
_WEBHOOK_KINDS = {**_UNMATCHED_KINDS, WebhookOutcome.MATCHED: gateway_pb2.UnmatchedWebhook.MATCHED}
_SUBSCRIPTION_STATES = {
    "not_required": gateway_pb2.Subscription.NOT_REQUIRED,
    "pending": gateway_pb2.Subscription.PENDING,
    "subscribed": gateway_pb2.Subscription.SUBSCRIBED,
    "failed": gateway_pb2.Subscription.FAILED,
}
_AUTHORIZATION_STATES = {
    "not_required": gateway_pb2.Authorization.NOT_REQUIRED,
    "unauthorized": gateway_pb2.Authorization.UNAUTHORIZED,
    "authorized": gateway_pb2.Authorization.AUTHORIZED,
    "expired": gateway_pb2.Authorization.EXPIRED,
    "error": gateway_pb2.Authorization.ERROR,
}


def event_type_name(value: int) -> str | None:
    """The event type (as records name it) of the proto's ``Event.Type`` value; None when the
    value is not an event type."""
    return _EVENT_TYPE_NAMES.get(int(value))


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp:
    """``value`` as a Timestamp (the zero Timestamp for None)."""
    stamp = timestamp_pb2.Timestamp()
    if value is not None:
        stamp.FromDatetime(value)
    return stamp


# --- records to messages -------------------------------------------------------------------------


#: A stored file's signed URL and when it expires (docs/media.md).
MediaUrl = Callable[[str], tuple[str, datetime]]


def media_item_pb(item: EventMedia, media_url: MediaUrl | None) -> gateway_pb2.MediaItem:
    pb = gateway_pb2.MediaItem(
        original_url=item.original_url,
        media_id=item.media_id,
        content_type=item.content_type,
        size=item.size,
        sha256=item.sha256,
        error=item.error,
    )
    if item.media_id and media_url is not None:
        pb.url, expires_at = media_url(item.media_id)
        pb.url_expires_at.CopyFrom(timestamp(expires_at))
    return pb


def media_info_pb(record: MediaRecord, media_url: MediaUrl | None) -> gateway_pb2.MediaInfo:
    pb = gateway_pb2.MediaInfo(
        media_id=record.id,
        content_type=record.content_type,
        size=record.size,
        sha256=record.sha256,
    )
    if media_url is not None:
        pb.url, expires_at = media_url(record.id)
        pb.url_expires_at.CopyFrom(timestamp(expires_at))
    return pb


def event_pb(event: NewEvent, media_url: MediaUrl | None = None) -> gateway_pb2.Event:
    """A stored event (or one about to be stored: its cursor is then 0) as sent to callers;
    its stored files with URLs signed by ``media_url`` (docs/media.md)."""
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
        received_at=timestamp(event.received_at),
    )
    if event.metadata:  # most events have neither: an empty map costs a copy and a merge
        pb.metadata.update(event.metadata)
    if event.fields:
        pb.fields.update(event.fields)
    if event.media:
        pb.media.extend(media_item_pb(item, media_url) for item in event.media)
    setattr(pb, "from", event.from_number)  # `from` is a keyword in Python
    return pb


def unmatched_pb(record: WebhookRequestRecord) -> gateway_pb2.UnmatchedWebhook:
    return gateway_pb2.UnmatchedWebhook(
        id=record.id,
        kind=_WEBHOOK_KINDS.get(record.outcome, gateway_pb2.UnmatchedWebhook.KIND_UNSPECIFIED),
        integration_id=record.integration_id,
        installation_id=record.installation_id or "",
        reason=record.reason,
        method=record.method,
        path=record.path,
        query=record.query,
        content_type=record.content_type,
        body=record.body,
        received_at=timestamp(record.received_at),
        replayed=record.replayed_at is not None,
        headers=headers_pb(record.headers),
        answer_status=record.answer_status,
        answer_body=record.answer_body,
        duration_ms=record.duration_ms,
    )


def message_pb(
    record: MessageRecord, exchanges: Sequence[ProviderExchange] = ()
) -> gateway_pb2.Message:
    """The message; ``exchanges`` (GetMessage's only) its provider exchanges."""
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
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
    )
    setattr(pb, "from", record.from_number)
    if record.provider_message_id is not None:
        pb.provider_message_id = record.provider_message_id
    pb.provider_message_ids.extend(record.provider_ids)
    # docs/delivery.md
    pb.encoding = record.encoding
    pb.segments = record.segments
    if record.send_at is not None:
        pb.send_at.CopyFrom(timestamp(record.send_at))
    if record.next_attempt_at is not None and record.state is MessageState.QUEUED:
        pb.next_attempt_at.CopyFrom(timestamp(record.next_attempt_at))
    pb.attempt_log.extend(attempt_pb(a) for a in record.attempt_log)
    pb.exchanges.extend(exchange_pb(x) for x in exchanges)
    return capped(pb)


def opt_out_pb(record: OptOutRecord) -> gateway_pb2.OptOut:
    pb = gateway_pb2.OptOut(
        org_id=record.org_id,
        installation_id=record.installation_id,
        to=record.to_number,
        source=record.source,
        created_at=timestamp(record.created_at),
    )
    setattr(pb, "from", record.from_number)
    return pb


def integration_pb(
    loaded: LoadedIntegration, *, installation_count: int
) -> gateway_pb2.Integration:
    """A registered (or only validated) definition, with how many installations use it."""
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
        created_at=timestamp(loaded.created_at),
        installation_count=installation_count,
    )
    return capped(pb)


def installation_pb(
    record: InstallationRecord,
    *,
    declared: Sequence[Property],
    webhook_url: str,
    authorization: tuple[str, str],
) -> gateway_pb2.Installation:
    """An installation as callers see it: the properties its definition ``declared`` (a secret's
    value never shown, only whether it is set), and its ``(state, error)`` of ``authorization``.
    """
    auth_state, auth_error = authorization
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
            gateway_pb2.NumberAssignment(
                number=n.given,
                users=n.users,
                normalized=n.number,
                throughput=number_throughput_pb(record, n.number),
            )
            for n in record.numbers
        ],
        send_limits=send_limits_pb(record),
        default_region=record.default_region or "",
        enabled=record.enabled,
        webhook_url=webhook_url,
        subscription=gateway_pb2.Subscription(
            state=_SUBSCRIPTION_STATES.get(
                record.subscription_state, gateway_pb2.Subscription.STATE_UNSPECIFIED
            ),
            last_error=record.subscription_error or "",
        ),
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
        authorization=gateway_pb2.Authorization(
            state=_AUTHORIZATION_STATES[auth_state], error=auth_error
        ),
    )
    return capped(pb)


def send_reply(outcome: SendOutcome) -> gateway_pb2.SendReply:
    reply = gateway_pb2.SendReply(
        message_id=outcome.message_id,
        provider_status=outcome.provider_status,
        attempts=outcome.attempts,
        installation_id=outcome.installation_id,
        integration_id=outcome.integration_id,
        replayed=outcome.replayed,
        state=_MESSAGE_STATES[outcome.state],
        encoding=outcome.encoding,
        segments=outcome.segments,
    )
    if outcome.provider_message_id is not None:
        reply.provider_message_id = outcome.provider_message_id
    # (ext) every request's id ("Several requests per send"), else the one id
    if outcome.provider_message_ids:
        reply.provider_message_ids.extend(outcome.provider_message_ids)
    elif outcome.provider_message_id:
        reply.provider_message_ids.append(outcome.provider_message_id)
    return reply


# --- requests to the core's inputs ---------------------------------------------------------------


def send_request(
    request: gateway_pb2.SendMessageRequest | gateway_pb2.SendFileRequest,
) -> SendRequest:
    """What the send path takes for a ``SendMessage`` (an SMS) or ``SendFile`` (an MMS); (ext)
    with a reply-to, a SendMessage's quick replies and template, a SendFile's media kind
    (docs/format.md, "Replies, templates and reply-to", "Media kinds")."""
    media = (
        (request.media_url, request.media_type, request.filename, tuple(request.media_urls))
        if isinstance(request, gateway_pb2.SendFileRequest)
        else None
    )
    queue, send_at, unordered = send_options(request.options)
    rich: dict[str, Any] = {}
    if isinstance(request, gateway_pb2.SendMessageRequest):
        template = request.template
        rich.update(
            replies=tuple(QuickReply(r.id, r.title, r.description) for r in request.replies),
            template_name=template.name,
            template_language=template.language,
            template_parameters=tuple(template.parameters),
        )
    else:
        rich["media_kind"] = request.media_kind
    return SendRequest(
        kind=MessageKind.SMS if media is None else MessageKind.MMS,
        org_id=request.org_id,
        from_number=getattr(request, "from"),
        to=request.to,
        text=request.text,
        media_url=media[0] if media else "",
        media_urls=media[3] if media else (),
        media_type=media[1] if media else "",
        filename=media[2] if media else "",
        extension=request.extension,
        domain=request.domain,
        integration_id=request.integration_id,
        idempotency_key=request.idempotency_key,
        metadata=dict(request.metadata),
        queue=queue,
        send_at=send_at,
        unordered=unordered,
        reply_to=request.reply_to,
        **rich,
    )


def number_inputs(items: Sequence[gateway_pb2.NumberAssignment]) -> list[NumberInput]:
    return [NumberInput(number=n.number, users=tuple(n.users)) for n in items]

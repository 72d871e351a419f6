"""The request messages, built once for both clients (the async and the sync one).

The proto field ``from`` is a Python keyword: the generated constructors cannot take it, so it is
set with ``setattr`` after construction and read with ``getattr`` (see :func:`sender`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from msgbridge.v1 import gateway_pb2

from ._delivery import Number, SendLimits, SendOptions
from ._rich import MessageTemplate, QuickReply

__all__ = [
    "EventType",
    "NumberAssignments",
    "clear_opt_out_request",
    "enable_integration_request",
    "list_events_request",
    "list_opt_outs_request",
    "number_assignments",
    "send_file_request",
    "send_message_request",
    "sender",
    "stream_events_request",
    "update_installation_request",
]

# An Event.Type value, e.g. gateway_pb2.Event.MESSAGE_DELIVERED.
EventType: TypeAlias = gateway_pb2.Event.Type.ValueType

# Numbers as a mapping (number → the users assigned to it), or as NumberAssignment messages or
# Number dataclasses (which may carry the number's own send rate).
NumberAssignments = Mapping[str, Sequence[str]] | Sequence[gateway_pb2.NumberAssignment | Number]


def number_assignments(numbers: NumberAssignments) -> list[gateway_pb2.NumberAssignment]:
    if isinstance(numbers, Mapping):
        return [
            gateway_pb2.NumberAssignment(number=number, users=list(users))
            for number, users in numbers.items()
        ]
    return [
        number.to_proto() if isinstance(number, Number) else _copy(number) for number in numbers
    ]


def enable_integration_request(
    *,
    org_id: str,
    integration_id: str,
    properties: Mapping[str, str],
    numbers: NumberAssignments,
    default_region: str | None,
    send_limits: SendLimits | None = None,
) -> gateway_pb2.EnableIntegrationRequest:
    request = gateway_pb2.EnableIntegrationRequest(
        org_id=org_id,
        integration_id=integration_id,
        properties=dict(properties),
        numbers=number_assignments(numbers),
        default_region=default_region or "",
    )
    if send_limits is not None:
        request.send_limits.CopyFrom(send_limits.to_proto())
    return request


def update_installation_request(
    installation_id: str,
    *,
    properties: Mapping[str, str] | None,
    clear_properties: Sequence[str],
    numbers: NumberAssignments | None,
    default_region: str | None,
    send_limits: SendLimits | None = None,
) -> gateway_pb2.UpdateInstallationRequest:
    request = gateway_pb2.UpdateInstallationRequest(
        installation_id=installation_id,
        properties=dict(properties or {}),
        clear_properties=list(clear_properties),
    )
    if numbers is not None:
        request.set_numbers = True
        request.numbers.extend(number_assignments(numbers))
    if default_region is not None:
        request.default_region = default_region
    if send_limits is not None:
        # Set (even when empty: every limit back to the definition's default) means "replace".
        request.send_limits.CopyFrom(send_limits.to_proto())
    return request


def send_message_request(
    *,
    org_id: str,
    from_: str,
    to: str,
    text: str,
    extension: str,
    domain: str,
    integration_id: str,
    idempotency_key: str,
    metadata: Mapping[str, str] | None,
    options: SendOptions | None = None,
    replies: Sequence[QuickReply] = (),
    template: MessageTemplate | None = None,
    reply_to: str = "",
) -> gateway_pb2.SendMessageRequest:
    request = gateway_pb2.SendMessageRequest(
        org_id=org_id,
        to=to,
        text=text,
        extension=extension,
        domain=domain,
        integration_id=integration_id,
        idempotency_key=idempotency_key,
        metadata=dict(metadata or {}),
        replies=[reply.to_proto() for reply in replies],
        reply_to=reply_to,
    )
    if template is not None:
        request.template.CopyFrom(template.to_proto())
    setattr(request, "from", from_)  # `from` is a keyword
    if options is not None:
        request.options.CopyFrom(options.to_proto())
    return request


def signal_request(
    *,
    org_id: str,
    from_: str,
    to: str,
    provider_message_id: str,
    integration_id: str,
    extension: str,
    domain: str,
) -> gateway_pb2.SignalRequest:
    """(ext) A SendTyping or MarkRead call (docs/format.md, "Conversation signals")."""
    request = gateway_pb2.SignalRequest(
        org_id=org_id,
        to=to,
        provider_message_id=provider_message_id,
        integration_id=integration_id,
        extension=extension,
        domain=domain,
    )
    setattr(request, "from", from_)  # `from` is a keyword
    return request


def send_file_request(
    *,
    org_id: str,
    from_: str,
    to: str,
    media_url: str,
    text: str,
    media_type: str,
    filename: str,
    extension: str,
    domain: str,
    integration_id: str,
    idempotency_key: str,
    metadata: Mapping[str, str] | None,
    media_urls: Sequence[str] = (),
    options: SendOptions | None = None,
    media_id: str = "",
    reply_to: str = "",
    media_kind: str = "",
) -> gateway_pb2.SendFileRequest:
    # The first file is a URL or a file stored by UploadMedia (docs/media.md).
    if bool(media_url) == bool(media_id):
        raise ValueError("give media_url or media_id, one of them")
    request = gateway_pb2.SendFileRequest(
        media_urls=list(media_urls),
        org_id=org_id,
        to=to,
        media_url=media_url,
        media_id=media_id,
        text=text,
        media_type=media_type,
        filename=filename,
        extension=extension,
        domain=domain,
        integration_id=integration_id,
        idempotency_key=idempotency_key,
        metadata=dict(metadata or {}),
        reply_to=reply_to,
        media_kind=media_kind,
    )
    setattr(request, "from", from_)  # `from` is a keyword
    if options is not None:
        request.options.CopyFrom(options.to_proto())
    return request


def stream_events_request(
    *,
    org_id: str,
    integration_id: str,
    types: Sequence[EventType],
    after_cursor: int | None,
    earliest: bool,
    consumer: str,
    max_batch: int,
) -> gateway_pb2.StreamEventsRequest:
    if after_cursor is not None and earliest:
        raise ValueError("give after_cursor or earliest, not both")
    request = gateway_pb2.StreamEventsRequest(
        org_id=org_id,
        integration_id=integration_id,
        types=list(types),
        consumer=consumer,
        max_batch=max_batch,
    )
    # `start` is a oneof: setting a member (even to 0) selects it; neither means "from now".
    if after_cursor is not None:
        request.after_cursor = after_cursor
    elif earliest:
        request.earliest = True
    return request


def list_events_request(
    *,
    org_id: str,
    integration_id: str,
    types: Sequence[EventType],
    after_cursor: int,
    page_size: int,
    page_token: str = "",
) -> gateway_pb2.ListEventsRequest:
    return gateway_pb2.ListEventsRequest(
        org_id=org_id,
        integration_id=integration_id,
        types=list(types),
        after_cursor=after_cursor,
        page_size=page_size,
        page_token=page_token,
    )


def list_opt_outs_request(
    *, org_id: str, installation_id: str, from_: str, to: str, page_size: int, page_token: str
) -> gateway_pb2.ListOptOutsRequest:
    request = gateway_pb2.ListOptOutsRequest(
        org_id=org_id,
        installation_id=installation_id,
        to=to,
        page_size=page_size,
        page_token=page_token,
    )
    setattr(request, "from", from_)  # `from` is a keyword
    return request


def clear_opt_out_request(
    installation_id: str, from_: str, to: str
) -> gateway_pb2.ClearOptOutRequest:
    request = gateway_pb2.ClearOptOutRequest(installation_id=installation_id, to=to)
    setattr(request, "from", from_)  # `from` is a keyword
    return request


def sender(
    message: gateway_pb2.Event
    | gateway_pb2.Message
    | gateway_pb2.SendMessageRequest
    | gateway_pb2.SendFileRequest
    | gateway_pb2.OptOut,
) -> str:
    """The ``from`` field of a message (a keyword, so not an attribute Python can spell)."""
    value: str = getattr(message, "from")  # `from` is a keyword
    return value


def _copy(number: gateway_pb2.NumberAssignment) -> gateway_pb2.NumberAssignment:
    copy = gateway_pb2.NumberAssignment()
    copy.CopyFrom(number)
    return copy

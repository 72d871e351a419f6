"""Short, readable text for the CLI: one function per kind of message, each returning lines.

Nothing here prints a secret: a secret property shows only whether it is set, even if a server
were to send its value.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence

from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2

from msgbridge.v1 import gateway_pb2

from ._errors import MsgbridgeError
from ._requests import EventType, sender

__all__ = [
    "EVENT_TYPE_NAMES",
    "error_lines",
    "event_line",
    "installation_lines",
    "installations_table",
    "integration_lines",
    "integrations_table",
    "media_lines",
    "message_lines",
    "messages_table",
    "opt_outs_table",
    "register_lines",
    "send_line",
    "signal_line",
    "table",
    "unmatched_table",
    "webhooks_table",
]


def _format_name(enum_name: str) -> str:
    """``MESSAGE_DELIVERED`` → ``messageDelivered``: the format's own event type names
    (docs/format.md, "Webhook models")."""
    first, *rest = enum_name.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


# The format's event type names, e.g. "messageDelivered", and their Event.Type values.
EVENT_TYPE_NAMES: dict[str, EventType] = {
    _format_name(name): value
    for name, value in gateway_pb2.Event.Type.items()
    if value != gateway_pb2.Event.TYPE_UNSPECIFIED
}
_EVENT_TYPE_LABELS = {value: name for name, value in EVENT_TYPE_NAMES.items()}


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the last column is not padded."""
    rows = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    ]


def _fields(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """``label:  value`` lines, aligned, skipping empty values."""
    kept = [(label, value) for label, value in pairs if value]
    width = max((len(label) for label, _ in kept), default=0) + 1
    return [f"{label + ':':<{width}}  {value}" for label, value in kept]


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> str:
    if not present:
        return ""
    moment: datetime.datetime = stamp.ToDatetime(tzinfo=datetime.UTC)
    return moment.isoformat(timespec="seconds")


def _capabilities(capabilities: gateway_pb2.Capabilities) -> str:
    names = [
        field.name
        for field in capabilities.DESCRIPTOR.fields
        if field.type == field.TYPE_BOOL and getattr(capabilities, field.name)
    ]
    if capabilities.auth:
        names.append(f"auth {capabilities.auth}")
    return ", ".join(names) or "none"


# -- integrations -------------------------------------------------------------------------------


def integrations_table(integrations: Iterable[gateway_pb2.Integration]) -> list[str]:
    return table(
        ("ID", "VERSION", "NAME", "INSTALLATIONS", "CAPABILITIES"),
        (
            (
                integration.id,
                str(integration.version),
                integration.name,
                str(integration.installation_count),
                _capabilities(integration.capabilities),
            )
            for integration in integrations
        ),
    )


def _warning_lines(integration: gateway_pb2.Integration) -> list[str]:
    return [f"warning: {problem.pointer}: {problem.message}" for problem in integration.warnings]


def register_lines(reply: gateway_pb2.RegisterIntegrationResponse) -> list[str]:
    integration = reply.integration
    if reply.validate_only:
        head = f"Valid: {integration.id} ({integration.name}); nothing stored"
    else:
        head = f"Registered {integration.id} version {integration.version} ({integration.name})"
    properties = ", ".join(_property_field(field) for field in integration.properties)
    return [
        head,
        *_fields(
            [
                ("capabilities", _capabilities(integration.capabilities)),
                ("properties", properties),
            ]
        ),
        *_warning_lines(integration),
    ]


def _property_field(field: gateway_pb2.PropertyField) -> str:
    flags = [flag for flag, on in (("secret", field.secret), ("required", field.required)) if on]
    return f"{field.name} ({', '.join(flags)})" if flags else field.name


def integration_lines(integration: gateway_pb2.Integration) -> list[str]:
    lines = _fields(
        [
            ("id", integration.id),
            ("version", str(integration.version)),
            ("name", integration.name),
            ("created", _time(integration.created_at, integration.HasField("created_at"))),
            ("installations", str(integration.installation_count)),
            ("capabilities", _capabilities(integration.capabilities)),
        ]
    )
    if integration.properties:
        lines.append("properties:")
        lines.extend(
            "  " + line
            for line in table(
                ("NAME", "SECRET", "REQUIRED", "DEFAULT", "DESCRIPTION"),
                (
                    (
                        field.name,
                        _yes(field.secret),
                        _yes(field.required),
                        field.default or "-",
                        field.description,
                    )
                    for field in integration.properties
                ),
            )
        )
    lines.extend(_warning_lines(integration))
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# -- installations ------------------------------------------------------------------------------


def _subscription(subscription: gateway_pb2.Subscription) -> str:
    state = gateway_pb2.Subscription.State.Name(subscription.state)
    if subscription.state == gateway_pb2.Subscription.STATE_UNSPECIFIED:
        return ""
    text = state.lower().replace("_", " ")
    if subscription.attempts:
        text += f" ({_count(subscription.attempts, 'attempt')})"
    if subscription.last_error:
        text += f"; last error: {subscription.last_error}"
    return text


def _number(assignment: gateway_pb2.NumberAssignment) -> str:
    return assignment.normalized or assignment.number


def _rate(throughput: gateway_pb2.Throughput) -> str:
    """``3/s``, ``1.5 segments/s, burst 10``, or ``no limit`` (per_second 0)."""
    if throughput.per_second == 0:
        return "no limit"
    unit = " segments" if throughput.unit == gateway_pb2.Throughput.SEGMENTS else ""
    text = f"{throughput.per_second:g}{unit}/s"
    return f"{text}, burst {throughput.burst}" if throughput.burst else text


def _number_line(assignment: gateway_pb2.NumberAssignment) -> str:
    line = f"  {_number(assignment)}"
    if assignment.HasField("throughput"):
        line += f" ({_rate(assignment.throughput)})"
    return f"{line} → {', '.join(assignment.users)}" if assignment.users else line


def _limits(limits: gateway_pb2.SendLimits) -> str:
    """The installation's own limits; what it leaves unset takes the definition's defaults."""
    parts = []
    if limits.HasField("per_number"):
        parts.append(f"per number {_rate(limits.per_number)}")
    if limits.HasField("per_installation"):
        parts.append(f"per installation {_rate(limits.per_installation)}")
    if limits.max_queued:
        parts.append(f"max queued {limits.max_queued}")
    if limits.max_segments:
        parts.append(f"max segments {limits.max_segments}")
    return "; ".join(parts)


def _property_value(value: gateway_pb2.PropertyValue) -> str:
    if value.secret:
        return "(secret, set)" if value.set else "(secret, not set)"
    return value.value if value.set or value.value else "(not set)"


def installation_lines(installation: gateway_pb2.Installation) -> list[str]:
    lines = _fields(
        [
            ("installation", installation.id),
            ("org", installation.org_id),
            ("integration", installation.integration_id),
            ("enabled", _yes(installation.enabled)),
            ("webhook url", installation.webhook_url),
            ("region", installation.default_region),
            ("subscription", _subscription(installation.subscription)),
            ("created", _time(installation.created_at, installation.HasField("created_at"))),
            ("updated", _time(installation.updated_at, installation.HasField("updated_at"))),
            ("send limits", _limits(installation.send_limits)),
        ]
    )
    if installation.numbers:
        lines.append("numbers:")
        lines.extend(_number_line(n) for n in installation.numbers)
    if installation.properties:
        lines.append("properties:")
        lines.extend(f"  {p.name} = {_property_value(p)}" for p in installation.properties)
    return lines


def installations_table(installations: Iterable[gateway_pb2.Installation]) -> list[str]:
    return table(
        ("ID", "ORG", "INTEGRATION", "ENABLED", "SUBSCRIPTION", "NUMBERS"),
        (
            (
                installation.id,
                installation.org_id,
                installation.integration_id,
                _yes(installation.enabled),
                _subscription(installation.subscription) or "-",
                ", ".join(_number(n) for n in installation.numbers),
            )
            for installation in installations
        ),
    )


# -- messages -----------------------------------------------------------------------------------


def _state(state: gateway_pb2.Message.State.ValueType) -> str:
    return gateway_pb2.Message.State.Name(state).lower()


def _encoding(encoding: str, segments: int) -> str:
    """``GSM-7, 2 segments`` (empty when the server said nothing of it: an older server)."""
    if not encoding:
        return ""
    return f"{encoding}, {_count(segments, 'segment')}"


# A reply that came before the provider's answer (docs/delivery.md): no provider id or status yet.
_WAITING = (gateway_pb2.Message.QUEUED, gateway_pb2.Message.SENDING)


def signal_line(head: str, reply: gateway_pb2.SignalReply) -> str:
    """(ext) ``Typing shown …`` or ``Marked read …``: the provider took the signal."""
    return (
        f"{head} through {reply.integration_id} (installation {reply.installation_id}): "
        f"HTTP {reply.provider_status}"
    )


def send_line(reply: gateway_pb2.SendReply) -> str:
    """``Sent …`` (an older server sets no state: it only replies once sent), ``Queued …`` or
    ``Sending …`` with the text's encoding and segments."""
    head = "Sent"
    if reply.state != gateway_pb2.Message.STATE_UNSPECIFIED:
        head = _state(reply.state).capitalize()
    line = (
        f"{head} {reply.message_id} through {reply.integration_id} "
        f"(installation {reply.installation_id})"
    )
    if reply.state in _WAITING:
        line += ": the outcome follows as an event"
    else:
        provider_id = (
            reply.provider_message_id if reply.HasField("provider_message_id") else "unknown"
        )
        attempts = _count(reply.attempts, "attempt")
        line += f": provider id {provider_id}, HTTP {reply.provider_status}, {attempts}"
    encoding = _encoding(reply.encoding, reply.segments)
    if encoding:
        line += f"; {encoding}"
    if len(reply.provider_message_ids) > 1:
        line += f"; {len(reply.provider_message_ids)} provider requests: " + ", ".join(
            i or "unknown" for i in reply.provider_message_ids
        )
    if reply.replayed:
        line += "; replayed: the idempotency key was used before"
    return line


def message_lines(message: gateway_pb2.Message) -> list[str]:
    provider_id = message.provider_message_id if message.HasField("provider_message_id") else ""
    lines = _fields(
        [
            ("message", message.message_id),
            ("state", _state(message.state)),
            ("org", message.org_id),
            ("integration", message.integration_id),
            ("installation", message.installation_id),
            ("from", sender(message)),
            ("to", message.to),
            ("text", message.text),
            ("media url", message.media_url),
            ("provider id", provider_id),
            ("provider status", str(message.provider_status or "")),
            ("attempts", str(message.attempts)),
            ("error", message.error),
            ("encoding", _encoding(message.encoding, message.segments)),
            ("metadata", _pairs(message.metadata)),
            ("created", _time(message.created_at, message.HasField("created_at"))),
            ("updated", _time(message.updated_at, message.HasField("updated_at"))),
            ("send at", _time(message.send_at, message.HasField("send_at"))),
            ("next attempt", _time(message.next_attempt_at, message.HasField("next_attempt_at"))),
        ]
    )
    if message.attempt_log:
        lines.append("attempt log:")
        lines.extend("  " + _attempt(attempt) for attempt in message.attempt_log)
    if message.exchanges:
        lines.append("provider exchanges:")
        for exchange in message.exchanges:
            lines.extend("  " + line for line in _exchange_lines(exchange))
    return lines


def _exchange_lines(exchange: gateway_pb2.ProviderExchange) -> list[str]:
    """One exchange with a provider as the log keeps it (masked, bodies capped):
    ``send 2026-…Z POST https://… → HTTP 201 in 12.3 ms``, then its headers and bodies."""
    started = _time(exchange.started_at, exchange.HasField("started_at")) or "-"
    answer = f"HTTP {exchange.status}" if exchange.status else f"no answer ({exchange.error})"
    lines = [
        f"{exchange.kind} {started} {exchange.method} {exchange.url} → {answer}"
        f" in {exchange.duration_ms:.1f} ms"
    ]
    for arrow, headers, body in (
        (">", exchange.request_headers, exchange.request_body),
        ("<", exchange.response_headers, exchange.response_body),
    ):
        lines.extend(f"  {arrow} {header.name}: {header.value}" for header in headers)
        if body:
            lines.append(f"  {arrow}")
            lines.extend(f"  {arrow} " + line for line in body.splitlines())
    return lines


def _attempt(attempt: gateway_pb2.MessageAttempt) -> str:
    """``#2 2026-…Z HTTP 503 PROVIDER_UNAVAILABLE: busy; retry at 2026-…Z``."""
    started = _time(attempt.started_at, attempt.HasField("started_at")) or "-"
    status = f"HTTP {attempt.provider_status}" if attempt.provider_status else "no answer"
    line = f"#{attempt.number} {started} {status}"
    if attempt.reason or attempt.error:
        line += ": " + ": ".join(part for part in (attempt.reason, attempt.error) if part)
    else:
        line += ": ok"
    retry_at = _time(attempt.retry_at, attempt.HasField("retry_at"))
    if retry_at:
        line += f"; retry at {retry_at}"
    return line


def messages_table(messages: Iterable[gateway_pb2.Message]) -> list[str]:
    """One row a message; NEXT is a waiting message's next try (its send time, or a retry)."""
    return table(
        ("ID", "STATE", "CREATED", "ORG", "FROM", "TO", "SEGMENTS", "NEXT", "ERROR"),
        (
            (
                message.message_id,
                _state(message.state),
                _time(message.created_at, message.HasField("created_at")) or "-",
                message.org_id,
                sender(message),
                message.to,
                str(message.segments) if message.encoding else "-",
                _time(message.next_attempt_at, message.HasField("next_attempt_at")) or "-",
                message.error,
            )
            for message in messages
        ),
    )


def _pairs(mapping: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(mapping.items()))


# -- events -------------------------------------------------------------------------------------


def event_line(event: gateway_pb2.Event) -> str:
    received = _time(event.received_at, event.HasField("received_at")) or "-"
    label = _EVENT_TYPE_LABELS.get(event.type, "unknown")
    parts = [f"#{event.cursor}", received, label, f"org={event.org_id}"]
    if event.message_id:
        parts.append(f"message={event.message_id}")
    if event.provider_message_id:
        parts.append(f"provider_id={event.provider_message_id}")
    from_ = sender(event)
    if from_ or event.to:
        parts.append(f"{from_ or '?'} -> {event.to or '?'}")
    if event.users:
        parts.append("users=" + ",".join(event.users))
    if event.status:
        parts.append(f"status={event.status}")
    if event.error:
        parts.append(f"error={event.error!r}")
    if event.text:
        parts.append(repr(event.text))
    parts.extend(event.media_urls)
    if event.fields:
        parts.append("fields: " + _pairs(event.fields))
    if event.truncated:
        parts.append("(truncated to fit a reply)")
    return "  ".join(parts)


def unmatched_table(webhooks: Iterable[gateway_pb2.UnmatchedWebhook]) -> list[str]:
    return table(
        ("ID", "KIND", "INTEGRATION", "RECEIVED", "REQUEST", "REPLAYED", "REASON"),
        (
            (
                webhook.id,
                gateway_pb2.UnmatchedWebhook.Kind.Name(webhook.kind).lower(),
                webhook.integration_id,
                _time(webhook.received_at, webhook.HasField("received_at")) or "-",
                f"{webhook.method} {webhook.path}",
                _yes(webhook.replayed),
                webhook.reason,
            )
            for webhook in webhooks
        ),
    )


def webhooks_table(webhooks: Iterable[gateway_pb2.UnmatchedWebhook]) -> list[str]:
    """Kept webhook requests of every outcome (``msgbridge webhooks``)."""
    return table(
        (
            "ID",
            "RECEIVED",
            "OUTCOME",
            "INTEGRATION",
            "INSTALLATION",
            "REQUEST",
            "ANSWER",
            "MS",
            "REASON",
        ),
        (
            (
                webhook.id,
                _time(webhook.received_at, webhook.HasField("received_at")) or "-",
                gateway_pb2.UnmatchedWebhook.Kind.Name(webhook.kind).lower()
                + (" (replayed)" if webhook.replayed else ""),
                webhook.integration_id,
                webhook.installation_id or "-",
                f"{webhook.method} {webhook.path}",
                str(webhook.answer_status or "-"),
                f"{webhook.duration_ms:.1f}" if webhook.answer_status else "-",
                webhook.reason,
            )
            for webhook in webhooks
        ),
    )


# -- opt-outs ----------------------------------------------------------------------------------


def opt_outs_table(opt_outs: Iterable[gateway_pb2.OptOut]) -> list[str]:
    return table(
        ("INSTALLATION", "ORG", "FROM", "TO", "SOURCE", "SINCE"),
        (
            (
                opt_out.installation_id,
                opt_out.org_id,
                sender(opt_out),
                opt_out.to,
                opt_out.source,
                _time(opt_out.created_at, opt_out.HasField("created_at")) or "-",
            )
            for opt_out in opt_outs
        ),
    )


def media_lines(info: gateway_pb2.MediaInfo) -> list[str]:
    """A stored file's description (docs/media.md)."""
    return _fields(
        [
            ("media id", info.media_id),
            ("type", info.content_type),
            ("size", f"{info.size} bytes"),
            ("sha256", info.sha256),
            ("url", info.url),
            ("url expires", _time(info.url_expires_at, info.HasField("url_expires_at"))),
        ]
    )


# -- errors -------------------------------------------------------------------------------------


def error_lines(error: MsgbridgeError) -> list[str]:
    """The code's name, the reason and message, each field violation, and the retry delay."""
    head = error.code.name
    info = error.error_info
    if info is not None and info.reason:
        head += f": {info.reason}"
    if error.message:
        head += f": {error.message}"
    if info is not None and info.metadata:
        head += " (" + ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items())) + ")"
    lines = [head]
    lines.extend(_violation(violation) for violation in error.field_violations)
    delay = error.retry_delay
    if delay is not None:
        lines.append(f"retry after: {delay.total_seconds():g}s")
    return lines


def _violation(violation: error_details_pb2.BadRequest.FieldViolation) -> str:
    return f"{violation.field}: {violation.description}"

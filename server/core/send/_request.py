"""A send as the service hands it over (:class:`SendRequest`), what it came to
(:class:`SendOutcome`), and how both are kept on the message record: the request's parts that
have no column of their own (``request_json``), an idempotent send's reply (``reply_json``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final

from ...engine import Value
from ...errors import (
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    InvalidRequest,
    OutcomeUnknown,
    PermissionDenied,
    ProviderCredentials,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderUnavailable,
)
from ...store import MessageKind, MessageRecord, MessageState

__all__ = [
    "MAX_MEDIA_URLS",
    "SendOutcome",
    "SendRequest",
    "conversation_violations",
    "error_json",
    "key_reused",
    "outcome_of",
    "request_json",
    "request_of",
    "send_variables",
    "stored_reply",
    "validate",
]

#: The files one SendFile may carry, media_url included (docs/format.md, "Several requests per
#: send"; Twilio, for one, takes up to 10 MediaUrl).
MAX_MEDIA_URLS: Final = 10

#: How far ahead a send may be scheduled.
MAX_SCHEDULE_DAYS: Final = 366


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRequest:
    """A SendMessage or SendFile call, as the service hands it over."""

    kind: MessageKind
    org_id: str
    from_number: str
    to: str
    text: str = ""
    media_url: str = ""
    # (ext) the message's further files after media_url (docs/format.md, "Several requests per
    # send"), at most MAX_MEDIA_URLS - 1
    media_urls: tuple[str, ...] = ()
    media_type: str = ""
    filename: str = ""
    extension: str = ""
    domain: str = ""
    integration_id: str = ""
    idempotency_key: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    # docs/delivery.md: reply at once with QUEUED; send at this time; may overtake earlier
    # messages of its conversation.
    queue: bool = False
    send_at: datetime | None = None
    unordered: bool = False

    def fingerprint(self) -> str:
        """What tells a repeat of this request from another request with the same key."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.media_urls:  # a request of one file keeps the fingerprint it always had
            del values["media_urls"]
        # How a send waits is not what it sends: a repeat may wait otherwise. A scheduled time
        # or the order is, but a request without them keeps the fingerprint it always had.
        del values["queue"]
        values["send_at"] = self.send_at.isoformat() if self.send_at else None
        for name in ("send_at", "unordered"):
            if not values[name]:
                del values[name]
        values["kind"] = str(self.kind)
        values["metadata"] = dict(sorted(self.metadata.items()))
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class SendOutcome:
    """What a send came to, for its reply: ``state`` SENT (the provider accepted it), or QUEUED
    / SENDING when the reply came first (docs/delivery.md). ``replayed``: the reply of an earlier
    call with the same idempotency key, given again without calling the provider."""

    message_id: str
    provider_message_id: str | None
    provider_status: int
    attempts: int
    installation_id: str
    integration_id: str
    replayed: bool = False
    # (ext) every request's provider id in order ("" where none) when the send made several
    # (docs/format.md, "Several requests per send"); empty for one request.
    provider_message_ids: tuple[str, ...] = ()
    state: MessageState = MessageState.SENT
    encoding: str = ""
    segments: int = 0

    def to_json(self) -> str:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.provider_message_ids:  # a reply of one request is stored as it always was
            del values["provider_message_ids"]
        del values["state"]  # a stored reply is always a sent one
        return json.dumps({"ok": values})


# The reply kept with an idempotent send's message, for its repeats: {"ok": outcome} or
# {"error": GatewayError.to_stored()}. Messages in databases hold this format: read it unchanged.


def error_json(error: GatewayError) -> str:
    return json.dumps({"error": error.to_stored()})


def stored_reply(reply_json: str) -> SendOutcome | GatewayError:
    data = json.loads(reply_json)
    if "ok" in data:
        ok = data["ok"]
        ids = tuple(ok.get("provider_message_ids", ()))
        return SendOutcome(**{**ok, "replayed": True, "provider_message_ids": ids})
    stored = data["error"]
    return _STORED_ERRORS.get(stored["class"], FailedPrecondition).from_stored(stored)


# The errors a failed send may store; anything else is read back as FAILED_PRECONDITION.
_STORED_ERRORS: dict[str, type[GatewayError]] = {
    cls.__name__: cls
    for cls in (
        ProviderRejected,
        ProviderCredentials,
        ProviderRefused,
        ProviderRateLimited,
        ProviderUnavailable,
        OutcomeUnknown,
        DeadlineExceeded,
        FailedPrecondition,
        PermissionDenied,
        InvalidRequest,
    )
}


def outcome_of(message: MessageRecord, *, replayed: bool = False) -> SendOutcome:
    """The reply a message's record gives as it stands (a waiting one's, or a sent one's)."""
    return SendOutcome(
        message_id=message.id,
        provider_message_id=message.provider_message_id,
        provider_status=message.provider_status or 0,
        attempts=message.attempts,
        installation_id=message.installation_id,
        integration_id=message.integration_id,
        replayed=replayed,
        provider_message_ids=message.provider_message_ids,
        state=message.state,
        encoding=message.encoding,
        segments=message.segments,
    )


# --- the request's parts kept on the record -------------------------------------------------------

_KEPT: Final = ("media_urls", "media_type", "filename", "extension", "domain", "integration_id")


def request_json(request: SendRequest) -> str | None:
    """What a later send needs of the request that the message record has no column for."""
    kept = {name: getattr(request, name) for name in _KEPT if getattr(request, name)}
    if "media_urls" in kept:
        kept["media_urls"] = list(kept["media_urls"])
    return json.dumps(kept, sort_keys=True) if kept else None


def request_of(message: MessageRecord) -> SendRequest:
    """The send request a message was recorded from."""
    kept: dict[str, Any] = json.loads(message.request_json) if message.request_json else {}
    return SendRequest(
        kind=message.kind,
        org_id=message.org_id,
        from_number=message.from_number,
        to=message.to_number,
        text=message.text,
        media_url=message.media_url or "",
        media_urls=tuple(kept.get("media_urls", ())),
        media_type=kept.get("media_type", ""),
        filename=kept.get("filename", ""),
        extension=kept.get("extension", ""),
        domain=kept.get("domain", ""),
        integration_id=kept.get("integration_id", ""),
        idempotency_key=message.idempotency_key or "",
        metadata=dict(message.metadata),
        send_at=message.send_at,
        unordered=not message.ordered,
    )


def key_reused() -> InvalidRequest:
    return InvalidRequest(
        "this idempotency key was used for a different request",
        reason="IDEMPOTENCY_KEY_REUSED",
        violations=[("idempotency_key", "already used with other parameters")],
    )


def validate(request: SendRequest, now: datetime) -> None:
    """INVALID_ARGUMENT with every problem of the request."""
    violations = conversation_violations(request.org_id, request.from_number, request.to)
    if request.kind is MessageKind.SMS and not request.text:
        violations.append(("text", "required"))
    if request.kind is MessageKind.MMS:
        if not request.media_url:
            violations.append(("media_url", "required"))
        elif not _is_http_url(request.media_url):
            violations.append(("media_url", "must be an http(s) URL"))
    if len(request.media_urls) >= MAX_MEDIA_URLS:
        violations.append(("media_urls", f"at most {MAX_MEDIA_URLS - 1} (with media_url)"))
    else:
        violations.extend(
            (f"media_urls[{i}]", "must be an http(s) URL")
            for i, url in enumerate(request.media_urls)
            if not _is_http_url(url)
        )
    if len(request.idempotency_key) > 256:
        violations.append(("idempotency_key", "at most 256 characters"))
    if request.send_at is not None and (request.send_at - now).days >= MAX_SCHEDULE_DAYS:
        violations.append(("options.send_at", f"at most {MAX_SCHEDULE_DAYS} days ahead"))
    if violations:
        raise InvalidRequest("the send request is not valid", violations=violations)


def conversation_violations(org_id: str, from_number: str, to: str) -> list[tuple[str, str]]:
    """What a send or (ext) a conversation signal lacks of the conversation it names."""
    violations = []
    if not org_id.strip():
        violations.append(("org_id", "required"))
    if not from_number.strip():
        violations.append(("from", "required"))
    if not to.strip():
        violations.append(("to", "required"))
    return violations


def _is_http_url(url: str) -> bool:
    return url.lower().startswith(("https://", "http://"))


def send_variables(request: SendRequest, message_id: str, webhook_url: str) -> dict[str, Value]:
    """The variables a send's requests are rendered with, besides the installation's property
    values (docs/format.md, "Placeholders"); ``msgbridge test`` renders a case's send with them."""
    sms = request.kind is MessageKind.SMS
    variables: dict[str, Value] = {
        "from": request.from_number,
        "to": request.to,
        "content": request.text if sms else request.media_url,
        "text": None if sms else (request.text or None),
        "extension": request.extension or None,
        "domain": request.domain or None,
        "orgid": request.org_id,
        "webhook_url": webhook_url,
        "gateway_id": message_id,
        "media_type": request.media_type or None,
        "filename": request.filename or None,
    }
    if not sms:  # (ext) every file's URL, a list ("Several requests per send")
        variables["media_urls"] = (request.media_url, *request.media_urls)
    return variables

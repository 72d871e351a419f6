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

from ...engine import MEDIA_KINDS, Value, media_kinds
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
    "MAX_REPLIES",
    "MAX_TEMPLATE_PARAMETERS",
    "QuickReply",
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

#: (ext) docs/format.md, "Replies, templates and reply-to": the quick replies one SendMessage may
#: offer (Messenger and LINE take 13, the most of the platforms), a message template's
#: parameters, and the length of each text they carry.
MAX_REPLIES: Final = 13
MAX_TEMPLATE_PARAMETERS: Final = 32
_MAX_REPLY_TEXT: Final = 256
#: The kept request's encoder, made once (``json.dumps`` with options makes one per call).
_SORTED: Final = json.JSONEncoder(sort_keys=True)
_MAX_PARAMETER_TEXT: Final = 1024
_MAX_NAME_TEXT: Final = 512


@dataclass(frozen=True, slots=True)
class QuickReply:
    """(ext) A quick reply or button offered with a message: what comes back when it is chosen
    (``id``), what it shows (``title``) and an optional ``description``."""

    id: str
    title: str
    description: str = ""


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
    # (ext) docs/format.md, "Replies, templates and reply-to" and "Media kinds": the provider's id
    # of the message this one answers; SendMessage's quick replies and message template;
    # SendFile's kind of its first file (else derived from media_type or the URL)
    reply_to: str = ""
    replies: tuple[QuickReply, ...] = ()
    template_name: str = ""
    template_language: str = ""
    template_parameters: tuple[str, ...] = ()
    media_kind: str = ""

    def fingerprint(self) -> str:
        """What tells a repeat of this request from another request with the same key."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        # A request without the later fields keeps the fingerprint it always had.
        for name in _LATER:
            if not values[name]:
                del values[name]
        if self.replies:
            values["replies"] = [list(_reply_fields(r)) for r in self.replies]
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


#: The fields added after the first version, left out of a fingerprint when empty; kept in
#: ``request_json`` with the others the record has no column for.
_LATER: Final = (
    "media_urls",
    "reply_to",
    "replies",
    "template_name",
    "template_language",
    "template_parameters",
    "media_kind",
)


def _reply_fields(reply: QuickReply) -> tuple[str, ...]:
    return (reply.id, reply.title, reply.description)


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

_KEPT: Final = ("media_type", "filename", "extension", "domain", "integration_id", *_LATER)


def request_json(request: SendRequest) -> str | None:
    """What a later send needs of the request that the message record has no column for."""
    kept: dict[str, Any] = {
        name: getattr(request, name) for name in _KEPT if getattr(request, name)
    }
    for name in ("media_urls", "template_parameters"):
        if name in kept:
            kept[name] = list(kept[name])
    if "replies" in kept:
        kept["replies"] = [list(_reply_fields(r)) for r in request.replies]
    return _SORTED.encode(kept) if kept else None


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
        reply_to=kept.get("reply_to", ""),
        replies=tuple(QuickReply(*item) for item in kept.get("replies", ())),
        template_name=kept.get("template_name", ""),
        template_language=kept.get("template_language", ""),
        template_parameters=tuple(kept.get("template_parameters", ())),
        media_kind=kept.get("media_kind", ""),
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
    if request.kind is MessageKind.SMS and not request.text and not request.template_name:
        violations.append(("text", "required (or a template)"))
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
    violations.extend(_rich_violations(request))
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


def _rich_violations(request: SendRequest) -> list[tuple[str, str]]:
    """(ext) What is wrong with a send's reply-to, quick replies, template and media kind
    (docs/format.md, "Replies, templates and reply-to", "Media kinds")."""
    violations: list[tuple[str, str]] = []
    if len(request.reply_to) > _MAX_REPLY_TEXT:
        violations.append(("reply_to", f"at most {_MAX_REPLY_TEXT} characters"))
    if request.media_kind and request.media_kind not in MEDIA_KINDS:
        violations.append(("media_kind", f"one of {', '.join(MEDIA_KINDS)}"))
    if len(request.replies) > MAX_REPLIES:
        violations.append(("replies", f"at most {MAX_REPLIES}"))
    else:
        for i, reply in enumerate(request.replies):
            for name, value in zip(
                ("id", "title", "description"), _reply_fields(reply), strict=True
            ):
                if name != "description" and not value:
                    violations.append((f"replies[{i}].{name}", "required"))
                elif len(value) > _MAX_REPLY_TEXT:
                    violations.append(
                        (f"replies[{i}].{name}", f"at most {_MAX_REPLY_TEXT} characters")
                    )
    if len(request.template_name) > _MAX_NAME_TEXT:
        violations.append(("template.name", f"at most {_MAX_NAME_TEXT} characters"))
    if len(request.template_language) > _MAX_NAME_TEXT:
        violations.append(("template.language", f"at most {_MAX_NAME_TEXT} characters"))
    if not request.template_name and (request.template_language or request.template_parameters):
        violations.append(("template.name", "required with a language or parameters"))
    if len(request.template_parameters) > MAX_TEMPLATE_PARAMETERS:
        violations.append(("template.parameters", f"at most {MAX_TEMPLATE_PARAMETERS}"))
    else:
        violations.extend(
            (f"template.parameters[{i}]", f"at most {_MAX_PARAMETER_TEXT} characters")
            for i, value in enumerate(request.template_parameters)
            if len(value) > _MAX_PARAMETER_TEXT
        )
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
    if request.reply_to:  # (ext) "Replies, templates and reply-to"
        variables["reply_to"] = request.reply_to
    if sms:
        variables.update(_replies_and_template(request))
    else:  # (ext) every file's URL, a list ("Several requests per send"), and its kind
        urls = (request.media_url, *request.media_urls)
        kinds = media_kinds(urls, request.media_type, request.media_kind)
        variables.update(media_urls=urls, media_kinds=kinds, media_kind=kinds[0])
    return variables


def _replies_and_template(request: SendRequest) -> dict[str, Value]:
    """(ext) A SendMessage's quick replies and template as variables: each item variable's values
    as a list (docs/format.md, "Lists of items: $each"), the count, the template's parts."""
    replies = request.replies
    variables: dict[str, Value] = {"reply_count": str(len(replies))}
    if replies:
        variables["reply_ids"] = tuple(r.id for r in replies)
        variables["reply_titles"] = tuple(r.title for r in replies)
        variables["reply_descriptions"] = tuple(r.description for r in replies)
    if request.template_name:
        variables["template_name"] = request.template_name
    if request.template_language:
        variables["template_language"] = request.template_language
    if request.template_parameters:
        variables["template_parameters"] = request.template_parameters
    return variables

"""How records become column values and back, for both backends.

The column lists here fix the order of every row: a statement selects ``EVENT_COLUMNS`` (say) and
:meth:`Rows.event` reads that row by position; an insert takes :meth:`Rows.event_params` in the
same order. Each backend writes its statements from these lists (``sqlite/_sql.py``,
``postgres/_sql.py``), so a column added here is added to both.

What differs between the drivers is the time: SQLite keeps integer microseconds since the Unix
epoch, UTC (they sort, compare and index as integers and keep the microsecond exactly);
PostgreSQL keeps ``timestamptz`` and asyncpg hands back datetimes. A :class:`Rows` is made once
per backend with its pair of time functions; everything else — maps, lists and number
assignments as compact JSON text, enums as their values, booleans (sqlite3 stores ``True`` as 1
and hands back 1, which ``bool`` reads) — is the same for both. Rows are read by position:
sqlite3 tuples and asyncpg Records alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

from ._base import (
    AttemptRecord,
    EventMedia,
    EventRecord,
    HeldReceipt,
    InstallationRecord,
    IntegrationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NewEvent,
    NumberAssignment,
    WebhookOutcome,
    WebhookRequestRecord,
)

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_RECEIVED_AT",
    "FINISHED_COLUMNS",
    "HELD_COLUMNS",
    "INSTALLATION_COLUMNS",
    "INTEGRATION_COLUMNS",
    "MESSAGE_COLUMNS",
    "REQUEST_COLUMNS",
    "Rows",
    "aware_time",
    "columns",
    "decode_held_event",
    "decode_ids",
    "decode_map",
    "decode_media",
    "decode_time",
    "encode_held_event",
    "encode_ids",
    "encode_map",
    "encode_media",
    "encode_time",
    "frozen_map",
    "utc_time",
]

Stored = TypeVar("Stored")
Row = Any  # a sqlite3 tuple or an asyncpg Record, read by position

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# ---------------------------------------------------------------------------------------------
# Values


def aware_time(value: datetime) -> datetime:
    """A time as PostgreSQL takes it; a naive datetime is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store keeps UTC times only")
    return value


def utc_time(value: datetime) -> datetime:
    """A time as PostgreSQL returned it (UTC already) with the same tzinfo as ``datetime.UTC``."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def encode_time(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store keeps UTC times only")
    return (value - _EPOCH) // _MICROSECOND


def decode_time(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


# The store's JSON, compact, as ``json.dumps`` with these options writes it: one encoder each,
# made once (``json.dumps`` with options makes a new encoder per call, a cost every send paid
# several times over).
_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_COMPACT_SORTED: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _json(value: object) -> str:
    return _COMPACT.encode(value)


def encode_map(value: Mapping[str, str]) -> str:
    return _COMPACT_SORTED.encode(dict(value))


_EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


def decode_map(text: str) -> Mapping[str, str]:
    if text == "{}":  # most events and messages: no JSON to parse
        return _EMPTY_MAP
    return _frozen_items(json.loads(text))


def _frozen_items(data: Mapping[Any, Any]) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in data.items()})


def encode_ids(ids: Sequence[str]) -> str | None:
    """A message's provider ids (docs/format.md, "Several requests per send"): a JSON list, or
    NULL for a message of one request."""
    return _COMPACT.encode(list(ids)) if ids else None


def decode_ids(text: str | None) -> tuple[str, ...]:
    return tuple(str(i) for i in json.loads(text)) if text else ()


def frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


def _encode_numbers(numbers: tuple[NumberAssignment, ...]) -> str:
    return _json([{"number": n.number, "given": n.given, "users": list(n.users)} for n in numbers])


def _decode_numbers(text: str) -> tuple[NumberAssignment, ...]:
    items: list[dict[str, Any]] = json.loads(text)
    return tuple(
        NumberAssignment(
            number=item["number"], given=item["given"], users=tuple(item.get("users", ()))
        )
        for item in items
    )


def _encode_texts(values: Sequence[str]) -> str:
    return _json(list(values))


def _decode_texts(text: str) -> tuple[str, ...]:
    return tuple(str(value) for value in json.loads(text))


def _encode_headers(headers: Sequence[tuple[str, str]]) -> str:
    return _json([[k, v] for k, v in headers])


def _decode_headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


_MEDIA_KEYS: Final = ("original_url", "media_id", "content_type", "size", "sha256", "error")


def encode_media(media: Sequence[EventMedia]) -> str:
    """An event's files (docs/media.md) as a JSON list of objects, empty keys left out."""
    if not media:
        return "[]"
    return _json(
        [{key: getattr(item, key) for key in _MEDIA_KEYS if getattr(item, key)} for item in media]
    )


def decode_media(text: str | None) -> tuple[EventMedia, ...]:
    if not text or text == "[]":
        return ()
    return tuple(
        EventMedia(
            original_url=str(item["original_url"]),
            media_id=str(item.get("media_id", "")),
            content_type=str(item.get("content_type", "")),
            size=int(item.get("size", 0)),
            sha256=str(item.get("sha256", "")),
            error=str(item.get("error", "")),
        )
        for item in json.loads(text)
    )


def encode_held_event(event: NewEvent) -> str:
    """A held receipt's event as JSON (``held_receipts.event_json``; times as microseconds)."""
    return _json(
        {
            "type": event.type,
            "org_id": event.org_id,
            "installation_id": event.installation_id,
            "integration_id": event.integration_id,
            "users": list(event.users),
            "from_number": event.from_number,
            "to_number": event.to_number,
            "text": event.text,
            "media_urls": list(event.media_urls),
            "provider_message_id": event.provider_message_id,
            "message_id": event.message_id,
            "status": event.status,
            "error": event.error,
            "metadata": dict(event.metadata),
            "received_at": encode_time(event.received_at),
            "request_id": event.request_id,
            "dedupe_key": event.dedupe_key,
            "fields": dict(event.fields),
            "media": json.loads(encode_media(event.media)),
        }
    )


def decode_held_event(text: str) -> NewEvent:
    """The event of :func:`encode_held_event`, or of what an older SQLite store wrote (the
    ``events`` columns as keys: ``users_json``, ``media_urls_json``, ``metadata_json`` holding
    JSON text), so that receipts held across an upgrade are still released."""
    data = json.loads(text)
    if "users" in data:
        users, media_urls = tuple(data["users"]), tuple(data["media_urls"])
        metadata = _frozen_items(data["metadata"])
    else:
        users, media_urls = (
            _decode_texts(data["users_json"]),
            _decode_texts(data["media_urls_json"]),
        )
        metadata = decode_map(data["metadata_json"])
    return NewEvent(
        type=data["type"],
        org_id=data["org_id"],
        installation_id=data["installation_id"],
        integration_id=data["integration_id"],
        users=users,
        from_number=data["from_number"],
        to_number=data["to_number"],
        text=data["text"],
        media_urls=media_urls,
        provider_message_id=data["provider_message_id"],
        message_id=data["message_id"],
        status=data["status"],
        error=data["error"],
        metadata=metadata,
        received_at=decode_time(data["received_at"]),
        request_id=data["request_id"],
        dedupe_key=data["dedupe_key"],
        fields=_frozen_items(data.get("fields", {})),
        media=decode_media(json.dumps(data["media"])) if data.get("media") else (),
    )


# ---------------------------------------------------------------------------------------------
# Columns, in the order of the rows below


def columns(names: Sequence[str], alias: str = "") -> str:
    """``names`` as a select list, each prefixed ``alias.`` when given."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + name for name in names)


INTEGRATION_COLUMNS: Final = ("id", "version", "definition_json", "created_at", "deleted")

INSTALLATION_COLUMNS: Final = (
    "id",
    "org_id",
    "integration_id",
    "properties_json",
    "numbers_json",
    "default_region",
    "enabled",
    "webhook_token_hash",
    "subscription_state",
    "subscription_error",
    "created_at",
    "updated_at",
    "send_limits_json",  # docs/delivery.md, "Limits"
)

MESSAGE_COLUMNS: Final = (
    "id",
    "org_id",
    "installation_id",
    "integration_id",
    "kind",
    "from_number",
    "to_number",
    "text",
    "media_url",
    "state",
    "provider_message_id",
    "provider_status",
    "attempts",
    "error",
    "metadata_json",
    "idempotency_key",
    "request_fingerprint",
    "reply_json",
    "created_at",
    "updated_at",
    "provider_message_ids_json",  # (ext) docs/format.md, "Several requests per send"
    # the delivery pipeline (docs/delivery.md)
    "encoding",
    "segments",
    "send_at",
    "next_attempt_at",
    "ordered",
    "notify",
    "lease_owner",
    "lease_until",
    "attempt_log_json",
    "request_json",
)

#: What the end of an attempt reads back of a message (``Store.finish_attempt``): the columns
#: that something besides the attempt may have changed while it was sending — a receipt (state,
#: error, the provider's fields), a caller replied before the outcome (notify) — then, from each
#: backend's statement, the length of the attempt log. The rest the caller's copy holds already.
FINISHED_COLUMNS: Final = (
    "state",
    "provider_message_id",
    "provider_status",
    "error",
    "reply_json",
    "provider_message_ids_json",
    "notify",
)

EVENT_COLUMNS: Final = (
    "type",
    "org_id",
    "installation_id",
    "integration_id",
    "users_json",
    "from_number",
    "to_number",
    "text",
    "media_urls_json",
    "provider_message_id",
    "message_id",
    "status",
    "error",
    "metadata_json",
    "received_at",
    "request_id",
    "dedupe_key",
    "fields_json",
    "media_json",  # docs/media.md
)
"""An event's columns but the cursor: what :meth:`Rows.event_params` gives. A read selects
``cursor`` first, then these (:meth:`Rows.event`)."""

EVENT_RECEIVED_AT: Final = EVENT_COLUMNS.index("received_at")

HELD_COLUMNS: Final = (
    "id",
    "integration_id",
    "provider_message_id",
    "event_json",
    "held_at",
    "release_at",
)

REQUEST_COLUMNS: Final = (
    "id",
    "received_at",
    "integration_id",
    "installation_id",
    "method",
    "path",
    "query",
    "headers_json",
    "body",
    "content_type",
    "outcome",
    "reason",
    "replayed_at",
    "answer_status",
    "answer_body",
    "duration_ms",
)


# ---------------------------------------------------------------------------------------------
# Records


def _attempt_json(a: AttemptRecord) -> dict[str, Any]:
    return {
        "n": a.number,
        "s": encode_time(a.started_at),
        "e": encode_time(a.ended_at),
        **({"p": a.provider_status} if a.provider_status is not None else {}),
        **({"r": a.reason} if a.reason else {}),
        **({"x": a.error} if a.error else {}),
        **({"t": encode_time(a.retry_at)} if a.retry_at is not None else {}),
    }


class Rows(Generic[Stored]):
    """Record ⇄ row for one backend: ``time_param`` turns a datetime into the stored form
    (``Stored``), ``time_value`` turns it back into a UTC datetime. One function per record kind,
    called once per row (the event ones are on the ingest and read paths)."""

    __slots__ = ("time_param", "time_value")

    def __init__(
        self, *, time_param: Callable[[datetime], Stored], time_value: Callable[[Any], datetime]
    ) -> None:
        self.time_param = time_param
        self.time_value = time_value

    def integration(self, row: Row) -> IntegrationRecord:
        return IntegrationRecord(
            id=row[0],
            version=row[1],
            definition_json=row[2],
            created_at=self.time_value(row[3]),
            deleted=bool(row[4]),
        )

    def installation(self, row: Row) -> InstallationRecord:
        time_value = self.time_value
        return InstallationRecord(
            id=row[0],
            org_id=row[1],
            integration_id=row[2],
            properties=decode_map(row[3]),
            numbers=_decode_numbers(row[4]),
            default_region=row[5],
            enabled=bool(row[6]),
            webhook_token_hash=row[7],
            subscription_state=row[8],
            subscription_error=row[9],
            created_at=time_value(row[10]),
            updated_at=time_value(row[11]),
            send_limits_json=row[12],
        )

    def installation_params(self, record: InstallationRecord) -> tuple[Any, ...]:
        time_param = self.time_param
        return (
            record.id,
            record.org_id,
            record.integration_id,
            encode_map(record.properties),
            _encode_numbers(record.numbers),
            record.default_region,
            bool(record.enabled),
            record.webhook_token_hash,
            record.subscription_state,
            record.subscription_error,
            time_param(record.created_at),
            time_param(record.updated_at),
            record.send_limits_json,
        )

    def message(self, row: Row) -> MessageRecord:
        time_value = self.time_value
        return MessageRecord(
            id=row[0],
            org_id=row[1],
            installation_id=row[2],
            integration_id=row[3],
            kind=MessageKind(row[4]),
            from_number=row[5],
            to_number=row[6],
            text=row[7],
            media_url=row[8],
            state=MessageState(row[9]),
            provider_message_id=row[10],
            provider_status=row[11],
            attempts=row[12],
            error=row[13],
            metadata=decode_map(row[14]),
            idempotency_key=row[15],
            request_fingerprint=row[16],
            reply_json=row[17],
            created_at=time_value(row[18]),
            updated_at=time_value(row[19]),
            provider_message_ids=decode_ids(row[20]),
            encoding=row[21],
            segments=row[22],
            send_at=None if row[23] is None else time_value(row[23]),
            next_attempt_at=None if row[24] is None else time_value(row[24]),
            ordered=bool(row[25]),
            notify=bool(row[26]),
            lease_owner=row[27],
            lease_until=None if row[28] is None else time_value(row[28]),
            attempt_log=self.attempt_log(row[29]),
            request_json=row[30],
        )

    @staticmethod
    def finished_message(
        held: MessageRecord,
        row: Row,
        attempts: int,
        attempt: AttemptRecord | None,
        next_attempt_at: datetime | None,
        updated_at: datetime,
    ) -> MessageRecord | None:
        """A message after the end of an attempt: the caller's copy ``held``, with a row of
        :data:`FINISHED_COLUMNS` then the attempt log's length, and what the end itself set (no
        lease). None when the log holds attempts that ``held`` does not: read the message whole.

        Built field by field rather than with ``dataclasses.replace``, which costs twice as much
        on a record this wide; every send ends here."""
        log = held.attempt_log if attempt is None else (*held.attempt_log, attempt)
        if (row[7] or 0) != len(log):
            return None
        return MessageRecord(
            id=held.id,
            org_id=held.org_id,
            installation_id=held.installation_id,
            integration_id=held.integration_id,
            kind=held.kind,
            from_number=held.from_number,
            to_number=held.to_number,
            text=held.text,
            media_url=held.media_url,
            state=MessageState(row[0]),
            provider_message_id=row[1],
            provider_status=row[2],
            attempts=attempts,
            error=row[3],
            metadata=held.metadata,
            idempotency_key=held.idempotency_key,
            request_fingerprint=held.request_fingerprint,
            reply_json=row[4],
            created_at=held.created_at,
            updated_at=utc_time(updated_at),
            provider_message_ids=decode_ids(row[5]),
            encoding=held.encoding,
            segments=held.segments,
            send_at=held.send_at,
            next_attempt_at=None if next_attempt_at is None else utc_time(next_attempt_at),
            ordered=held.ordered,
            notify=bool(row[6]),
            lease_owner=None,
            lease_until=None,
            attempt_log=log,
            request_json=held.request_json,
        )

    def attempt_log(self, text: str | None) -> tuple[AttemptRecord, ...]:
        """A message's attempts from their JSON (times as the backend's stored form)."""
        if not text:
            return ()
        return tuple(
            AttemptRecord(
                number=item["n"],
                started_at=decode_time(item["s"]),
                ended_at=decode_time(item["e"]),
                provider_status=item.get("p"),
                reason=item.get("r", ""),
                error=item.get("x", ""),
                retry_at=None if item.get("t") is None else decode_time(item["t"]),
            )
            for item in json.loads(text)
        )

    @staticmethod
    def encode_attempt_log(log: Sequence[AttemptRecord]) -> str | None:
        """The JSON of a message's attempts (times in microseconds since the epoch)."""
        if not log:
            return None
        return _json([_attempt_json(a) for a in log])

    @staticmethod
    def encode_attempt(attempt: AttemptRecord) -> str:
        """The JSON of one attempt, as an element of :meth:`encode_attempt_log`'s list."""
        return _json(_attempt_json(attempt))

    def message_params(self, record: MessageRecord) -> tuple[Any, ...]:
        time_param = self.time_param
        return (
            record.id,
            record.org_id,
            record.installation_id,
            record.integration_id,
            MessageKind(record.kind).value,
            record.from_number,
            record.to_number,
            record.text,
            record.media_url,
            MessageState(record.state).value,
            record.provider_message_id,
            record.provider_status,
            record.attempts,
            record.error,
            encode_map(record.metadata),
            record.idempotency_key,
            record.request_fingerprint,
            record.reply_json,
            time_param(record.created_at),
            time_param(record.updated_at),
            encode_ids(record.provider_message_ids),
            record.encoding,
            record.segments,
            None if record.send_at is None else time_param(record.send_at),
            None if record.next_attempt_at is None else time_param(record.next_attempt_at),
            bool(record.ordered),
            bool(record.notify),
            record.lease_owner,
            None if record.lease_until is None else time_param(record.lease_until),
            self.encode_attempt_log(record.attempt_log),
            record.request_json,
        )

    def part_params(self, message: MessageRecord, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """The ``message_parts`` rows of a send of several requests: one per non-empty provider
        id, in state ``sent`` (docs/format.md, "Several requests per send")."""
        return [
            (message.id, index, message.integration_id, provider_id, MessageState.SENT.value)
            for index, provider_id in enumerate(ids)
            if provider_id
        ]

    def event(self, row: Row) -> EventRecord:
        """A row of ``cursor`` then :data:`EVENT_COLUMNS`."""
        return EventRecord(
            cursor=row[0],
            type=row[1],
            org_id=row[2],
            installation_id=row[3],
            integration_id=row[4],
            users=_decode_texts(row[5]),
            from_number=row[6],
            to_number=row[7],
            text=row[8],
            media_urls=_decode_texts(row[9]),
            provider_message_id=row[10],
            message_id=row[11],
            status=row[12],
            error=row[13],
            metadata=decode_map(row[14]),
            received_at=self.time_value(row[15]),
            request_id=row[16],
            dedupe_key=row[17],
            fields=decode_map(row[18]),
            media=decode_media(row[19]),
        )

    def event_params(self, event: NewEvent) -> tuple[Any, ...]:
        """An event's :data:`EVENT_COLUMNS` values (everything but the cursor)."""
        return (
            event.type,
            event.org_id,
            event.installation_id,
            event.integration_id,
            _encode_texts(event.users),
            event.from_number,
            event.to_number,
            event.text,
            _encode_texts(event.media_urls),
            event.provider_message_id,
            event.message_id,
            event.status,
            event.error,
            encode_map(event.metadata),
            self.time_param(event.received_at),
            event.request_id,
            event.dedupe_key,
            encode_map(event.fields),
            encode_media(event.media),
        )

    def held(self, row: Row) -> HeldReceipt:
        return HeldReceipt(
            id=row[0],
            integration_id=row[1],
            provider_message_id=row[2],
            event=decode_held_event(row[3]),
            held_at=self.time_value(row[4]),
            release_at=self.time_value(row[5]),
        )

    def held_params(self, receipt: HeldReceipt) -> tuple[Any, ...]:
        return (
            receipt.id,
            receipt.integration_id,
            receipt.provider_message_id,
            encode_held_event(receipt.event),
            self.time_param(receipt.held_at),
            self.time_param(receipt.release_at),
        )

    def request_params(self, request: WebhookRequestRecord) -> tuple[Any, ...]:
        return (
            request.id,
            self.time_param(request.received_at),
            request.integration_id,
            request.installation_id,
            request.method,
            request.path,
            request.query,
            _encode_headers(request.headers),
            bytes(request.body),
            request.content_type,
            WebhookOutcome(request.outcome).value,
            request.reason,
            None if request.replayed_at is None else self.time_param(request.replayed_at),
            request.answer_status,
            request.answer_body,
            request.duration_ms,
        )

    def webhook_request(self, row: Row) -> WebhookRequestRecord:
        return WebhookRequestRecord(
            id=row[0],
            received_at=self.time_value(row[1]),
            integration_id=row[2],
            installation_id=row[3],
            method=row[4],
            path=row[5],
            query=row[6],
            headers=_decode_headers(row[7]),
            body=bytes(row[8]),
            content_type=row[9],
            outcome=WebhookOutcome(row[10]),
            reason=row[11],
            replayed_at=None if row[12] is None else self.time_value(row[12]),
            answer_status=row[13],
            answer_body=row[14],
            duration_ms=row[15],
        )

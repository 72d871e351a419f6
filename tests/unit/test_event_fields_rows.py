"""An event's extra fields in the store's row codecs: the events row and a held receipt's JSON,
including a held receipt written before extra fields existed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from server.store import NewEvent
from server.store._rows import EVENT_COLUMNS, decode_held_event, encode_held_event

EVENT = NewEvent(
    type="messageDelivered",
    org_id="org",
    installation_id="inst",
    integration_id="acme",
    users=(),
    from_number="+1",
    to_number="+2",
    text="",
    media_urls=(),
    provider_message_id="P1",
    message_id="",
    status="delivered",
    error="",
    metadata={"ticket": "42"},
    received_at=datetime(2026, 1, 1, tzinfo=UTC),
    request_id="req-1",
    dedupe_key=None,
    fields={"price": "0.0075"},
)


def test_the_events_row_ends_with_the_fields_then_the_media_column() -> None:
    assert EVENT_COLUMNS[-2:] == ("fields_json", "media_json")


def test_a_held_receipt_keeps_its_fields_apart_from_its_metadata() -> None:
    decoded = decode_held_event(encode_held_event(EVENT))
    assert dict(decoded.fields) == {"price": "0.0075"}
    assert dict(decoded.metadata) == {"ticket": "42"}


def test_a_held_receipt_written_before_fields_existed_has_none() -> None:
    data = json.loads(encode_held_event(EVENT))
    del data["fields"]
    assert dict(decode_held_event(json.dumps(data)).fields) == {}

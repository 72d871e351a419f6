"""The store's shared row mapping and message state rule, below the backends."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from server.store import MessageState, MessageTransition, NewEvent
from server.store._exchanges import _headers_json
from server.store._rows import (
    Rows,
    decode_held_event,
    encode_held_event,
    encode_map,
    encode_time,
)
from server.store._transitions import ALLOWED_FROM, transition_guard, transition_params
from server.store.postgres._sql import ROWS as POSTGRES_ROWS
from server.store.sqlite._sql import ROWS as SQLITE_ROWS

EVENT = NewEvent(
    type="messageDelivered",
    org_id="org-1",
    installation_id="inst-1",
    integration_id="acme",
    users=("101", "alice"),
    from_number="+15550000001",
    to_number="+15550000002",
    text="héllo",
    media_urls=("https://example.test/a.png",),
    provider_message_id="p-1",
    message_id="",
    status="delivered",
    error="",
    metadata={"k": "v"},
    received_at=datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC),
    request_id="req-1",
    dedupe_key="acme|p-1|messageDelivered",
)


@pytest.mark.parametrize("rows", [SQLITE_ROWS, POSTGRES_ROWS], ids=["sqlite", "postgres"])
def test_an_event_reads_back_as_it_was_written(rows: Rows[Any]) -> None:
    stored = rows.event((7, *rows.event_params(EVENT)))
    assert stored.cursor == 7
    assert stored == type(stored).appended(EVENT, 7)


def test_a_held_event_round_trips() -> None:
    assert decode_held_event(encode_held_event(EVENT)) == EVENT


def test_a_held_event_an_older_sqlite_store_wrote_still_decodes() -> None:
    legacy = {
        "type": EVENT.type,
        "org_id": EVENT.org_id,
        "installation_id": EVENT.installation_id,
        "integration_id": EVENT.integration_id,
        "users_json": json.dumps(list(EVENT.users)),
        "from_number": EVENT.from_number,
        "to_number": EVENT.to_number,
        "text": EVENT.text,
        "media_urls_json": json.dumps(list(EVENT.media_urls)),
        "provider_message_id": EVENT.provider_message_id,
        "message_id": EVENT.message_id,
        "status": EVENT.status,
        "error": EVENT.error,
        "metadata_json": encode_map(EVENT.metadata),
        "received_at": encode_time(EVENT.received_at),
        "request_id": EVENT.request_id,
        "dedupe_key": EVENT.dedupe_key,
    }
    assert decode_held_event(json.dumps(legacy)) == EVENT


@pytest.mark.parametrize("current", list(MessageState))
@pytest.mark.parametrize("target", sorted(ALLOWED_FROM))
def test_the_generated_guard_is_the_table(current: MessageState, target: MessageState) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, state TEXT)")
        conn.execute("INSERT INTO messages VALUES ('m', ?)", (current.value,))
        changed = conn.execute(
            f"UPDATE messages SET state = ?1 WHERE id = 'm' AND {transition_guard('?1')}",
            (target.value,),
        ).rowcount
    finally:
        conn.close()
    assert changed == (1 if current in ALLOWED_FROM[target] else 0)


def test_the_table_is_the_documented_rule() -> None:
    pending, sending, sent = MessageState.PENDING, MessageState.SENDING, MessageState.SENT
    documented = {
        MessageState.SENT: {pending, sending},
        MessageState.DELIVERED: {pending, sending, sent},
        MessageState.FAILED: {pending, sending, sent},
    }
    assert dict(ALLOWED_FROM) == documented


def test_no_receipt_makes_a_message_pending() -> None:
    with pytest.raises(ValueError, match="pending"):
        transition_params(MessageTransition(message_id="m", state=MessageState.PENDING), 0)


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("Content-Type", "application/json"),),
        (("X-Quote", 'say "hi"\\ / \n\t\x00\x1f'), ("X-Ünïcode", "héllo — ☃ 😀")),
        (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")),
        (("X-Surrogate", "\ud800 lone"),),
    ],
)
def test_exchange_headers_are_the_stores_compact_json(headers: tuple[tuple[str, str], ...]) -> None:
    text = _headers_json(headers)
    assert text == json.dumps(headers, ensure_ascii=False, separators=(",", ":"))
    assert tuple(tuple(pair) for pair in json.loads(text)) == headers

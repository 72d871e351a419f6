"""The SQLite store's statements, and its row mapping (times as integer microseconds).

Statements are built once, at import, from the column lists of :mod:`server.store._rows`; what
runs is always the same text, so sqlite3 caches each prepared form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from .._base import WebhookOutcome
from .._keyset_sql import Dialect, Selects
from .._rows import (
    EVENT_COLUMNS,
    HELD_COLUMNS,
    INSTALLATION_COLUMNS,
    MESSAGE_COLUMNS,
    REQUEST_COLUMNS,
    Rows,
    columns,
    decode_time,
    encode_time,
)
from .._transitions import parts_target, transition_guard

__all__ = [
    "APPLY_PART_TRANSITION",
    "APPLY_TRANSITION",
    "CLAIM_KEY",
    "CLAIM_MESSAGE",
    "DIALECT",
    "EARLIEST_CURSOR",
    "EVENT_SELECT",
    "EXPIRED_LEASES",
    "HELD_COLUMN_LIST",
    "INSERT_EVENT",
    "INSERT_HELD",
    "INSERT_INSTALLATION",
    "INSERT_MESSAGE",
    "INSERT_MESSAGE_PART",
    "INSERT_WEBHOOK_REQUEST",
    "LATEST_CURSOR",
    "LIST_INTEGRATIONS",
    "LONG_AGO",
    "PURGE_STATEMENTS",
    "PUT_LEASE",
    "ROWS",
    "SELECTS",
    "SELECT_INSTALLATION",
    "SELECT_INSTALLATION_BY_NUMBER",
    "SELECT_MESSAGE",
    "SELECT_MESSAGE_BY_PART",
    "SELECT_WEBHOOK_REQUEST",
    "UPDATE_INSTALLATION",
    "UPDATE_MESSAGE",
]

ROWS: Final = Rows(time_param=encode_time, time_value=decode_time)

# How the statements of server/store/_keyset_sql.py are written here: a list is a JSON array.
DIALECT: Final = Dialect(
    mark=lambda n: f"?{n}",
    member=lambda column, mark: f"{column} IN (SELECT value FROM json_each({mark}))",  # noqa: S608
    listed=json.dumps,
    time=encode_time,
    no_limit=-1,
)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _insert(table: str, names: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({columns(names)}) VALUES ({_marks(len(names))})"  # noqa: S608


HELD_COLUMN_LIST: Final = columns(HELD_COLUMNS)

# ?1 the id of the previous page's last (""), ?2 the limit (-1: none): a range of the primary key
# (id, version), each integration's latest version not deleted.
LIST_INTEGRATIONS: Final = """
SELECT id, version, definition_json, created_at, deleted FROM integrations AS i
WHERE id > ?1 AND deleted = 0
  AND version = (SELECT MAX(version) FROM integrations WHERE id = i.id AND deleted = 0)
ORDER BY id LIMIT ?2
"""

SELECT_INSTALLATION: Final = f"SELECT {columns(INSTALLATION_COLUMNS)} FROM installations"  # noqa: S608

SELECT_INSTALLATION_BY_NUMBER: Final = f"""
SELECT {columns(INSTALLATION_COLUMNS, "i")}
FROM installation_numbers AS n JOIN installations AS i ON i.id = n.installation_id
"""  # noqa: S608

INSERT_INSTALLATION: Final = _insert("installations", INSTALLATION_COLUMNS)

UPDATE_INSTALLATION: Final = """
UPDATE installations SET
    org_id = ?, integration_id = ?, properties_json = ?, numbers_json = ?, default_region = ?,
    enabled = ?, webhook_token_hash = ?, subscription_state = ?, subscription_error = ?,
    updated_at = ?, send_limits_json = ?
WHERE id = ?
RETURNING created_at
"""

SELECT_MESSAGE: Final = f"SELECT {columns(MESSAGE_COLUMNS)} FROM messages"  # noqa: S608

INSERT_MESSAGE: Final = _insert("messages", MESSAGE_COLUMNS)

CLAIM_MESSAGE: Final = (
    INSERT_MESSAGE
    + "\nON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)

SELECT_MESSAGE_BY_PART: Final = f"""
SELECT {columns(MESSAGE_COLUMNS, "m")} FROM message_parts p JOIN messages m ON m.id = p.message_id
WHERE p.integration_id = ? AND p.provider_message_id = ?
ORDER BY m.created_at DESC, m.id DESC LIMIT 1
"""  # noqa: S608 - (ext) a receipt for a later part ("Several requests per send")

# Each field comes with a flag: 1 = set it to the value, 0 = keep it.
UPDATE_MESSAGE: Final = f"""
UPDATE messages SET
    state = CASE WHEN ? THEN ? ELSE state END,
    provider_message_id = CASE WHEN ? THEN ? ELSE provider_message_id END,
    provider_status = CASE WHEN ? THEN ? ELSE provider_status END,
    attempts = CASE WHEN ? THEN ? ELSE attempts END,
    error = CASE WHEN ? THEN ? ELSE error END,
    reply_json = CASE WHEN ? THEN ? ELSE reply_json END,
    provider_message_ids_json = CASE WHEN ? THEN ? ELSE provider_message_ids_json END,
    updated_at = ?
WHERE id = ?
RETURNING {columns(MESSAGE_COLUMNS)}
"""  # noqa: S608

# --- the inbound path -------------------------------------------------------------------------

INSERT_EVENT: Final = _insert("events", EVENT_COLUMNS)

EVENT_SELECT: Final = f"SELECT cursor, {columns(EVENT_COLUMNS)} FROM events"  # noqa: S608

LATEST_CURSOR: Final = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"

EARLIEST_CURSOR: Final = """
SELECT COALESCE(
    (SELECT MIN(cursor) FROM events) - 1,
    (SELECT seq FROM sqlite_sequence WHERE name = 'events'),
    0
)
"""

CLAIM_KEY: Final = "INSERT INTO dedupe_keys (key, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING"

# ?1 state, ?2 error, ?3 updated_at, ?4 id; only where the message state rule allows it.
# ?5 the part's provider id (NULL: a message of one request): the state is then the one its
# parts make (server/store/_transitions.py, PARTS_RULE), read after APPLY_PART_TRANSITION.
_TARGET: Final = parts_target("?1", "?5", "?4")
APPLY_TRANSITION: Final = f"""
UPDATE messages SET state = {_TARGET}, error = ?2, updated_at = ?3
WHERE id = ?4 AND {transition_guard(_TARGET)}
"""  # noqa: S608

# ?1 state, ?2 message id, ?3 the part's provider id: the part moves by the same rule.
APPLY_PART_TRANSITION: Final = f"""
UPDATE message_parts SET state = ?1
WHERE message_id = ?2 AND provider_message_id = ?3 AND {transition_guard("?1")}
"""  # noqa: S608

# ?1 message id, ?2 part index, ?3 integration, ?4 provider id, ?5 state.
INSERT_MESSAGE_PART: Final = """
INSERT INTO message_parts (message_id, part_index, integration_id, provider_message_id, state)
VALUES (?1, ?2, ?3, ?4, ?5)
"""

INSERT_HELD: Final = _insert("held_receipts", HELD_COLUMNS)

SELECT_WEBHOOK_REQUEST: Final = f"SELECT {columns(REQUEST_COLUMNS)} FROM webhook_requests"  # noqa: S608

INSERT_WEBHOOK_REQUEST: Final = _insert("webhook_requests", REQUEST_COLUMNS)

# ?1 consumer, ?2 now, ?3 limit: expired leases whose event is kept, lowest cursor first.
EXPIRED_LEASES: Final = f"""
SELECT e.cursor, {columns(EVENT_COLUMNS, "e")}
FROM event_leases AS l JOIN events AS e ON e.cursor = l.cursor
WHERE l.consumer = ?1 AND l.lease_until <= ?2
ORDER BY l.cursor LIMIT ?3
"""  # noqa: S608

PUT_LEASE: Final = """
INSERT INTO event_leases (consumer, cursor, subscriber, lease_until) VALUES (?, ?, ?, ?)
ON CONFLICT (consumer, cursor) DO UPDATE SET
    subscriber = excluded.subscriber, lease_until = excluded.lease_until
"""

assert {o.value for o in WebhookOutcome} == {
    "matched",
    "unmatched",
    "unroutable",
    "unauthenticated",
}

# Chunked deletes: ?1 the time (or cursor) bound, ?2 the chunk size.
PURGE_STATEMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "requests": """
DELETE FROM webhook_requests WHERE id IN (
    SELECT id FROM webhook_requests WHERE outcome = 'matched' AND received_at < ?1 LIMIT ?2
)""",
        "unmatched": """
DELETE FROM webhook_requests WHERE id IN (
    SELECT id FROM webhook_requests
    WHERE outcome IN ('unmatched', 'unroutable', 'unauthenticated') AND received_at < ?1
    LIMIT ?2
)""",
        "messages": """
DELETE FROM messages WHERE id IN (
    SELECT id FROM messages
    WHERE created_at < ?1 AND state NOT IN ('queued', 'sending') LIMIT ?2
)""",
        "dedupe_keys": """
DELETE FROM dedupe_keys WHERE key IN (
    SELECT key FROM dedupe_keys WHERE created_at < ?1 LIMIT ?2
)""",
        "events": """
DELETE FROM events WHERE cursor IN (
    SELECT cursor FROM events WHERE cursor < ?1 ORDER BY cursor LIMIT ?2
)""",
    }
)


LONG_AGO: Final = -(2**62)  # a released lease's lease_until: expired for any `now`

# What the store's listings select (server/store/_keyset_sql.py, KeysetListings).
SELECTS: Final = Selects(SELECT_INSTALLATION, SELECT_MESSAGE, SELECT_WEBHOOK_REQUEST, EVENT_SELECT)

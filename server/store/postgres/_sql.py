"""The PostgreSQL store's statements, and its row mapping (times as ``timestamptz``).

Statements are literal text built once at import from the column lists of
:mod:`server.store._rows`, so asyncpg prepares each once per connection and reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from .._base import WebhookOutcome
from .._keyset_sql import Dialect, Selects
from .._media import HOLD_COLUMNS
from .._rows import (
    EVENT_COLUMNS,
    HELD_COLUMNS,
    INSTALLATION_COLUMNS,
    INTEGRATION_COLUMNS,
    MESSAGE_COLUMNS,
    REQUEST_COLUMNS,
    Rows,
    aware_time,
    columns,
    utc_time,
)
from .._transitions import parts_target, transition_guard
from ._listener import EVENTS_CHANNEL

__all__ = [
    "APPLY_PART_TRANSITION",
    "APPLY_TRANSITION",
    "CLAIM_KEYS",
    "CLAIM_MESSAGE",
    "DIALECT",
    "EARLIEST_CURSOR",
    "EVENT_SELECT",
    "EXPIRED_LEASES",
    "HELD_COLUMN_LIST",
    "INSERT_EVENT",
    "INSERT_HELD",
    "INSERT_INSTALLATION",
    "INSERT_MEDIA_HOLD",
    "INSERT_MESSAGE",
    "INSERT_MESSAGE_PART",
    "INSERT_NUMBERS",
    "INSERT_WEBHOOK_REQUEST",
    "INTEGRATION_COLUMN_LIST",
    "LATEST_CURSOR",
    "LIST_INTEGRATIONS",
    "LOCK_CONSUMER",
    "PURGE_STATEMENTS",
    "PUT_LEASES",
    "REQUEST_COLUMN_LIST",
    "ROWS",
    "SELECTS",
    "SELECT_INSTALLATION",
    "SELECT_INSTALLATION_BY_NUMBER",
    "SELECT_MESSAGE",
    "SELECT_MESSAGE_BY_PART",
    "SELECT_WEBHOOK_REQUEST",
    "TAKE_CURSORS",
    "TAKE_DUE_HELD",
    "TAKE_HELD_BY_PROVIDER_ID",
    "UPDATE_INSTALLATION",
    "UPDATE_MESSAGE",
]

ROWS: Final = Rows(time_param=aware_time, time_value=utc_time)

# How the statements of server/store/_keyset_sql.py are written here.
DIALECT: Final = Dialect(
    mark=lambda n: f"${n}",
    member=lambda column, mark: f"{column} = ANY ({mark}::text[])",
    listed=list,
    time=aware_time,
    no_limit=None,
    ordered_arms=True,
)

INTEGRATION_COLUMN_LIST: Final = columns(INTEGRATION_COLUMNS)
HELD_COLUMN_LIST: Final = columns(HELD_COLUMNS)
REQUEST_COLUMN_LIST: Final = columns(REQUEST_COLUMNS)

# $1 the id of the previous page's last (""), $2 the limit (NULL: none): a range of the primary
# key (id, version), each integration's latest version not deleted.
LIST_INTEGRATIONS: Final = f"""
SELECT {INTEGRATION_COLUMN_LIST} FROM integrations AS i
WHERE id > $1 AND NOT deleted
  AND version = (SELECT MAX(version) FROM integrations WHERE id = i.id AND NOT deleted)
ORDER BY id LIMIT $2
"""  # noqa: S608 - constants

SELECT_INSTALLATION = f"SELECT {columns(INSTALLATION_COLUMNS, 'i')} FROM installations AS i"  # noqa: S608

SELECT_INSTALLATION_BY_NUMBER = f"""
SELECT {columns(INSTALLATION_COLUMNS, "i")}
FROM installation_numbers AS n JOIN installations AS i ON i.id = n.installation_id
"""  # noqa: S608

INSERT_INSTALLATION = """
INSERT INTO installations (
    id, org_id, integration_id, properties_json, numbers_json, default_region, enabled,
    webhook_token_hash, subscription_state, subscription_error, created_at, updated_at,
    send_limits_json
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""

UPDATE_INSTALLATION = """
UPDATE installations SET
    org_id = $2, integration_id = $3, properties_json = $4, numbers_json = $5,
    default_region = $6, enabled = $7, webhook_token_hash = $8, subscription_state = $9,
    subscription_error = $10, updated_at = $11, send_limits_json = $12
WHERE id = $1
RETURNING created_at
"""

# Numbers in the record's order; the ones another enabled installation holds are not inserted.
INSERT_NUMBERS = """
INSERT INTO installation_numbers (integration_id, number, installation_id, org_id)
SELECT $1, number, $3, $4 FROM unnest($2::text[]) AS given (number)
ON CONFLICT (integration_id, number) DO NOTHING
RETURNING number
"""

SELECT_MESSAGE = f"SELECT {columns(MESSAGE_COLUMNS)} FROM messages"  # noqa: S608

INSERT_MESSAGE = f"""
INSERT INTO messages ({columns(MESSAGE_COLUMNS)})
VALUES ({", ".join(f"${n}" for n in range(1, len(MESSAGE_COLUMNS) + 1))})
"""  # noqa: S608 - constants

CLAIM_MESSAGE = (
    INSERT_MESSAGE
    + """
ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
"""
)

SELECT_MESSAGE_BY_PART = f"""
SELECT {columns(MESSAGE_COLUMNS, "m")} FROM message_parts p JOIN messages m ON m.id = p.message_id
WHERE p.integration_id = $1 AND p.provider_message_id = $2
ORDER BY m.created_at DESC, m.id DESC LIMIT 1
"""  # noqa: S608 - (ext) a receipt for a later part ("Several requests per send")

# Each field comes with a flag: true = set it to the value, false = keep it.
UPDATE_MESSAGE = f"""
UPDATE messages SET
    state = CASE WHEN $1 THEN $2 ELSE state END,
    provider_message_id = CASE WHEN $3 THEN $4 ELSE provider_message_id END,
    provider_status = CASE WHEN $5 THEN $6::integer ELSE provider_status END,
    attempts = CASE WHEN $7 THEN $8::integer ELSE attempts END,
    error = CASE WHEN $9 THEN $10 ELSE error END,
    reply_json = CASE WHEN $11 THEN $12 ELSE reply_json END,
    provider_message_ids_json = CASE WHEN $13 THEN $14 ELSE provider_message_ids_json END,
    updated_at = $15
WHERE id = $16
RETURNING {columns(MESSAGE_COLUMNS)}
"""  # noqa: S608

# --- the inbound path -------------------------------------------------------------------------

# Takes `$1` cursors, just before the commit: the row stays locked until the transaction ends, so
# a concurrent append waits here and gets greater cursors only after this one is visible (see
# :mod:`server.store.postgres`). The NOTIFY is delivered at the commit, and not at all on a
# rollback.
TAKE_CURSORS = f"""
WITH taken AS (
    INSERT INTO event_cursor (only_row, last) VALUES (true, $1)
    ON CONFLICT (only_row) DO UPDATE SET last = event_cursor.last + excluded.last
    RETURNING last
)
SELECT last, pg_notify('{EVENTS_CHANNEL}', last::text) FROM taken
"""  # noqa: S608 - a constant

LATEST_CURSOR = "SELECT COALESCE((SELECT last FROM event_cursor), 0)"

EARLIEST_CURSOR = """
SELECT COALESCE((SELECT MIN(cursor) FROM events) - 1, (SELECT last FROM event_cursor), 0)
"""

INSERT_EVENT = f"""
INSERT INTO events (cursor, {columns(EVENT_COLUMNS)})
VALUES ({", ".join(f"${n}" for n in range(1, len(EVENT_COLUMNS) + 2))})
"""  # noqa: S608 - constants

SELECT_WEBHOOK_REQUEST: Final = f"SELECT {REQUEST_COLUMN_LIST} FROM webhook_requests"  # noqa: S608

EVENT_SELECT: Final = f"SELECT cursor, {columns(EVENT_COLUMNS)} FROM events"  # noqa: S608

# The dedupe keys of one call, each once and in key order (the same order in every transaction,
# which keeps two ingests claiming the same keys from deadlocking); returns the ones claimed now.
CLAIM_KEYS = """
INSERT INTO dedupe_keys (key, created_at)
SELECT key, created_at FROM unnest($1::text[], $2::timestamptz[]) AS claim (key, created_at)
ORDER BY key
ON CONFLICT (key) DO NOTHING
RETURNING key
"""

# $1 state, $2 error, $3 updated_at, $4 id; only where the message state rule allows it.
# $5 the part's provider id (NULL: a message of one request): the state is then the one its
# parts make (server/store/_transitions.py, PARTS_RULE), read after APPLY_PART_TRANSITION.
_TARGET = parts_target("$1::text", "$5::text", "$4")
APPLY_TRANSITION = f"""
UPDATE messages SET state = {_TARGET}, error = $2, updated_at = $3
WHERE id = $4 AND {transition_guard(_TARGET)}
"""  # noqa: S608 - generated from the rule's table

# $1 state, $2 message id, $3 the part's provider id: the part moves by the same rule.
APPLY_PART_TRANSITION = f"""
UPDATE message_parts SET state = $1::text
WHERE message_id = $2 AND provider_message_id = $3 AND {transition_guard("$1::text")}
"""  # noqa: S608 - generated from the rule's table

# $1 message id, $2 part index, $3 integration, $4 provider id, $5 state.
INSERT_MESSAGE_PART = """
INSERT INTO message_parts (message_id, part_index, integration_id, provider_message_id, state)
VALUES ($1, $2, $3, $4, $5)
"""

INSERT_HELD = f"""
INSERT INTO held_receipts ({HELD_COLUMN_LIST}) VALUES ($1, $2, $3, $4, $5, $6)
"""  # noqa: S608 - constants

# A media hold (docs/media.md), written by the ingest that holds its event.
INSERT_MEDIA_HOLD = f"""
INSERT INTO media_holds ({columns(HOLD_COLUMNS)})
VALUES ({", ".join(f"${n}" for n in range(1, len(HOLD_COLUMNS) + 1))})
"""  # noqa: S608 - constants

TAKE_HELD_BY_PROVIDER_ID = f"""
DELETE FROM held_receipts WHERE integration_id = $1 AND provider_message_id = $2
RETURNING {HELD_COLUMN_LIST}
"""  # noqa: S608 - constants

# SKIP LOCKED: a receipt another replica is taking right now is left to it.
TAKE_DUE_HELD = f"""
DELETE FROM held_receipts WHERE id IN (
    SELECT id FROM held_receipts WHERE release_at <= $1 FOR UPDATE SKIP LOCKED
)
RETURNING {HELD_COLUMN_LIST}
"""  # noqa: S608 - constants

INSERT_WEBHOOK_REQUEST = f"""
INSERT INTO webhook_requests ({REQUEST_COLUMN_LIST})
VALUES ({", ".join(f"${i}" for i in range(1, len(REQUEST_COLUMNS) + 1))})
"""  # noqa: S608 - constants

# Creates the consumer if new (its frontier "from now" unless $2 says where), and in any case
# locks its row until the transaction ends and returns its frontier: the subscribers of one
# consumer, on any replica, take turns at the frontier.
LOCK_CONSUMER = """
INSERT INTO event_consumers (name, frontier, created_at)
VALUES ($1, COALESCE($2::bigint, (SELECT last FROM event_cursor), 0), $3)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING frontier
"""

# $1 consumer, $2 now, $3 limit: expired leases whose event is kept, lowest cursor first. A lease
# another transaction holds (being acknowledged, say) is skipped rather than waited for.
EXPIRED_LEASES = f"""
SELECT e.cursor, {columns(EVENT_COLUMNS, "e")}
FROM event_leases AS l JOIN events AS e ON e.cursor = l.cursor
WHERE l.consumer = $1 AND l.lease_until <= $2
ORDER BY l.cursor LIMIT $3
FOR UPDATE OF l SKIP LOCKED
"""  # noqa: S608 - constants

PUT_LEASES = """
INSERT INTO event_leases (consumer, cursor, subscriber, lease_until)
SELECT $1, leased, $2, $3 FROM unnest($4::bigint[]) AS leased
ON CONFLICT (consumer, cursor) DO UPDATE SET
    subscriber = excluded.subscriber, lease_until = excluded.lease_until
"""

# Chunked deletes: $1 the time (or cursor) bound, $2 the chunk size.
PURGE_STATEMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "requests": """
DELETE FROM webhook_requests WHERE id IN (
    SELECT id FROM webhook_requests WHERE outcome = 'matched' AND received_at < $1 LIMIT $2
)""",
        "unmatched": """
DELETE FROM webhook_requests WHERE id IN (
    SELECT id FROM webhook_requests
    WHERE outcome IN ('unmatched', 'unroutable', 'unauthenticated') AND received_at < $1
    LIMIT $2
)""",
        "messages": """
DELETE FROM messages WHERE id IN (
    SELECT id FROM messages
    WHERE created_at < $1 AND state NOT IN ('queued', 'sending') LIMIT $2
)""",
        "dedupe_keys": """
DELETE FROM dedupe_keys WHERE key IN (
    SELECT key FROM dedupe_keys WHERE created_at < $1 LIMIT $2
)""",
        "events": """
DELETE FROM events WHERE cursor IN (
    SELECT cursor FROM events WHERE cursor < $1 ORDER BY cursor LIMIT $2
)""",
    }
)
assert {o.value for o in WebhookOutcome} == {
    "matched",
    "unmatched",
    "unroutable",
    "unauthenticated",
}


# What the store's listings select (server/store/_keyset_sql.py, KeysetListings).
SELECTS: Final = Selects(SELECT_INSTALLATION, SELECT_MESSAGE, SELECT_WEBHOOK_REQUEST, EVENT_SELECT)

-- msgbridge schema, version 2: the inbound path. Webhook requests as received, the event log,
-- dedupe keys, receipts held until their message is known, durable consumers and their leases.
-- Times are integer microseconds since the Unix epoch, UTC. No foreign keys between these tables:
-- each kind has its own retention, so an event may outlive its request and a lease its consumer.

-- Every webhook request, kept for audit and replay. `path` never holds the installation token.
-- `headers_json` is a JSON list of [name, value] pairs, in the order received.
CREATE TABLE webhook_requests (
    id              TEXT    NOT NULL PRIMARY KEY,
    received_at     INTEGER NOT NULL,
    integration_id  TEXT    NOT NULL,
    installation_id TEXT,
    method          TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    query           TEXT    NOT NULL,
    headers_json    TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    content_type    TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    replayed_at     INTEGER
);
-- Listing by outcome, newest first, and purging by outcome and age.
CREATE INDEX webhook_requests_by_outcome ON webhook_requests (outcome, received_at);

-- The event log. AUTOINCREMENT: a cursor is never reused, even after every row was purged
-- (sqlite_sequence keeps the highest one given). One writer appends, so cursors follow commits.
-- No secondary index: readers scan forward from a cursor, and every index costs the webhook path.
CREATE TABLE events (
    cursor              INTEGER PRIMARY KEY AUTOINCREMENT,
    type                TEXT    NOT NULL,
    org_id              TEXT    NOT NULL,
    installation_id     TEXT    NOT NULL,
    integration_id      TEXT    NOT NULL,
    users_json          TEXT    NOT NULL,
    from_number         TEXT    NOT NULL,
    to_number           TEXT    NOT NULL,
    text                TEXT    NOT NULL,
    media_urls_json     TEXT    NOT NULL,
    provider_message_id TEXT    NOT NULL,
    message_id          TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    error               TEXT    NOT NULL,
    metadata_json       TEXT    NOT NULL,
    received_at         INTEGER NOT NULL,
    request_id          TEXT    NOT NULL,
    dedupe_key          TEXT
);

-- Duplicates (docs/format.md, "Duplicates"): the primary key decides atomically which event
-- with a key is the first.
CREATE TABLE dedupe_keys (
    key        TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dedupe_keys_by_age ON dedupe_keys (created_at);

-- Receipts whose provider message id matched no message yet (receipt_wait: docs/format.md,
-- "Receipts").
-- `event_json` is the receipt's event as it would be appended without its message.
CREATE TABLE held_receipts (
    id                  TEXT    NOT NULL PRIMARY KEY,
    integration_id      TEXT    NOT NULL,
    provider_message_id TEXT    NOT NULL,
    event_json          TEXT    NOT NULL,
    held_at             INTEGER NOT NULL,
    release_at          INTEGER NOT NULL
);
CREATE INDEX held_receipts_by_provider_id ON held_receipts (integration_id, provider_message_id);
CREATE INDEX held_receipts_by_release ON held_receipts (release_at);

-- Durable consumers: the cursor after which no event has been handed out yet.
CREATE TABLE event_consumers (
    name       TEXT    NOT NULL PRIMARY KEY,
    frontier   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Events handed out to a consumer's subscriber and not acknowledged yet.
CREATE TABLE event_leases (
    consumer    TEXT    NOT NULL,
    cursor      INTEGER NOT NULL,
    subscriber  TEXT    NOT NULL,
    lease_until INTEGER NOT NULL,
    PRIMARY KEY (consumer, cursor)
) WITHOUT ROWID;
CREATE INDEX event_leases_by_expiry ON event_leases (consumer, lease_until);

-- Retention of sent messages by age.
CREATE INDEX messages_by_age ON messages (created_at);

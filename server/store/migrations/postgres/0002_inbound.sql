-- msgbridge schema for PostgreSQL, version 2: the inbound path, as migrations/sqlite/0002.
-- Webhook requests as received, the event log and its cursor counter, dedupe keys, receipts held
-- until their message is known, durable consumers and their leases. No foreign keys between
-- these tables: each kind has its own retention, so an event may outlive its request and a
-- lease its consumer.

-- Every webhook request, kept for audit and replay. `path` never holds the installation token.
-- `headers_json` is a JSON list of [name, value] pairs, in the order received.
CREATE TABLE webhook_requests (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    received_at     timestamptz      NOT NULL,
    integration_id  text COLLATE "C" NOT NULL,
    installation_id text COLLATE "C",
    method          text             NOT NULL,
    path            text             NOT NULL,
    query           text             NOT NULL,
    headers_json    text             NOT NULL,
    body            bytea            NOT NULL,
    content_type    text             NOT NULL,
    outcome         text             NOT NULL,
    reason          text             NOT NULL,
    replayed_at     timestamptz
);
-- Listing by outcome, newest first, and purging by outcome and age.
CREATE INDEX webhook_requests_by_outcome ON webhook_requests (outcome, received_at);

-- The highest event cursor ever handed out: one row, created by the first append. A sequence
-- would not do: PostgreSQL hands out sequence values in call order, and transactions commit in
-- another order, so a reader past cursor N could miss an N-1 committed later. An append takes
-- its cursors from this row instead, just before it commits; the row stays locked until then,
-- so cursors are handed out in commit order (see server/store/_postgres.py).
CREATE TABLE event_cursor (
    only_row boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (only_row),
    last     bigint  NOT NULL
);

-- The event log. `cursor` comes from event_cursor: increasing in commit order, never reused.
-- `users_json` and `media_urls_json` are JSON lists of text.
CREATE TABLE events (
    cursor              bigint           NOT NULL PRIMARY KEY,
    type                text             NOT NULL,
    org_id              text COLLATE "C" NOT NULL,
    installation_id     text COLLATE "C" NOT NULL,
    integration_id      text COLLATE "C" NOT NULL,
    users_json          text             NOT NULL,
    from_number         text             NOT NULL,
    to_number           text             NOT NULL,
    text                text             NOT NULL,
    media_urls_json     text             NOT NULL,
    provider_message_id text             NOT NULL,
    message_id          text             NOT NULL,
    status              text             NOT NULL,
    error               text             NOT NULL,
    metadata_json       text             NOT NULL,
    received_at         timestamptz      NOT NULL,
    request_id          text             NOT NULL,
    dedupe_key          text
);

-- Duplicates (docs/format.md, "Duplicates"): the primary key decides atomically which event
-- with a key is the first,
-- across every replica.
CREATE TABLE dedupe_keys (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    created_at timestamptz      NOT NULL
);
CREATE INDEX dedupe_keys_by_age ON dedupe_keys (created_at);

-- Receipts whose provider message id matched no message yet (receipt_wait: docs/format.md,
-- "Receipts").
-- `event_json` is the receipt's event as it would be appended without its message.
CREATE TABLE held_receipts (
    id                  text COLLATE "C" NOT NULL PRIMARY KEY,
    integration_id      text COLLATE "C" NOT NULL,
    provider_message_id text COLLATE "C" NOT NULL,
    event_json          text             NOT NULL,
    held_at             timestamptz      NOT NULL,
    release_at          timestamptz      NOT NULL
);
CREATE INDEX held_receipts_by_provider_id ON held_receipts (integration_id, provider_message_id);
CREATE INDEX held_receipts_by_release ON held_receipts (release_at);

-- Durable consumers: the cursor after which no event has been handed out yet. Leasing locks the
-- consumer's row, so the subscribers of one consumer, on any replica, take turns at the frontier.
CREATE TABLE event_consumers (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    frontier   bigint           NOT NULL,
    created_at timestamptz      NOT NULL
);

-- Events handed out to a consumer's subscriber and not acknowledged yet.
CREATE TABLE event_leases (
    consumer    text COLLATE "C" NOT NULL,
    cursor      bigint           NOT NULL,
    subscriber  text             NOT NULL,
    lease_until timestamptz      NOT NULL,
    PRIMARY KEY (consumer, cursor)
);
CREATE INDEX event_leases_by_expiry ON event_leases (consumer, lease_until);

-- Retention of sent messages by age.
CREATE INDEX messages_by_age ON messages (created_at);

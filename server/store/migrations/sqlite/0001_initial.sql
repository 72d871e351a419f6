-- msgbridge schema, version 1: integrations with versions, installations with their numbers,
-- and sent messages. Times are integer microseconds since the Unix epoch, UTC.

-- One row per version of an integration definition. Deleting an integration marks all its
-- versions deleted; registering the id again continues the version count.
CREATE TABLE integrations (
    id              TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    definition_json TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    PRIMARY KEY (id, version)
) WITHOUT ROWID;

-- An integration enabled for one organisation. `numbers_json` is the record's list of number
-- assignments (number, given, users) in the operator's order; `installation_numbers` below is
-- the index that enforces and looks up number ownership.
CREATE TABLE installations (
    id                 TEXT    NOT NULL PRIMARY KEY,
    org_id             TEXT    NOT NULL,
    integration_id     TEXT    NOT NULL,
    properties_json    TEXT    NOT NULL,
    numbers_json       TEXT    NOT NULL,
    default_region     TEXT,
    enabled            INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    webhook_token_hash TEXT    NOT NULL,
    subscription_state TEXT    NOT NULL,
    subscription_error TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX installations_by_org ON installations (org_id, created_at);
CREATE INDEX installations_by_integration ON installations (integration_id, created_at);
CREATE UNIQUE INDEX installations_by_token ON installations (integration_id, webhook_token_hash);

-- The numbers held by ENABLED installations only (a disabled installation holds none): the
-- primary key is the rule "a number is held by at most one enabled installation of an
-- integration" (docs/format.md, "Numbers and routing"), enforced atomically by the database.
CREATE TABLE installation_numbers (
    integration_id  TEXT NOT NULL,
    number          TEXT NOT NULL,
    installation_id TEXT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    org_id          TEXT NOT NULL,
    PRIMARY KEY (integration_id, number)
) WITHOUT ROWID;
CREATE INDEX installation_numbers_by_org ON installation_numbers (org_id, number);
CREATE INDEX installation_numbers_by_installation ON installation_numbers (installation_id);

-- Messages sent through the gateway. An idempotency key is unique per organisation. `kind` and
-- `state` are checked by the code (MessageKind, MessageState), not by CHECK constraints, so that a
-- later version can add a value without rebuilding the table.
CREATE TABLE messages (
    id                  TEXT    NOT NULL PRIMARY KEY,
    org_id              TEXT    NOT NULL,
    installation_id     TEXT    NOT NULL,
    integration_id      TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    from_number         TEXT    NOT NULL,
    to_number           TEXT    NOT NULL,
    text                TEXT    NOT NULL,
    media_url           TEXT,
    state               TEXT    NOT NULL,
    provider_message_id TEXT,
    provider_status     INTEGER,
    attempts            INTEGER NOT NULL,
    error               TEXT,
    metadata_json       TEXT    NOT NULL,
    idempotency_key     TEXT,
    request_fingerprint TEXT,
    reply_json          TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_by_idempotency_key ON messages (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_by_provider_id ON messages (integration_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

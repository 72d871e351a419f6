-- msgbridge schema for PostgreSQL, version 1: the same tables as migrations/sqlite/0001, with
-- PostgreSQL's types: times are timestamptz (microseconds, UTC), flags are boolean. Identifiers
-- use the "C" collation so that they sort by code point, as in SQLite, whatever the database's
-- locale is. Maps and number lists are JSON text the store reads back as it wrote them.

-- One row per version of an integration definition. Deleting an integration marks all its
-- versions deleted; registering the id again continues the version count.
CREATE TABLE integrations (
    id              text COLLATE "C" NOT NULL,
    version         integer          NOT NULL CHECK (version >= 1),
    definition_json text             NOT NULL,
    created_at      timestamptz      NOT NULL,
    deleted         boolean          NOT NULL DEFAULT false,
    PRIMARY KEY (id, version)
);

-- An integration enabled for one organisation. `numbers_json` is the record's list of number
-- assignments (number, given, users) in the operator's order; `installation_numbers` below is
-- the index that enforces and looks up number ownership.
CREATE TABLE installations (
    id                 text COLLATE "C" NOT NULL PRIMARY KEY,
    org_id             text COLLATE "C" NOT NULL,
    integration_id     text COLLATE "C" NOT NULL,
    properties_json    text             NOT NULL,
    numbers_json       text             NOT NULL,
    default_region     text,
    enabled            boolean          NOT NULL,
    webhook_token_hash text COLLATE "C" NOT NULL,
    subscription_state text             NOT NULL,
    subscription_error text,
    created_at         timestamptz      NOT NULL,
    updated_at         timestamptz      NOT NULL
);
CREATE INDEX installations_by_org ON installations (org_id, created_at);
CREATE INDEX installations_by_integration ON installations (integration_id, created_at);
CREATE UNIQUE INDEX installations_by_token ON installations (integration_id, webhook_token_hash);

-- The numbers held by ENABLED installations only (a disabled installation holds none): the
-- primary key is the rule "a number is held by at most one enabled installation of an
-- integration" (docs/format.md, "Numbers and routing"), enforced atomically by the database.
CREATE TABLE installation_numbers (
    integration_id  text COLLATE "C" NOT NULL,
    number          text COLLATE "C" NOT NULL,
    installation_id text COLLATE "C" NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    org_id          text COLLATE "C" NOT NULL,
    PRIMARY KEY (integration_id, number)
);
CREATE INDEX installation_numbers_by_org ON installation_numbers (org_id, number);
CREATE INDEX installation_numbers_by_installation ON installation_numbers (installation_id);

-- Messages sent through the gateway. An idempotency key is unique per organisation (across every
-- replica: the unique index decides). `kind` and `state` are checked by the code.
CREATE TABLE messages (
    id                  text COLLATE "C" NOT NULL PRIMARY KEY,
    org_id              text COLLATE "C" NOT NULL,
    installation_id     text COLLATE "C" NOT NULL,
    integration_id      text COLLATE "C" NOT NULL,
    kind                text             NOT NULL,
    from_number         text             NOT NULL,
    to_number           text             NOT NULL,
    text                text             NOT NULL,
    media_url           text,
    state               text             NOT NULL,
    provider_message_id text COLLATE "C",
    provider_status     integer,
    attempts            integer          NOT NULL,
    error               text,
    metadata_json       text             NOT NULL,
    idempotency_key     text COLLATE "C",
    request_fingerprint text,
    reply_json          text,
    created_at          timestamptz      NOT NULL,
    updated_at          timestamptz      NOT NULL
);
CREATE UNIQUE INDEX messages_by_idempotency_key ON messages (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_by_provider_id ON messages (integration_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- The provider exchange log (docs/operations.md, "Provider exchanges"): each HTTP exchange with a
-- provider, masked before it is written (no secret is ever in a row), bodies capped.
-- message_id is NULL for an exchange made for no message (Subscribe, a token request).
-- Identifiers use the "C" collation (sorted by code point, as in SQLite: see 0001).
CREATE TABLE provider_exchanges (
    id                    text COLLATE "C" NOT NULL PRIMARY KEY,
    org_id                text COLLATE "C" NOT NULL,
    installation_id       text COLLATE "C" NOT NULL,
    integration_id        text COLLATE "C" NOT NULL,
    message_id            text COLLATE "C",
    kind                  text             NOT NULL,
    method                text             NOT NULL,
    url                   text             NOT NULL,
    request_headers_json  text             NOT NULL,
    request_body          text             NOT NULL,
    status                integer          NOT NULL,
    response_headers_json text             NOT NULL,
    response_body         text             NOT NULL,
    started_at            timestamptz      NOT NULL,
    duration_ms           double precision NOT NULL,
    error                 text             NOT NULL
);
CREATE INDEX provider_exchanges_by_message ON provider_exchanges (message_id, started_at)
    WHERE message_id IS NOT NULL;
CREATE INDEX provider_exchanges_by_started ON provider_exchanges (started_at, id);

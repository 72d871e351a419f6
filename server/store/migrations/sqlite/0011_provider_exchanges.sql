-- The provider exchange log (docs/operations.md, "Provider exchanges"): each HTTP exchange with a
-- provider, masked before it is written (no secret is ever in a row), bodies capped.
-- message_id is NULL for an exchange made for no message (Subscribe, a token request).
CREATE TABLE provider_exchanges (
    id                    TEXT    NOT NULL PRIMARY KEY,
    org_id                TEXT    NOT NULL,
    installation_id       TEXT    NOT NULL,
    integration_id        TEXT    NOT NULL,
    message_id            TEXT,
    kind                  TEXT    NOT NULL,
    method                TEXT    NOT NULL,
    url                   TEXT    NOT NULL,
    request_headers_json  TEXT    NOT NULL,
    request_body          TEXT    NOT NULL,
    status                INTEGER NOT NULL,
    response_headers_json TEXT    NOT NULL,
    response_body         TEXT    NOT NULL,
    started_at            INTEGER NOT NULL,
    duration_ms           REAL    NOT NULL,
    error                 TEXT    NOT NULL
);
CREATE INDEX provider_exchanges_by_message ON provider_exchanges (message_id, started_at)
    WHERE message_id IS NOT NULL;
CREATE INDEX provider_exchanges_by_started ON provider_exchanges (started_at, id);

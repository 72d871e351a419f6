-- Media (docs/media.md). An event's files as the gateway kept them: a JSON list of objects
-- (original_url, media_id, content_type, size, sha256, error); '[]' for events without files.
ALTER TABLE events ADD COLUMN media_json TEXT NOT NULL DEFAULT '[]';
-- A stored file; its bytes are in the blob store under blob_key, never here.
CREATE TABLE media (
    id              TEXT    NOT NULL PRIMARY KEY,
    org_id          TEXT    NOT NULL,
    installation_id TEXT    NOT NULL,
    integration_id  TEXT    NOT NULL,
    origin          TEXT    NOT NULL,
    blob_key        TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX media_by_created ON media (created_at, id);
-- An inbound event waiting for its files: written with its webhook, released as an event when
-- they are kept or release_by passes. progress_json: what is known of each file so far.
CREATE TABLE media_holds (
    id              TEXT    NOT NULL PRIMARY KEY,
    event_json      TEXT    NOT NULL,
    progress_json   TEXT    NOT NULL,
    held_at         INTEGER NOT NULL,
    release_by      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER
);
CREATE INDEX media_holds_due ON media_holds (next_attempt_at, id);

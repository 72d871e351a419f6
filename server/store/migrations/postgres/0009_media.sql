-- Media (docs/media.md). An event's files as the gateway kept them: a JSON list of objects
-- (original_url, media_id, content_type, size, sha256, error); '[]' for events without files.
ALTER TABLE events ADD COLUMN media_json text NOT NULL DEFAULT '[]';
-- A stored file; its bytes are in the blob store under blob_key, never here. Identifiers use the
-- "C" collation (sorted by code point, as in SQLite: see 0001).
CREATE TABLE media (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    org_id          text COLLATE "C" NOT NULL,
    installation_id text COLLATE "C" NOT NULL,
    integration_id  text COLLATE "C" NOT NULL,
    origin          text             NOT NULL,
    blob_key        text             NOT NULL,
    content_type    text             NOT NULL,
    size            bigint           NOT NULL,
    sha256          text             NOT NULL,
    source          text             NOT NULL,
    created_at      timestamptz      NOT NULL
);
CREATE INDEX media_by_created ON media (created_at, id);
-- An inbound event waiting for its files: written with its webhook, released as an event when
-- they are kept or release_by passes. progress_json: what is known of each file so far. A lease
-- (lease_owner until lease_until) lets one process at a time, on any replica, work on it.
CREATE TABLE media_holds (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    event_json      text             NOT NULL,
    progress_json   text             NOT NULL,
    held_at         timestamptz      NOT NULL,
    release_by      timestamptz      NOT NULL,
    next_attempt_at timestamptz      NOT NULL,
    attempts        integer          NOT NULL DEFAULT 0,
    lease_owner     text COLLATE "C",
    lease_until     timestamptz
);
CREATE INDEX media_holds_due ON media_holds (next_attempt_at, id);

-- The send queue (docs/delivery.md): every message is recorded first and moves queued →
-- sending → sent / failed (or cancelled). A queued message waits until next_attempt_at (its
-- send_at, or a retry's time); a sending one is leased to lease_owner until lease_until. A
-- message of a conversation (installation, from, to) leaves only when no earlier ordered one
-- of it is queued or sending. attempt_log_json lists its attempts; notify asks for its outcome
-- as an event (its caller was replied before the outcome was known).
ALTER TABLE messages ADD COLUMN encoding TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN segments INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN send_at INTEGER;
ALTER TABLE messages ADD COLUMN next_attempt_at INTEGER;
ALTER TABLE messages ADD COLUMN ordered INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN notify INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN lease_owner TEXT;
ALTER TABLE messages ADD COLUMN lease_until INTEGER;
ALTER TABLE messages ADD COLUMN attempt_log_json TEXT;
-- What the send needs besides the columns above (extension, domain, files…), as JSON.
ALTER TABLE messages ADD COLUMN request_json TEXT;
CREATE INDEX messages_queued ON messages (next_attempt_at, created_at, id)
    WHERE state = 'queued';
-- One index of the messages in flight serves the conversation rule, the queue cap's count and the
-- expired leases (each query names the index's condition), so that a message sent at once adds
-- and removes one entry, not three.
CREATE INDEX messages_in_flight
    ON messages (state, installation_id, from_number, to_number, created_at)
    WHERE state IN ('queued', 'sending');
CREATE INDEX messages_by_created ON messages (created_at, id);
-- Each rate's theoretical arrival time (seconds since the epoch): docs/delivery.md, "Limits".
CREATE TABLE rate_slots (
    key TEXT NOT NULL PRIMARY KEY,
    tat REAL NOT NULL
);
-- The installation's send limits, as JSON the service reads ('' when it has none).
ALTER TABLE installations ADD COLUMN send_limits_json TEXT NOT NULL DEFAULT '';
-- Recipients who opted out of a sender of an installation (docs/delivery.md, "Opt-outs").
CREATE TABLE opt_outs (
    installation_id TEXT    NOT NULL,
    from_number     TEXT    NOT NULL,
    to_number       TEXT    NOT NULL,
    org_id          TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (installation_id, from_number, to_number)
);
CREATE INDEX opt_outs_by_created ON opt_outs (created_at);

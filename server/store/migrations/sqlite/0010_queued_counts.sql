-- How many messages each installation has queued, kept by triggers in the transaction that moves a
-- message, so that the queue cap (docs/delivery.md, "Backpressure") is one lookup: counting the
-- queue at every enqueue cost as much as the queue is long.
CREATE TABLE queued_counts (
    installation_id TEXT    NOT NULL PRIMARY KEY,
    queued          INTEGER NOT NULL
);
INSERT INTO queued_counts (installation_id, queued)
    SELECT installation_id, COUNT(*) FROM messages WHERE state = 'queued' GROUP BY installation_id;
CREATE TRIGGER messages_queued_inserted AFTER INSERT ON messages WHEN new.state = 'queued'
BEGIN
    INSERT INTO queued_counts (installation_id, queued) VALUES (new.installation_id, 1)
        ON CONFLICT (installation_id) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER messages_queued_entered AFTER UPDATE OF state ON messages
    WHEN new.state = 'queued' AND old.state <> 'queued'
BEGIN
    INSERT INTO queued_counts (installation_id, queued) VALUES (new.installation_id, 1)
        ON CONFLICT (installation_id) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER messages_queued_left AFTER UPDATE OF state ON messages
    WHEN old.state = 'queued' AND new.state <> 'queued'
BEGIN
    UPDATE queued_counts SET queued = queued - 1 WHERE installation_id = old.installation_id;
END;
CREATE TRIGGER messages_queued_deleted AFTER DELETE ON messages WHEN old.state = 'queued'
BEGIN
    UPDATE queued_counts SET queued = queued - 1 WHERE installation_id = old.installation_id;
END;

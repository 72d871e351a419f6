-- A send of several requests (docs/format.md, "Several requests per send"): every request's
-- provider id in order, as a JSON list (NULL for a send of one request, whose id is
-- provider_message_id), and one row per part with a provider id, so that a receipt for any part
-- finds its message and the message's state follows its parts' (server/store/_transitions.py).
ALTER TABLE messages ADD COLUMN provider_message_ids_json text;
CREATE TABLE message_parts (
    message_id          text COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    part_index          integer          NOT NULL,
    integration_id      text COLLATE "C" NOT NULL,
    provider_message_id text COLLATE "C" NOT NULL,
    state               text             NOT NULL,
    PRIMARY KEY (message_id, part_index)
);
CREATE INDEX message_parts_by_provider_id ON message_parts (integration_id, provider_message_id);

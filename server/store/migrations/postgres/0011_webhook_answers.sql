-- Webhook requests kept as the provider exchange log keeps a call (docs/operations.md, "Webhook
-- requests"): what the gateway answered (status, body capped) and how long it took, the store
-- write excluded. Rows from before have 0, '' and 0.
ALTER TABLE webhook_requests ADD COLUMN answer_status integer NOT NULL DEFAULT 0;
ALTER TABLE webhook_requests ADD COLUMN answer_body text NOT NULL DEFAULT '';
ALTER TABLE webhook_requests ADD COLUMN duration_ms double precision NOT NULL DEFAULT 0;

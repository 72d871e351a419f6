-- Costs that do not grow with the store (issue 20): every listing reads its page from an index
-- whose order is the listing's own (created_at, then id), after the key of the previous page,
-- instead of sorting the table and skipping an offset; and a filtered event read seeks each
-- wanted type (within an organisation when one is named) in cursor order instead of walking
-- the log until enough rows match (the store's read_events merges the types' index ranges).
DROP INDEX installations_by_org;
DROP INDEX installations_by_integration;
CREATE INDEX installations_by_org ON installations (org_id, created_at, id);
CREATE INDEX installations_by_integration ON installations (integration_id, created_at, id);
CREATE INDEX installations_by_created ON installations (created_at, id);
CREATE INDEX messages_by_org ON messages (org_id, created_at, id);
CREATE INDEX messages_by_installation ON messages (installation_id, created_at, id);
DROP INDEX webhook_requests_by_outcome;
CREATE INDEX webhook_requests_by_received ON webhook_requests (received_at, id);
CREATE INDEX webhook_requests_by_outcome ON webhook_requests (outcome, received_at, id);
CREATE INDEX events_by_type ON events (type, cursor);
CREATE INDEX events_by_org_type ON events (org_id, type, cursor);

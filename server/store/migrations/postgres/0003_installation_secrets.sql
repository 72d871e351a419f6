-- Values kept per installation beside its record, each written on its own (so a token refresh
-- never races with an operator's update of the installation): OAuth tokens (sealed by the
-- service before they arrive) and the installation's authorization state.
CREATE TABLE installation_secrets (
    installation_id TEXT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (installation_id, name)
);

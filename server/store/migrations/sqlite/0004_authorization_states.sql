-- OAuth2 authorization-code flows in progress (single-use states), shared by every replica:
-- the provider may send the admin back through any of them.
CREATE TABLE authorization_states (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX authorization_states_by_expiry ON authorization_states (expires_at);

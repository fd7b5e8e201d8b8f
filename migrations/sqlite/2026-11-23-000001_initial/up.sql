-- Ids are UUIDv7 strings and timestamps are UTC set by the service, so the
-- same queries run on PostgreSQL and SQLite.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE, -- normalised: trimmed, lower-case
    name          TEXT,
    password_hash TEXT NOT NULL,        -- argon2id PHC string
    roles         TEXT NOT NULL,        -- JSON array of role names
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    ended_at     TIMESTAMP,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

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

-- A login: the `sid` of its access tokens and the family of its refresh
-- tokens. Live while not ended, used within the idle timeout (last_seen_at)
-- and before its absolute end (expires_at).
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    ended_at     TIMESTAMP,
    end_reason   TEXT,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- Every refresh token a session was given, by SHA-256 (base64url) only.
-- A spent token keeps its row so that presenting it again is recognised as
-- reuse; successor_sealed is its successor encrypted under a key derived
-- from the spent token itself, so a concurrent refresh within the grace
-- window gets the same successor and only its holder can read it.
CREATE TABLE refresh_tokens (
    token_hash       TEXT PRIMARY KEY,
    session_id       TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at        TIMESTAMP NOT NULL,
    spent_at         TIMESTAMP,
    successor_sealed TEXT
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- Who did what to which account, session or client, from where, and how
-- it went.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    occurred_at TIMESTAMP NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    actor_id    TEXT,                   -- who acted, when not the user
    user_id     TEXT,
    session_id  TEXT,
    client_id   TEXT,
    ip          TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_user_id ON audit_events (user_id, occurred_at);

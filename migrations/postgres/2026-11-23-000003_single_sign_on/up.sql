-- Browser sign-in for OpenID Connect: the SSO session a cookie points at,
-- sign-ins in progress, authorization codes and remembered consents.

-- The SSO session: a browser that signed in. The cookie holds a random
-- value; only its SHA-256 is stored.
CREATE TABLE browser_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time    TIMESTAMP NOT NULL,    -- when the user last entered the password
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    ended_at     TIMESTAMP
);
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);

-- An authorization request waiting for the user to sign in or consent.
-- Tied to the browser that started it (a cookie, stored hashed) and
-- carrying the CSRF token its form must return (stored hashed).
CREATE TABLE authorization_requests (
    id           TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    csrf_hash    TEXT NOT NULL,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    request      TEXT NOT NULL,         -- the validated request, as JSON
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);
CREATE INDEX authorization_requests_browser ON authorization_requests (browser_hash, client_id);
CREATE INDEX authorization_requests_expires_at ON authorization_requests (expires_at);

-- Authorization codes, by SHA-256 only. used_at marks a redeemed code, so a
-- second use is recognised; session_id is the token session it started,
-- revoked when that happens.
CREATE TABLE authorization_codes (
    code_hash          TEXT PRIMARY KEY,
    client_id          TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    browser_session_id TEXT NOT NULL,
    redirect_uri       TEXT NOT NULL,
    scope              TEXT NOT NULL,
    nonce              TEXT,
    code_challenge     TEXT,            -- PKCE S256
    auth_time          TIMESTAMP NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    used_at            TIMESTAMP,
    session_id         TEXT
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

-- Scopes a user granted a client, so the consent page is shown once.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Token sessions started through the browser belong to its SSO session, so
-- signing out there ends them too.
ALTER TABLE sessions ADD COLUMN browser_session_id TEXT;
CREATE INDEX sessions_browser_session_id ON sessions (browser_session_id);

-- Where a client may send the browser after RP-initiated logout.
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';

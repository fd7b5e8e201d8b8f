-- Account e-mail: whether the address is verified, single-use links sent by
-- e-mail (password reset, verification), and the outbox they leave through.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- A link's token is 256 random bits; only its SHA-256 is stored. Issuing a
-- new one of a purpose deletes the user's others of that purpose; using one
-- deletes them all.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- Mail waiting to be sent, written in the transaction of the change that
-- sends it. A sender claims a row by moving next_attempt_at forward, so two
-- instances never send one row at once; sent_at is set once the SMTP server
-- took it. `kind` says what it is. A `password_reset_request` row is a reset
-- asked for an address, written alike whether or not it has an account; the
-- sender prepares it into a message (or drops it) in the background, so the
-- request costs the same either way. request_ip is where it came from.
CREATE TABLE email_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    sent_at         TIMESTAMP,
    request_ip      TEXT
);
CREATE INDEX email_outbox_due ON email_outbox (sent_at, next_attempt_at);
CREATE INDEX email_outbox_created_at ON email_outbox (created_at);

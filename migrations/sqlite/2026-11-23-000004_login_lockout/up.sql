-- Consecutive failed logins per email address — known or not, so a lockout
-- tells nothing about whether an account exists. The address is stored as
-- a SHA-256 digest only.
CREATE TABLE login_failures (
    email_key    TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until TIMESTAMP,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_updated_at ON login_failures (updated_at);

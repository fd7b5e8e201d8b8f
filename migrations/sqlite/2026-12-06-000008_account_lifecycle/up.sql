-- Account lifecycle: an administrator can ask a user to choose a new
-- password at their next sign-in; an invited account has no password yet
-- (password_hash is empty until the invitation is accepted); an address
-- change waits, in its link's row, for the new address to be verified. A
-- message carrying a link is not sent once the link has expired.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE account_tokens ADD COLUMN new_email TEXT;
ALTER TABLE email_outbox ADD COLUMN expires_at TIMESTAMP;

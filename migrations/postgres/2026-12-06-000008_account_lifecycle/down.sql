ALTER TABLE email_outbox DROP COLUMN expires_at;
ALTER TABLE account_tokens DROP COLUMN new_email;
ALTER TABLE users DROP COLUMN must_change_password;

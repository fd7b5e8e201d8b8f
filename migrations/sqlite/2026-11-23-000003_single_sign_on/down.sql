ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
DROP INDEX sessions_browser_session_id;
ALTER TABLE sessions DROP COLUMN browser_session_id;
DROP TABLE consents;
DROP TABLE authorization_codes;
DROP TABLE authorization_requests;
DROP TABLE browser_sessions;

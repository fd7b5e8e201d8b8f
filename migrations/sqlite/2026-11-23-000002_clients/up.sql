-- OAuth clients. List-valued fields are JSON arrays of strings.
CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT,                 -- SHA-256 of the secret; NULL for public clients
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    audiences     TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    first_party   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL
);

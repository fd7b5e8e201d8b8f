-- RFC 8707 resources asked for in the authorization request, as a JSON
-- array: the code's tokens are for those (or fewer).
ALTER TABLE authorization_codes ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';

-- Scopes now gate Tessera's own API. Live sessions of the built-in login
-- client (the one client not in the registry) get the account scope, and
-- administrators' the admin scope, as a login would now give them, so
-- their refreshed tokens keep working.
UPDATE sessions SET scope = TRIM(scope || ' tessera:account')
 WHERE ended_at IS NULL AND client_id NOT IN (SELECT id FROM clients);
UPDATE sessions SET scope = scope || ' tessera:admin'
 WHERE ended_at IS NULL AND client_id NOT IN (SELECT id FROM clients)
   AND user_id IN (SELECT id FROM users WHERE roles LIKE '%"admin"%');

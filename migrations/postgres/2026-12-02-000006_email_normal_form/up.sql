-- Email addresses are now kept in their normal form (NFKC, lower case, the
-- domain in IDNA ASCII). SQL can't compute it: applying this migration
-- makes the service rewrite the stored addresses once, in Rust
-- (accounts::normalise_stored_addresses, called from startup::migrate).
SELECT 1;

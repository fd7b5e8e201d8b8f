//! Random secrets handed to clients and browsers (refresh tokens, client
//! secrets, authorization codes, cookies) and the form they are stored in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 bits from the OS CSPRNG, base64url: 43 characters.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `s` has the shape of a [`random_token`]; anything else can't
/// match a stored hash and needs no lookup.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored form of a high-entropy secret: SHA-256, base64url. A fast
/// hash is right here — there is no dictionary to try against 256 bits.
pub fn stored_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

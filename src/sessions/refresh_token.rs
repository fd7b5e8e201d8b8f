//! Refresh tokens: 256 random bits, base64url, nothing inside to parse.
//! Only their SHA-256 is stored.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Characters of a base64url-encoded 32-byte token.
const ENCODED_LEN: usize = 43;

/// A refresh token as the client holds it. No Debug: it is a secret.
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new token from the OS CSPRNG.
    pub fn generate() -> RefreshToken {
        RefreshToken(crate::secrets::random_token())
    }

    /// A token presented by a client, if it has the shape of one of ours;
    /// anything else can't match a stored hash and is refused without a
    /// database lookup.
    pub fn parse(presented: &str) -> Option<RefreshToken> {
        let ok = presented.len() == ENCODED_LEN
            && URL_SAFE_NO_PAD
                .decode(presented)
                .is_ok_and(|b| b.len() == 32);
        ok.then(|| RefreshToken(presented.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: SHA-256, base64url.
    pub fn hash(&self) -> String {
        crate::secrets::stored_hash(&self.0)
    }

    /// A key only the holder of this token can derive: the stored hash
    /// doesn't reveal it (a different, domain-separated digest).
    #[allow(
        clippy::expect_used,
        reason = "a SHA-256 digest is the 32 bytes AES-256 takes"
    )]
    fn sealing_key(&self) -> LessSafeKey {
        let mut digest = Sha256::new();
        digest.update(b"tessera refresh-token successor v1\0");
        digest.update(self.0.as_bytes());
        let key = UnboundKey::new(&AES_256_GCM, &digest.finalize()).expect("32-byte key");
        LessSafeKey::new(key)
    }

    /// Encrypts `successor` under this token, for the grace window.
    #[allow(
        clippy::expect_used,
        reason = "sealing fails only for messages over AES-GCM's limit; ours are 43 bytes"
    )]
    pub fn seal(&self, successor: &RefreshToken) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = successor.0.as_bytes().to_vec();
        self.sealing_key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .expect("AES-GCM sealing of a short message");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The successor sealed under this token, if `sealed` is one.
    pub fn open(&self, sealed: &str) -> Option<RefreshToken> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .sealing_key()
            .open_in_place(nonce, Aad::empty(), &mut in_out)
            .ok()?;
        RefreshToken::parse(std::str::from_utf8(plain).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_shaped() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), ENCODED_LEN);
        assert!(RefreshToken::parse(a.expose()).is_some());
        assert!(RefreshToken::parse("short").is_none());
        assert!(RefreshToken::parse(&"x".repeat(10_000)).is_none());
        assert!(RefreshToken::parse(&"!".repeat(ENCODED_LEN)).is_none());
        assert_ne!(a.hash(), a.expose());
    }

    #[test]
    fn only_the_spent_token_opens_its_successor() {
        let spent = RefreshToken::generate();
        let successor = RefreshToken::generate();
        let sealed = spent.seal(&successor);
        assert!(!sealed.contains(successor.expose()));
        assert_eq!(spent.open(&sealed).unwrap().expose(), successor.expose());
        assert!(RefreshToken::generate().open(&sealed).is_none());
        assert!(spent.open("garbage").is_none());
    }
}

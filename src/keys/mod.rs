//! Signing keys: the RSA private keys in the keys folder, each parsed once
//! when first read (a reused aws-lc key signs in 0.25–0.7 ms; jsonwebtoken's
//! stock provider re-parses the key on every token and takes ≈ 1.2 ms), the
//! rotation schedule that says which one signs ([`schedule`]), and the JWKS
//! that publishes their public halves ([`KeyRing`]).
//!
//! The `rsa` crate generates, parses and validates key files and gives the
//! JWK `n`/`e`; it never signs (RUSTSEC-2023-0071). aws-lc signs.

pub mod files;
mod ring;
pub mod schedule;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::clock::{Clock, system_clock};
pub use files::KeyFile;
pub use ring::{KeyListing, KeyRing, KeyView};
pub use schedule::{KeyPolicy, KeyState};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {reason}")]
    Unusable { path: String, reason: String },
    #[error("keys folder {path}: {reason}")]
    Folder { path: String, reason: String },
    #[error("{0} already exists")]
    Exists(String),
    #[error("signing failed")]
    Sign,
    #[error("claims could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The public half of a key as a JWK (RFC 7517), as published in the JWKS.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// One private key, parsed for signing.
pub struct SigningKey {
    kid: String,
    created_at: DateTime<Utc>,
    key_pair: RsaKeyPair,
    jwk: PublicJwk,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 or PKCS#1 PEM RSA private key of at least 2048 bits.
    pub fn from_pem(pem: &str, created_at: DateTime<Utc>) -> Result<SigningKey, String> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| "not an RSA private key in PKCS#8 or PKCS#1 PEM".to_owned())?;
        Self::from_rsa(&key, created_at)
    }

    fn from_rsa(key: &rsa::RsaPrivateKey, created_at: DateTime<Utc>) -> Result<SigningKey, String> {
        let bits = key.size() * 8;
        if bits < 2048 {
            return Err(format!(
                "RSA key of {bits} bits; at least 2048 are required"
            ));
        }
        key.validate()
            .map_err(|e| format!("invalid RSA key: {e}"))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| format!("cannot encode key: {e}"))?;
        let key_pair = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| format!("aws-lc rejected the key: {e}"))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = thumbprint(&n, &e);
        Ok(SigningKey {
            jwk: PublicJwk {
                kty: "RSA".into(),
                use_: "sig".into(),
                alg: "RS256".into(),
                kid: kid.clone(),
                n,
                e,
            },
            kid,
            created_at,
            key_pair,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Signs a compact JWS with RS256: base64url(header).base64url(claims).sig.
    /// Byte-identical to `jsonwebtoken::encode` (PKCS#1 v1.5 is
    /// deterministic), without re-parsing the key for each token.
    pub fn sign_jws<T: Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &T,
    ) -> Result<String, KeyError> {
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError::Sign)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// RFC 7638 JWK thumbprint of an RSA key: the required members in
/// lexicographic order, no whitespace, SHA-256, base64url. Every instance
/// computes the same kid from the key alone.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The JWKS document, rendered once, with its ETag.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub body: Arc<[u8]>,
    pub etag: String,
}

#[allow(
    clippy::expect_used,
    reason = "a document of strings always serialises"
)]
fn render_jwks(keys: &[Arc<SigningKey>]) -> Jwks {
    #[derive(Serialize)]
    struct Document<'a> {
        keys: Vec<&'a PublicJwk>,
    }
    let body = serde_json::to_vec(&Document {
        keys: keys.iter().map(|k| &k.jwk).collect(),
    })
    .expect("a JWKS of strings always serialises");
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
    Jwks {
        body: body.into(),
        etag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn signature_is_byte_identical_to_jsonwebtoken() {
        let pem = include_str!("../../tests/fixtures/signing-key.pem");
        let key = SigningKey::from_pem(pem, Utc::now()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        let claims = serde_json::json!({"sub": "u1", "exp": 2_000_000_000, "roles": ["a"]});
        let ours = key.sign_jws(&header, &claims).unwrap();
        let stock = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(ours, stock);
    }

    #[test]
    fn small_keys_are_refused() {
        let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let pem = small.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let err = SigningKey::from_pem(&pem, Utc::now()).unwrap_err();
        assert!(err.contains("1024 bits"), "{err}");
    }
}

//! Verification of a token whose key is cached: the per-request cost a
//! sibling service pays.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use tessera_verifier::{KeySet, Verifier};

fn bench(c: &mut Criterion) {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let der = key.to_pkcs1_der().unwrap();
    let mut keys = KeySet::default();
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    keys.insert_rsa("k1".into(), &n, &e).unwrap();
    let verifier = Verifier::builder("https://auth.example.com")
        .audience("orders-api")
        .with_keys(keys);

    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("k1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://auth.example.com", "sub": "0193a0d2-5f7e-7c39-9d1a-4b7e2f0c9a11",
        "aud": "orders-api", "exp": now + 3600, "iat": now, "nbf": now,
        "jti": "0193a0d2-5f7e-7c39-9d1a-4b7e2f0c9a12", "client_id": "tessera",
        "scope": "profile email", "roles": ["admin"], "sid": "0193a0d2-5f7e-7c39-9d1a-4b7e2f0c9a13",
    });
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(der.as_bytes())).unwrap();
    assert!(verifier.verify_cached(&token).is_ok());

    c.bench_function("verify_cached (RS256, 2048-bit, cached key)", |b| {
        b.iter(|| {
            verifier
                .verify_cached(std::hint::black_box(&token))
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

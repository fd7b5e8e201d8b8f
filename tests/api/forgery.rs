//! Tokens that must be refused, made the way an attacker would. Every
//! verifier of Tessera tokens (Tessera's own routes, tessera-verifier in a
//! sibling service) is tested against the same set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::fixture_path;

pub fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `claims` RS256 with `pem` under `header` (independent of Tessera's
/// own signer).
pub fn sign(header: Header, claims: &Value, pem: &str) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub fn at_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    header
}

/// Forgeries of `token`, a valid token signed with `ours` (the PEM of the
/// signing key), each named for what is wrong with it.
pub fn forged_tokens(token: &str, ours: &str) -> Vec<(&'static str, String)> {
    let header = segment(token, 0);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let claims = segment(token, 1);
    let other = std::fs::read_to_string(fixture_path("other-key.pem")).unwrap();
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone().into_bytes();
    let mut flipped = sig.clone();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(flipped).unwrap();
    cases.push(("tampered signature", parts.join(".")));
    let admin_claims = with(json!({"roles": ["admin"]}));
    cases.push((
        "tampered claims",
        format!(
            "{}.{}.{}",
            b64(&header),
            b64(&admin_claims),
            String::from_utf8(sig).unwrap()
        ),
    ));
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
            b64(&admin_claims)
        ),
    ));
    let public_pem = {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(ours).unwrap();
        rsa::RsaPublicKey::from(&private)
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
    };
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.typ = Some("at+jwt".into());
    hs_header.kid = Some(kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &admin_claims,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    cases.push(("HS256 keyed with the public key", hs256));
    cases.push((
        "unknown kid",
        sign(at_header("not-a-published-kid"), &claims, &other),
    ));
    cases.push((
        "our kid, another key",
        sign(at_header(&kid), &claims, &other),
    ));
    cases.push((
        "no kid",
        sign(
            {
                let mut h = at_header(&kid);
                h.kid = None;
                h
            },
            &claims,
            ours,
        ),
    ));
    cases.push((
        "expired",
        sign(
            at_header(&kid),
            &with(json!({"exp": now() - 120, "iat": now() - 1000, "nbf": now() - 1000})),
            ours,
        ),
    ));
    cases.push((
        "not yet valid",
        sign(at_header(&kid), &with(json!({"nbf": now() + 600})), ours),
    ));
    cases.push((
        "wrong audience",
        sign(
            at_header(&kid),
            &with(json!({"aud": "some-other-api"})),
            ours,
        ),
    ));
    cases.push((
        "wrong issuer",
        sign(
            at_header(&kid),
            &with(json!({"iss": "https://evil.example"})),
            ours,
        ),
    ));
    cases.push((
        "missing exp",
        sign(at_header(&kid), &with(json!({"exp": null})), ours),
    ));
    cases.push((
        "string exp",
        sign(at_header(&kid), &with(json!({"exp": "9999999999"})), ours),
    ));
    cases.push((
        "typ JWT",
        sign(
            {
                let mut h = at_header(&kid);
                h.typ = Some("JWT".into());
                h
            },
            &claims,
            ours,
        ),
    ));
    cases.push((
        "no typ",
        sign(
            {
                let mut h = at_header(&kid);
                h.typ = None;
                h
            },
            &claims,
            ours,
        ),
    ));
    cases.push((
        "crit header",
        sign(
            {
                let mut h = at_header(&kid);
                h.crit = Some(vec!["exp".into()]);
                h
            },
            &claims,
            ours,
        ),
    ));
    cases.push((
        "jku header",
        sign(
            {
                let mut h = at_header(&kid);
                h.jku = Some("https://evil.example/jwks".into());
                h
            },
            &claims,
            ours,
        ),
    ));
    cases.push((
        "x5u header",
        sign(
            {
                let mut h = at_header(&kid);
                h.x5u = Some("https://evil.example/cert".into());
                h
            },
            &claims,
            ours,
        ),
    ));
    cases.push(("garbage", "not.a.token".into()));
    cases.push(("one segment", "abc".into()));
    cases.push(("empty", "".into()));
    cases.push(("four segments", "a.b.c.d".into()));

    cases
}

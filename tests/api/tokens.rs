use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{assert_problem, fixture_path};

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `claims` RS256 with `pem` under `header` (independent of Tessera's
/// own signer).
fn sign(header: Header, claims: &Value, pem: &str) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn at_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    header
}

both_backends! {
    async fn token_verifies_with_an_independent_jose_library(app: TestApp) {
        let token = app.access_token("turing@example.com").await;

        // Everything a sibling service needs: discovery, then the JWKS.
        let discovery: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
        assert_eq!(discovery["issuer"], app.address);
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        assert_eq!(jwks_uri, format!("{}/.well-known/jwks.json", app.address));
        let jwks = app.client.get(jwks_uri).send().await.unwrap().bytes().await.unwrap();

        // josekit (OpenSSL-backed), not jsonwebtoken, checks the signature.
        let jwk_set = josekit::jwk::JwkSet::from_bytes(&jwks).unwrap();
        let header = segment(&token, 0);
        let kid = header["kid"].as_str().unwrap();
        let jwk = jwk_set.get(kid);
        assert_eq!(jwk.len(), 1, "the token's kid is published");
        assert_eq!(jwk[0].algorithm(), Some("RS256"));
        assert_eq!(jwk[0].key_use(), Some("sig"));
        let verifier = josekit::jws::RS256.verifier_from_jwk(jwk[0]).unwrap();
        let (payload, jws_header) = josekit::jwt::decode_with_verifier(&token, &verifier).unwrap();
        assert_eq!(jws_header.token_type(), Some("at+jwt"));
        assert_eq!(jws_header.algorithm(), Some("RS256"));
        assert_eq!(payload.issuer(), Some(discovery["issuer"].as_str().unwrap()));
        assert_eq!(payload.audience(), Some(vec!["tessera"]));
        let claims = payload.claims_set();
        for claim in ["sub", "exp", "iat", "nbf", "jti", "client_id", "scope", "roles", "sid"] {
            assert!(claims.contains_key(claim), "missing {claim}: {claims:?}");
        }
        assert_eq!(claims["client_id"], "tessera");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
        // No personal data in an access token.
        assert!(!serde_json::to_string(claims).unwrap().contains("turing"));

        // A flipped bit in the signature fails the independent check too.
        let mut forged = token.clone().into_bytes();
        let i = forged.len() - 10;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(josekit::jwt::decode_with_verifier(&forged, &verifier).is_err());
    }

    async fn forged_and_invalid_tokens_are_refused(app: TestApp) {
        let token = app.access_token("mallory@example.com").await;
        let header = segment(&token, 0);
        let kid = header["kid"].as_str().unwrap().to_owned();
        let claims = segment(&token, 1);
        let ours = app.signing_key_pem();
        let other = std::fs::read_to_string(fixture_path("other-key.pem")).unwrap();
        let with = |changes: Value| {
            let mut c = claims.clone();
            for (k, v) in changes.as_object().unwrap() {
                if v.is_null() { c.as_object_mut().unwrap().remove(k); } else { c[k] = v.clone(); }
            }
            c
        };
        // Sanity: our own signer reproduces a token that is accepted.
        let resigned = sign(at_header(&kid), &with(json!({"jti": "resigned"})), &ours);
        assert_eq!(app.get_with_token("/v1/me", &resigned).await.status(), 200);

        let mut cases: Vec<(&str, String)> = Vec::new();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let sig = parts[2].clone().into_bytes();
        let mut flipped = sig.clone();
        flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
        parts[2] = String::from_utf8(flipped).unwrap();
        cases.push(("tampered signature", parts.join(".")));
        let admin_claims = with(json!({"roles": ["admin"]}));
        cases.push(("tampered claims", format!("{}.{}.{}", b64(&header), b64(&admin_claims), String::from_utf8(sig).unwrap())));
        cases.push(("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&admin_claims))));
        let public_pem = {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            let private = rsa::RsaPrivateKey::from_pkcs8_pem(&ours).unwrap();
            rsa::RsaPublicKey::from(&private).to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap()
        };
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.typ = Some("at+jwt".into());
        hs_header.kid = Some(kid.clone());
        let hs256 = jsonwebtoken::encode(&hs_header, &admin_claims, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap();
        cases.push(("HS256 keyed with the public key", hs256));
        cases.push(("unknown kid", sign(at_header("not-a-published-kid"), &claims, &other)));
        cases.push(("our kid, another key", sign(at_header(&kid), &claims, &other)));
        cases.push(("no kid", sign({ let mut h = at_header(&kid); h.kid = None; h }, &claims, &ours)));
        cases.push(("expired", sign(at_header(&kid), &with(json!({"exp": now() - 120, "iat": now() - 1000, "nbf": now() - 1000})), &ours)));
        cases.push(("not yet valid", sign(at_header(&kid), &with(json!({"nbf": now() + 600})), &ours)));
        cases.push(("wrong audience", sign(at_header(&kid), &with(json!({"aud": "some-other-api"})), &ours)));
        cases.push(("wrong issuer", sign(at_header(&kid), &with(json!({"iss": "https://evil.example"})), &ours)));
        cases.push(("missing exp", sign(at_header(&kid), &with(json!({"exp": null})), &ours)));
        cases.push(("string exp", sign(at_header(&kid), &with(json!({"exp": "9999999999"})), &ours)));
        cases.push(("typ JWT", sign({ let mut h = at_header(&kid); h.typ = Some("JWT".into()); h }, &claims, &ours)));
        cases.push(("no typ", sign({ let mut h = at_header(&kid); h.typ = None; h }, &claims, &ours)));
        cases.push(("crit header", sign({ let mut h = at_header(&kid); h.crit = Some(vec!["exp".into()]); h }, &claims, &ours)));
        cases.push(("jku header", sign({ let mut h = at_header(&kid); h.jku = Some("https://evil.example/jwks".into()); h }, &claims, &ours)));
        cases.push(("x5u header", sign({ let mut h = at_header(&kid); h.x5u = Some("https://evil.example/cert".into()); h }, &claims, &ours)));
        cases.push(("garbage", "not.a.token".into()));
        cases.push(("one segment", "abc".into()));
        cases.push(("empty", "".into()));
        cases.push(("four segments", "a.b.c.d".into()));

        for (name, forged) in cases {
            let response = app.get_with_token("/v1/me", &forged).await;
            assert_eq!(response.status(), 401, "{name} must be refused");
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            if !forged.is_empty() {
                assert!(
                    challenge.as_deref().is_some_and(|c| c.starts_with("Bearer") && c.contains("error=\"invalid_token\"")),
                    "{name}: {challenge:?}"
                );
                assert_problem(response, 401, "invalid_token").await;
            }
        }
    }
}

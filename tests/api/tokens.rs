use serde_json::{Value, json};

use crate::both_backends;
use crate::forgery::{at_header, forged_tokens, segment, sign};
use crate::helpers::assert_problem;

both_backends! {
    async fn token_verifies_with_an_independent_jose_library(app: TestApp) {
        let token = app.access_token("turing@example.com").await;

        // Everything a sibling service needs: discovery, then the JWKS.
        let discovery: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
        assert_eq!(discovery["issuer"], app.address);
        assert_eq!(discovery["token_endpoint"], format!("{}/oauth2/token", app.address));
        assert_eq!(discovery["revocation_endpoint"], format!("{}/oauth2/revoke", app.address));
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
        let ours = app.signing_key_pem();
        // Sanity: a token re-signed the way the forgeries are is accepted,
        // so each refusal below is for what the forgery changed.
        let kid = segment(&token, 0)["kid"].as_str().unwrap().to_owned();
        let mut claims = segment(&token, 1);
        claims["jti"] = json!("resigned");
        let resigned = sign(at_header(&kid), &claims, &ours);
        assert_eq!(app.get_with_token("/v1/me", &resigned).await.status(), 200);

        let cases = forged_tokens(&token, &ours);
        for (name, forged) in cases {
            if name == "wrong audience" {
                // Signed by us for another resource: valid, but not for
                // Tessera's API (403, README "What a token may do").
                let response = app.get_with_token("/v1/me", &forged).await;
                assert_problem(response, 403, "wrong_audience").await;
                continue;
            }
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

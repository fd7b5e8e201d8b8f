use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends! {
    async fn jwks_is_cacheable_with_etag(app: TestApp) {
        let response = app.get("/.well-known/jwks.json").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let jwks: Value = response.json().await.unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        for member in ["kty", "use", "alg", "kid", "n", "e"] {
            assert!(keys[0][member].is_string(), "{member}");
        }
        assert!(keys[0].get("d").is_none() && keys[0].get("p").is_none(), "no private members");

        let revalidate = |tag: String| app.client.get(app.url("/.well-known/jwks.json")).header("if-none-match", tag).send();
        let response = revalidate(etag.clone()).await.unwrap();
        assert_eq!(response.status(), 304);
        assert_eq!(response.headers()["etag"], etag.as_str());
        assert!(response.bytes().await.unwrap().is_empty());
        let response = revalidate("\"something-else\"".into()).await.unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn kid_is_the_rfc7638_thumbprint(app: TestApp) {
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        let key = &jwks["keys"][0];
        // Computed here independently of Tessera's code.
        use sha2::Digest;
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, key["e"].as_str().unwrap(), key["n"].as_str().unwrap());
        let digest = sha2::Sha256::digest(canonical.as_bytes());
        use base64::Engine;
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        assert_eq!(key["kid"], expected);
    }

    // An empty keys folder gets a new private key.
    async fn creates_key_on_first_start(backend: Backend) {
        let keys = tempfile::tempdir().unwrap();
        let dir = keys.path().join("fresh");
        let target = dir.clone();
        let Some(app) = TestApp::spawn_with(backend, |s| s.keys.dir = target).await else {
            return;
        };
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = std::fs::read_to_string(&files[0]).unwrap();
        assert!(pem.starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----")));
        // The new key signs, and nothing private is published.
        let token = app.access_token("key@example.com").await;
        assert_eq!(app.get_with_token("/v1/me", &token).await.status(), 200);
        let jwks = app
            .get("/.well-known/jwks.json")
            .await
            .text()
            .await
            .unwrap();
        assert!(!jwks.contains("PRIVATE") && !jwks.contains("\"d\""));
    }
}

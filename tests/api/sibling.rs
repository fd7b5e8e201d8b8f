//! The example sibling service with tessera-verifier: it verifies Tessera's
//! tokens from the JWKS alone, over HTTP and WebSocket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tessera_verifier::Verifier;
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest, protocol::frame::coding::CloseCode,
};

use crate::both_backends;
use crate::forgery::{at_header, forged_tokens, now, segment, sign};
use crate::helpers::{FIXTURE_KEY_NAME, TestApp};

/// The sibling, serving with a verifier that discovered `app` as issuer.
struct Sibling {
    address: String,
    verifier: Verifier,
    client: reqwest::Client,
}

impl Sibling {
    async fn spawn(app: &TestApp) -> Sibling {
        let verifier = Verifier::builder(&app.settings.issuer)
            .audience("tessera")
            .discover()
            .await
            .expect("the verifier discovers Tessera");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(tessera_sibling::run(listener, verifier.clone()).unwrap());
        Sibling {
            address,
            verifier,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("http://{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    fn ws_request(&self) -> tungstenite::handshake::client::Request {
        format!("ws://{}/ws", self.address)
            .into_client_request()
            .unwrap()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_with_header(sibling: &Sibling, token: &str) -> Result<Socket, tungstenite::Error> {
    let mut request = sibling.ws_request();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn next_text(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket is open")
            .expect("a frame");
        if let tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn refused_with(result: Result<Socket, tungstenite::Error>, status: u16) {
    match result {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), status),
        Err(other) => panic!("expected HTTP {status}, got {other}"),
        Ok(_) => panic!("expected HTTP {status}, the upgrade was accepted"),
    }
}

both_backends! {
    async fn sibling_routes_need_tokens_and_roles(app: TestApp) {
        let sibling = Sibling::spawn(&app).await;
        let user = app.access_token("ordinary@example.com").await;
        let admin = app.admin_token("chief@example.com").await;

        assert_eq!(sibling.get("/public", None).await.status(), 200);
        let response = sibling.get("/me", None).await;
        assert_eq!(response.status(), 401);
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

        let response = sibling.get("/me", Some(&user)).await;
        assert_eq!(response.status(), 200);
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["sub"], segment(&user, 1)["sub"]);

        let response = sibling.get("/admin", Some(&user)).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "insufficient_role");
        let response = sibling.get("/admin", Some(&admin)).await;
        assert_eq!(response.status(), 200);

        for (name, forged) in forged_tokens(&user, &app.signing_key_pem()) {
            let response = sibling.get("/me", Some(&forged)).await;
            assert_eq!(response.status(), 401, "{name} must be refused by the sibling");
        }
    }

    async fn websocket_checks_the_token_at_the_upgrade(app: TestApp) {
        let sibling = Sibling::spawn(&app).await;
        let alice = app.access_token("alice@example.com").await;
        let bob = app.access_token("bob@example.com").await;

        refused_with(tokio_tungstenite::connect_async(sibling.ws_request()).await.map(|(s, _)| s), 401);
        let forged = forged_tokens(&alice, &app.signing_key_pem());
        refused_with(connect_with_header(&sibling, &forged[0].1).await, 401);

        // Alice with a header; Bob the way a browser does it, as a subprotocol.
        let mut alice_socket = connect_with_header(&sibling, &alice).await.expect("alice is let in");
        let mut request = sibling.ws_request();
        request.headers_mut().insert("sec-websocket-protocol", format!("bearer, {bob}").parse().unwrap());
        let (mut bob_socket, response) = tokio_tungstenite::connect_async(request).await.expect("bob is let in");
        assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");

        // The sender is the token's subject, whatever the message claims.
        let spoof = json!({"from": "someone-else", "text": "hi"}).to_string();
        alice_socket.send(tungstenite::Message::Text(spoof.clone().into())).await.unwrap();
        for socket in [&mut alice_socket, &mut bob_socket] {
            let heard = next_text(socket).await;
            assert_eq!(heard["from"], segment(&alice, 1)["sub"]);
            assert_eq!(heard["text"], spoof);
        }
    }

    async fn websocket_is_closed_when_the_token_expires(app: TestApp) {
        let sibling = Sibling::spawn(&app).await;
        let token = app.access_token("brief@example.com").await;
        // The same token re-signed with Tessera's key, two seconds from expiry.
        let mut claims = segment(&token, 1);
        claims["exp"] = json!(now() + 2);
        let kid = segment(&token, 0)["kid"].as_str().unwrap().to_owned();
        let short_lived = sign(at_header(&kid), &claims, &app.signing_key_pem());

        let mut socket = connect_with_header(&sibling, &short_lived).await.expect("let in while valid");
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(message) = socket.next().await {
                if let Ok(tungstenite::Message::Close(frame)) = message {
                    return frame;
                }
            }
            None
        })
        .await
        .expect("closed within 10 s");
        let frame = closed.expect("a close frame with a reason");
        assert_eq!(frame.code, CloseCode::Policy);
        assert_eq!(frame.reason.as_str(), "token expired");
    }

    async fn verifier_follows_a_new_key_and_survives_an_outage(app: TestApp) {
        let sibling = Sibling::spawn(&app).await;
        let before = app.access_token("rotate@example.com").await;
        assert_eq!(sibling.verifier.key_count(), 1);

        // Tessera gains a newer key, made to sign at once (an emergency
        // rotation), and restarts; it signs with the new key.
        let name = format!("tessera-{}-now.pem", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
        crate::helpers::install_key(&app.settings.keys.dir, "other-key.pem", &name);
        assert!(app.settings.keys.dir.join(FIXTURE_KEY_NAME).exists());
        app.restart().await;
        let body: Value = app.login("rotate@example.com", crate::helpers::PASSWORD).await.json().await.unwrap();
        let after = body["access_token"].as_str().unwrap().to_owned();
        assert_ne!(segment(&after, 0)["kid"], segment(&before, 0)["kid"]);

        // The unknown kid makes the sibling refetch the JWKS once.
        assert_eq!(sibling.get("/me", Some(&after)).await.status(), 200);
        assert_eq!(sibling.verifier.key_count(), 2);
        assert_eq!(sibling.get("/me", Some(&before)).await.status(), 200);

        // Tessera goes away; the sibling keeps verifying with its cached keys.
        app.stop().await;
        assert!(app.client.get(app.url("/healthz")).send().await.is_err(), "Tessera is down");
        assert_eq!(sibling.get("/me", Some(&after)).await.status(), 200);
        assert_eq!(sibling.get("/me", Some(&before)).await.status(), 200);
    }
}

both_backends! {
    async fn unknown_kids_cause_one_rate_limited_refetch(app: TestApp) {
        let sibling = Sibling::spawn(&app).await;
        let token = app.access_token("flood@example.com").await;
        let unknown_kid = forged_tokens(&token, &app.signing_key_pem())
            .into_iter()
            .find(|(name, _)| *name == "unknown kid")
            .unwrap()
            .1;
        assert_eq!(sibling.verifier.jwks_fetches(), 1, "the discovery fetch");
        // A burst of unknown kids at once: one refetch between them.
        let burst = (0..20).map(|_| sibling.verifier.verify(&unknown_kid));
        for result in futures_util::future::join_all(burst).await {
            assert!(result.is_err());
        }
        assert_eq!(sibling.verifier.jwks_fetches(), 2);
        // More within the refetch interval: none.
        for _ in 0..5 {
            assert_eq!(sibling.get("/me", Some(&unknown_kid)).await.status(), 401);
        }
        assert_eq!(sibling.verifier.jwks_fetches(), 2);
        // Valid tokens never fetch.
        assert_eq!(sibling.get("/me", Some(&token)).await.status(), 200);
        assert_eq!(sibling.verifier.jwks_fetches(), 2);
    }

    async fn keys_are_refreshed_in_the_background(app: TestApp) {
        let verifier = Verifier::builder(&app.settings.issuer)
            .audience("tessera")
            .cache_bounds(Duration::from_secs(1), Duration::from_secs(1))
            .discover()
            .await
            .unwrap();
        assert_eq!(verifier.jwks_fetches(), 1);
        // Tessera says max-age=300; the bounds hold it to 1 s, refreshed at
        // 80%: two more fetches come well within 10 s.
        let fetched = |at_least: u64| {
            let verifier = &verifier;
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while verifier.jwks_fetches() < at_least {
                    assert!(std::time::Instant::now() < deadline, "fetches: {}", verifier.jwks_fetches());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        fetched(3).await;
        // While Tessera is down the refreshes fail (each still counted as a
        // request) and the keys stay.
        app.stop().await;
        let before = verifier.jwks_fetches();
        fetched(before + 1).await;
        assert_eq!(verifier.key_count(), 1);
        let token_claims = verifier.verify_cached("not a token");
        assert!(token_claims.is_err());
    }
}

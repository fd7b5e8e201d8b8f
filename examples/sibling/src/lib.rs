//! An example sibling service: it trusts Tessera's tokens without calling
//! Tessera per request, through `tessera-verifier`.
//!
//! - `GET /public`: anyone.
//! - `GET /me`: any logged-in user (a valid access token).
//! - `GET /admin`: users with the `admin` role (403 for others).
//! - `GET /ws`: a chat room over WebSocket for logged-in users; each message
//!   is tagged with the sender's `sub` from the token, never from the
//!   message, and the connection is closed when the token expires.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{CloseCode, CloseReason, Message};
use serde_json::json;
use tessera_verifier::Verifier;
use tessera_verifier::actix::{Admin, AuthenticatedUser, BEARER_PROTOCOL, HasRole, WebSocketUser};
use tokio::sync::broadcast;

/// Longest chat message relayed; longer ones are dropped.
const MAX_MESSAGE_BYTES: usize = 4096;

/// The chat room: every connection hears every message.
#[derive(Clone)]
pub struct ChatRoom {
    sender: broadcast::Sender<String>,
}

impl Default for ChatRoom {
    fn default() -> Self {
        ChatRoom {
            sender: broadcast::channel(256).0,
        }
    }
}

/// Serves the sibling on `listener` until stopped.
pub fn run(listener: TcpListener, verifier: Verifier) -> std::io::Result<Server> {
    let room = web::Data::new(ChatRoom::default());
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .app_data(room.clone())
            .route("/public", web::get().to(public))
            .route("/me", web::get().to(me))
            .route("/admin", web::get().to(admin))
            .route("/ws", web::get().to(chat))
    })
    .workers(2)
    .listen(listener)?
    .run())
}

async fn public() -> HttpResponse {
    HttpResponse::Ok().json(json!({"message": "hello, anyone"}))
}

async fn me(user: AuthenticatedUser) -> HttpResponse {
    let claims = user.0;
    HttpResponse::Ok()
        .json(json!({"sub": claims.sub, "roles": claims.roles, "scope": claims.scope}))
}

async fn admin(admin: HasRole<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"message": "hello, admin", "sub": admin.0.sub}))
}

/// The token is checked at the upgrade (the extractor refuses it with 401
/// before any WebSocket exists); then the connection lives until the token
/// expires.
async fn chat(
    req: HttpRequest,
    body: web::Payload,
    user: WebSocketUser,
    room: web::Data<ChatRoom>,
) -> actix_web::Result<HttpResponse> {
    let protocols: &[&str] = match user.protocol {
        Some(_) => &[BEARER_PROTOCOL],
        None => &[],
    };
    let (response, session, messages) = actix_ws::handle_with_protocols(&req, body, protocols)?;
    // Subscribed before the 101 goes out, so the client hears every message
    // sent after its handshake completes.
    let heard = room.sender.subscribe();
    let expires_in = user.claims.expires_in();
    actix_web::rt::spawn(relay(
        session,
        messages,
        room.get_ref().clone(),
        heard,
        user.claims.sub,
        expires_in,
    ));
    Ok(response)
}

async fn relay(
    mut session: actix_ws::Session,
    mut messages: actix_ws::MessageStream,
    room: ChatRoom,
    mut heard: broadcast::Receiver<String>,
    sub: String,
    expires_in: Duration,
) {
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    let close = loop {
        tokio::select! {
            _ = &mut expiry => break Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("token expired".into()),
            }),
            incoming = messages.recv() => match incoming {
                Some(Ok(Message::Text(text))) if text.len() <= MAX_MESSAGE_BYTES => {
                    let tagged = json!({"from": sub, "text": text.to_string()}).to_string();
                    let _ = room.sender.send(tagged);
                }
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                Some(Ok(_)) => {} // binary, pongs, oversized text: ignored
            },
            outgoing = heard.recv() => match outgoing {
                Ok(line) => {
                    if session.text(line).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break None,
            },
        }
    };
    let _ = session.close(close).await;
}

//! actix-web integration: extractors that require a valid token
//! ([`AuthenticatedUser`]), a role ([`HasRole`]), or authenticate a WebSocket
//! upgrade ([`WebSocketUser`]). Register the verifier with
//! `App::new().app_data(verifier.clone())` (or as `web::Data<Verifier>`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};

use crate::{Claims, Error, Verifier};

/// The WebSocket subprotocol that marks a token in `Sec-WebSocket-Protocol`:
/// browsers can't set headers on a WebSocket, so they send
/// `new WebSocket(url, ["bearer", token])` and the server answers `bearer`.
pub const BEARER_PROTOCOL: &str = "bearer";

/// Why a request was refused; answers 401 with an RFC 6750 challenge, or
/// 403 for a missing role.
#[derive(Debug)]
pub enum Rejection {
    MissingToken,
    InvalidToken(String),
    MissingRole(&'static str),
    /// No `Verifier` was registered with the app: a programming error.
    NotConfigured,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::MissingToken => f.write_str("a Bearer token is required"),
            Rejection::InvalidToken(why) => f.write_str(why),
            Rejection::MissingRole(role) => write!(f, "the {role} role is required"),
            Rejection::NotConfigured => f.write_str("no Verifier registered with the app"),
        }
    }
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        match self {
            Rejection::MissingToken | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::MissingRole(_) => StatusCode::FORBIDDEN,
            Rejection::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (error, challenge) = match self {
            Rejection::MissingToken => ("invalid_request", r#"Bearer realm="api""#.to_owned()),
            Rejection::InvalidToken(why) => (
                "invalid_token",
                format!(
                    r#"Bearer realm="api", error="invalid_token", error_description="{}""#,
                    why.replace(['"', '\\'], "'")
                ),
            ),
            Rejection::MissingRole(_) => ("insufficient_role", String::new()),
            Rejection::NotConfigured => ("server_error", String::new()),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Ok(value) = HeaderValue::from_str(&challenge)
            && !challenge.is_empty()
        {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        response.json(serde_json::json!({"error": error, "error_description": self.to_string()}))
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Rejection::InvalidToken(e.to_string())
    }
}

fn verifier(req: &HttpRequest) -> Result<Verifier, Rejection> {
    req.app_data::<Verifier>()
        .cloned()
        .or_else(|| {
            req.app_data::<web::Data<Verifier>>()
                .map(|d| d.get_ref().clone())
        })
        .ok_or(Rejection::NotConfigured)
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(req: &HttpRequest) -> Result<Option<String>, Rejection> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Rejection::InvalidToken("malformed Authorization header".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Ok(None),
    }
}

/// The token a browser put after [`BEARER_PROTOCOL`] in `Sec-WebSocket-Protocol`.
fn protocol_token(req: &HttpRequest) -> Option<String> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let marker = offered.iter().position(|p| *p == BEARER_PROTOCOL)?;
    offered.get(marker + 1).map(|t| (*t).to_owned())
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, Rejection>>>>;

/// A request with a valid access token in its `Authorization` header.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub Claims);

impl FromRequest for AuthenticatedUser {
    type Error = Rejection;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = verifier(req).and_then(|v| Ok((v, bearer_token(req)?)));
        Box::pin(async move {
            let (verifier, token) = found?;
            let token = token.ok_or(Rejection::MissingToken)?;
            Ok(AuthenticatedUser(verifier.verify(&token).await?))
        })
    }
}

/// A role, named at the type level so handlers state what they require.
pub trait Role {
    const NAME: &'static str;
}

/// Tessera's built-in administrator role.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl Role for Admin {
    const NAME: &'static str = "admin";
}

/// A request with a valid token whose `roles` include `R`; 403 otherwise.
#[derive(Debug, Clone)]
pub struct HasRole<R: Role>(pub Claims, PhantomData<R>);

impl<R: Role + 'static> FromRequest for HasRole<R> {
    type Error = Rejection;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthenticatedUser::from_request(req, payload);
        Box::pin(async move {
            let AuthenticatedUser(claims) = user.await?;
            if !claims.has_role(R::NAME) {
                return Err(Rejection::MissingRole(R::NAME));
            }
            Ok(HasRole(claims, PhantomData))
        })
    }
}

/// A WebSocket upgrade request with a valid token, from the `Authorization`
/// header or, for browsers, from `Sec-WebSocket-Protocol: bearer, <token>`.
/// When the token came as a subprotocol, the handshake response must select
/// [`BEARER_PROTOCOL`] (e.g. `actix_ws::handle_with_protocols(&req, body,
/// &[BEARER_PROTOCOL])`). Close the connection when [`Claims::expires_in`]
/// runs out.
#[derive(Debug, Clone)]
pub struct WebSocketUser {
    pub claims: Claims,
    /// The subprotocol to select in the handshake, if the token came as one.
    pub protocol: Option<&'static str>,
}

impl FromRequest for WebSocketUser {
    type Error = Rejection;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = verifier(req).and_then(|v| {
            let token = match bearer_token(req)? {
                Some(token) => Some((token, None)),
                None => protocol_token(req).map(|t| (t, Some(BEARER_PROTOCOL))),
            };
            Ok((v, token))
        });
        Box::pin(async move {
            let (verifier, token) = found?;
            let (token, protocol) = token.ok_or(Rejection::MissingToken)?;
            let claims = verifier.verify(&token).await?;
            Ok(WebSocketUser { claims, protocol })
        })
    }
}

//! Bearer tokens on Tessera's own routes (RFC 6750), and what each kind of
//! route needs of them (README "What a token may do"):
//! - [`AccountBearer`]: `/v1/me*` and `/v1/auth/logout` — Tessera's
//!   audience, a user's token (with a session), the account scope;
//! - [`AdminBearer`]: `/v1/admin/*` — the same with the admin scope (the
//!   admin role is then checked in the database, see `admin::Admin`);
//! - [`UserinfoBearer`]: `/oauth2/userinfo` — any token of ours for any
//!   audience; userinfo itself needs `openid` and a user.
//!
//! A token whose session has ended is refused here at once; sibling
//! services, verifying offline, accept it until it expires.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{ApiError, AppState};
use crate::sessions;
use crate::tokens::ClaimIds;
use crate::tokens::{Claims, scopes};

/// A live user token for Tessera's account routes.
#[derive(Debug)]
pub struct AccountBearer(pub Claims);

/// A live user token with the admin scope, for `/v1/admin/*`.
#[derive(Debug)]
pub struct AdminBearer(pub Claims);

/// A live access token of ours, whatever its audience: for userinfo.
#[derive(Debug)]
pub struct UserinfoBearer(pub Claims);

/// What a route needs of a token.
#[derive(Clone, Copy)]
enum Need {
    /// Tessera's audience, a user's token and this scope.
    UserWithScope(&'static str),
    /// Any audience.
    AnyAudience,
}

type Checked<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

#[allow(
    clippy::expect_used,
    reason = "startup registers AppState before any route"
)]
fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered at start")
        .clone()
}

/// Verifies the token and what `need` asks of it without a database
/// lookup, then that its session is live.
fn checked(req: &HttpRequest, need: Need) -> Checked<Claims> {
    let state = state(req);
    let claims = verified_claims(req, &state, need);
    Box::pin(async move {
        let claims = claims?;
        if let Some(sid) = claims.session_id()
            && !sessions::is_live(&state.app.db, state.app.sessions, sid).await?
        {
            return Err(ApiError::invalid_token("the session has ended"));
        }
        Ok(claims)
    })
}

fn verified_claims(req: &HttpRequest, state: &AppState, need: Need) -> Result<Claims, ApiError> {
    let token = bearer_token(req.headers().get(header::AUTHORIZATION))?;
    match need {
        Need::AnyAudience => Ok(state.app.verifier.verify_any_audience(token)?),
        Need::UserWithScope(scope) => {
            // A valid token of ours for another resource may not do this
            // (403), rather than being no token at all (401).
            let claims = state.app.verifier.verify_any_audience(token)?;
            let own = &state.app.own_audiences.api;
            if !claims.aud.iter().any(|a| own.contains(a)) {
                return Err(ApiError::insufficient_scope(
                    "wrong_audience",
                    scope,
                    "the token is not for Tessera's API",
                ));
            }
            permits(&claims, scope)?;
            Ok(claims)
        }
    }
}

/// Whether a token for Tessera's audience may use a route needing
/// `scope`: only a user's token (one with a session — a client's own
/// token is never a user) that carries the scope.
fn permits(claims: &Claims, scope: &'static str) -> Result<(), ApiError> {
    if claims.sid.is_none() {
        return Err(ApiError::insufficient_scope(
            "user_token_required",
            scope,
            "this route is for users' tokens; a client's own token is not one",
        ));
    }
    if !claims.has_scope(scope) {
        return Err(ApiError::insufficient_scope(
            "insufficient_scope",
            scope,
            format!("the token lacks the {scope} scope"),
        ));
    }
    Ok(())
}

impl FromRequest for AccountBearer {
    type Error = ApiError;
    type Future = Checked<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = checked(req, Need::UserWithScope(scopes::ACCOUNT));
        Box::pin(async move { Ok(AccountBearer(claims.await?)) })
    }
}

impl FromRequest for AdminBearer {
    type Error = ApiError;
    type Future = Checked<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = checked(req, Need::UserWithScope(scopes::ADMIN));
        Box::pin(async move { Ok(AdminBearer(claims.await?)) })
    }
}

impl FromRequest for UserinfoBearer {
    type Error = ApiError;
    type Future = Checked<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = checked(req, Need::AnyAudience);
        Box::pin(async move { Ok(UserinfoBearer(claims.await?)) })
    }
}

/// The token of an `Authorization: Bearer` header value (RFC 6750 §2.1).
pub fn bearer_token(value: Option<&HeaderValue>) -> Result<&str, ApiError> {
    let value = value.ok_or(ApiError::missing_token(
        "an Authorization: Bearer token is required",
    ))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(ApiError::missing_token(
            "the Authorization scheme must be Bearer",
        )),
    }
}

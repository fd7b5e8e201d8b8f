use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{ApiError, AppState};
use crate::sessions;
use crate::tokens::Claims;

/// A request carrying a valid access token of ours (RFC 6750 header form)
/// whose session is still live: take it as a handler argument to require
/// authentication. A logout takes effect here at once; sibling services,
/// verifying offline, accept the token until it expires.
#[derive(Debug)]
pub struct Authenticated(pub Claims);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered at start")
            .clone();
        let claims = verified_claims(req, &state);
        Box::pin(async move {
            let claims = claims?;
            if let Some(sid) = &claims.sid
                && !sessions::is_live(&state.db, state.sessions, sid.clone()).await?
            {
                return Err(ApiError::invalid_token("the session has ended"));
            }
            Ok(Authenticated(claims))
        })
    }
}

fn verified_claims(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    let token = bearer_token(req.headers().get(header::AUTHORIZATION))?;
    Ok(state.verifier.verify(token)?)
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

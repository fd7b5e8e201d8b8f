use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

use super::{ApiError, AppState};
use crate::tokens::Claims;

/// A request carrying a valid access token of ours (RFC 6750 header form):
/// take it as a handler argument to require authentication.
#[derive(Debug)]
pub struct Authenticated(pub Claims);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered at start");
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::missing_token(
            "an Authorization: Bearer token is required",
        ))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(ApiError::missing_token(
                "the Authorization scheme must be Bearer",
            ));
        }
    };
    let claims = state.verifier.verify(token)?;
    Ok(Authenticated(claims))
}

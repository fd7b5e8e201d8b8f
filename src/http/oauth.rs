//! `/oauth2/*`: form-encoded requests as RFC 6749 and RFC 7009 say, errors as
//! RFC 6749 §5.2 JSON.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::error::OAuthApiError;
use super::{AppState, client_info};
use crate::oauth::{self, OAuthError, RefreshRequest};
use crate::sessions::{self, Ending, RefreshToken, end_reason};

/// The token endpoint's parameters. Unknown ones are ignored (RFC 6749
/// §3.2); a repeated one is refused by the form parser.
#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
}

pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, OAuthApiError> {
    let form = form.into_inner();
    let response = match form.grant_type.as_deref() {
        Some("refresh_token") => {
            let refresh_token = form
                .refresh_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?;
            let request = RefreshRequest {
                refresh_token,
                client_id: form.client_id,
                scope: form.scope,
            };
            oauth::refresh_grant(
                &state.db,
                state.sessions,
                state.issuance(),
                request,
                client_info(&req),
            )
            .await?
        }
        other => {
            return Err(
                OAuthError::UnsupportedGrantType(other.unwrap_or_default().to_owned()).into(),
            );
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    token: Option<String>,
    #[allow(dead_code)] // accepted per RFC 7009 §2.1; both kinds are tried
    token_type_hint: Option<String>,
}

/// RFC 7009: a refresh token ends its session; so does one of our access
/// tokens (the session behind it). Unknown tokens get 200 too.
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<RevokeForm>,
) -> Result<HttpResponse, OAuthApiError> {
    let token = form
        .into_inner()
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthApiError::invalid_request("token is required"))?;
    if let Some(refresh_token) = RefreshToken::parse(&token) {
        sessions::revoke_refresh_token(&state.db, refresh_token, client_info(&req)).await?;
    } else if let Ok(claims) = state.verifier.verify(&token)
        && let Some(sid) = claims.sid
    {
        sessions::end(
            &state.db,
            claims.sub,
            Ending::One(sid),
            end_reason::REVOKED,
            client_info(&req),
        )
        .await?;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Form bodies: bounded, and any way they can be wrong is `invalid_request`.
pub fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            use actix_web::error::UrlencodedError as E;
            let detail = match &err {
                E::ContentType => {
                    "the request body must be application/x-www-form-urlencoded".to_owned()
                }
                E::Overflow { .. } | E::UnknownLength => "the request body is too large".to_owned(),
                E::Parse(e) => format!("malformed form body: {e}"),
                other => format!("malformed form body: {other}"),
            };
            OAuthApiError::invalid_request(detail).into()
        })
}

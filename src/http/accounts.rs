use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Authenticated};
use crate::accounts::{self, AccountError, NewAccount};
use crate::sessions::{self, ClientInfo};
use crate::tokens::Grant;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    password: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// RFC 6749 §5.1 token response.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
}

pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let RegisterRequest {
        email,
        password,
        name,
    } = body.into_inner();
    let account = NewAccount::parse(&email, password, name, Vec::new())?;
    let user = accounts::register(&state.db, &state.hasher, account).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, "/v1/me"))
        .json(user))
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { email, password } = body.into_inner();
    let user = accounts::authenticate(&state.db, &state.hasher, &email, password).await?;
    let client_id = state.settings.login.client_id.clone();
    let session_id = sessions::start(
        &state.db,
        user.id.clone(),
        client_id.clone(),
        client_info(&req),
    )
    .await?;
    let scope = state.settings.login.scope.clone();
    let issued = state.issuer.issue(Grant {
        subject: user.id,
        client_id,
        audience: state.settings.tokens.audience.clone(),
        scope: scope.clone(),
        roles: user.roles,
        session_id: Some(session_id),
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope,
        }))
}

pub async fn me(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    match accounts::find_by_id(&state.db, auth.0.sub).await {
        Ok(user) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(user)),
        // The token is valid but its user is gone: the token is no good.
        Err(AccountError::NotFound) => {
            Err(ApiError::invalid_token("the token's user no longer exists"))
        }
        Err(e) => Err(e.into()),
    }
}

fn client_info(req: &HttpRequest) -> ClientInfo {
    ClientInfo {
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: req.peer_addr().map(|a| a.ip().to_string()),
    }
}

use super::throttle;
use crate::throttle::{Class, lockout};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, AppState, Authenticated, client_info};
use crate::accounts::{self, AccountError, NewAccount};
use crate::oauth::SessionGrant;
use crate::sessions::{self, Ending, end_reason};

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

pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
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

/// Checks the password, starts a session for the built-in first-party
/// client, and answers with an access token and a refresh token.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    if let Err(t) = throttle(&req, Class::Credentials) {
        state.metrics.login("throttled");
        return Err(t.into());
    }
    let LoginRequest { email, password } = body.into_inner();
    let result =
        lockout::authenticate(&state.db, &state.hasher, state.lockout, &email, password).await;
    state.metrics.login(super::login_outcome(&result));
    let user = result?;
    let login = &state.settings.login;
    let started = sessions::start(
        &state.db,
        state.sessions,
        user.id.clone(),
        login.client_id.clone(),
        login.scope.clone(),
        client_info(&req),
    )
    .await?;
    let response = state
        .issuance()
        .for_session(SessionGrant {
            user_id: &user.id,
            roles: user.roles,
            client_id: &login.client_id,
            scope: &login.scope,
            session_id: &started.session_id,
            refresh_token: &started.refresh_token,
        })
        .await?;
    state.metrics.token_issued("login");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[serde(default)]
    all: bool,
}

/// Ends the token's session, or with `{"all": true}` all the user's. The
/// body is optional, but a body that is there must be right: a mistyped
/// "log out everywhere" must not quietly log out here only.
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let all = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<LogoutRequest>(&body)
            .map_err(|e| ApiError::unprocessable("invalid_body", e.to_string()))?
            .all
    };
    let claims = auth.0;
    let (ending, reason) = match (&claims.sid, all) {
        (_, true) => (Ending::All, end_reason::LOGOUT_ALL),
        (Some(sid), false) => (Ending::One(sid.clone()), end_reason::LOGOUT),
        (None, false) => {
            return Err(ApiError::bad_request(
                "no_session",
                "this token belongs to no session",
            ));
        }
    };
    sessions::end(&state.db, claims.sub, ending, reason, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes the password and ends every other session of the user.
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    let claims = auth.0;
    let change = accounts::PasswordChange {
        user_id: claims.sub,
        current: current_password,
        new: new_password,
        keep_session: claims.sid,
    };
    accounts::change_password(&state.db, &state.hasher, change, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_sessions(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let claims = auth.0;
    let sessions = sessions::list_live(&state.db, state.sessions, claims.sub, claims.sid).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "sessions": sessions })))
}

/// Ends one of the caller's own sessions; anyone else's is "not found".
pub async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ended = sessions::end(
        &state.db,
        auth.0.sub,
        Ending::One(path.into_inner()),
        end_reason::ENDED_BY_USER,
        client_info(&req),
    )
    .await?;
    if ended == 0 {
        return Err(ApiError::not_found("no such session"));
    }
    Ok(HttpResponse::NoContent().finish())
}

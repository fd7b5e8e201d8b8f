//! `/v1/admin/*`: for bearers of the `admin` role only.

use crate::audit;
use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Authenticated};
use crate::accounts::administration::{self, UserChange};
use crate::accounts::{self, ADMIN_ROLE, User};
use crate::clients::{self, ClientRegistration, NewClient};
use crate::tokens::Claims;

/// A request from an administrator: a valid token (401 otherwise) of a user
/// who has the `admin` role now, in the database (403 otherwise). The
/// token's `roles` claim isn't enough: it would let a demoted admin act,
/// even promote themselves back, until the token expires.
pub struct Admin(pub Claims);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(req, payload);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let Authenticated(claims) = authenticated.await?;
            let state = state.expect("AppState is registered at start");
            let is_admin = match accounts::find_by_id(&state.db, claims.sub.clone()).await {
                Ok(user) => !user.disabled && user.roles.iter().any(|r| r == ADMIN_ROLE),
                Err(accounts::AccountError::NotFound) => false,
                Err(e) => return Err(e.into()),
            };
            if !is_admin {
                return Err(ApiError::forbidden("the admin role is required"));
            }
            Ok(Admin(claims))
        })
    }
}

/// A user as administrators see it: with its `disabled` flag.
#[derive(Serialize)]
struct AdminUserView<'a> {
    #[serde(flatten)]
    user: &'a User,
    disabled: bool,
}

fn view(user: &User) -> AdminUserView<'_> {
    AdminUserView {
        user,
        disabled: user.disabled,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    email: Option<String>,
}

pub async fn list_users(
    state: web::Data<AppState>,
    _: Admin,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let UserQuery {
        limit,
        cursor,
        email,
    } = query.into_inner();
    let page =
        administration::list_page(&state.db, limit.unwrap_or(50), cursor.as_deref(), email).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "users": page.users.iter().map(view).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor,
        })))
}

pub async fn get_user(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts::find_by_id(&state.db, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view(&user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
}

pub async fn patch_user(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    body: web::Json<PatchUser>,
) -> Result<HttpResponse, ApiError> {
    let PatchUser { roles, disabled } = body.into_inner();
    let change = UserChange { roles, disabled };
    let user = administration::update(&state.db, id.into_inner(), change, admin.0.sub).await?;
    Ok(HttpResponse::Ok().json(view(&user)))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    administration::delete(&state.db, id.into_inner(), admin.0.sub).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers a client; the answer holds its secret, the only time it is
/// ever shown.
pub async fn create_client(
    state: web::Data<AppState>,
    admin: Admin,
    body: web::Json<ClientRegistration>,
) -> Result<HttpResponse, ApiError> {
    let new = NewClient::parse(body.into_inner())?;
    let (client, secret) = clients::create(&state.db, new, Some(admin.0.sub)).await?;
    let mut body = serde_json::to_value(&client).unwrap_or_default();
    if let Some(secret) = secret {
        body["client_secret"] = secret.expose().into();
    }
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::LOCATION,
            format!("/v1/admin/clients/{}", client.client_id),
        ))
        .json(body))
}

pub async fn list_clients(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let clients = clients::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "clients": clients })))
}

pub async fn get_client(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(clients::find(&state.db, id.into_inner()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    user: Option<String>,
    kind: Option<String>,
}

/// The audit trail, newest first: `?user=` (a user id), `?kind=` (an
/// action such as `refresh`, `logout`, `sso_sign_in`), `?cursor=`.
pub async fn list_audit(
    state: web::Data<AppState>,
    _: Admin,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let AuditQuery {
        limit,
        cursor,
        user,
        kind,
    } = query.into_inner();
    let filter = audit::EventFilter {
        user_id: user.filter(|u| !u.is_empty()),
        action: kind.filter(|k| !k.is_empty()),
    };
    let (events, next_cursor) =
        audit::list(&state.db, filter, limit.unwrap_or(50), cursor.as_deref()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "events": events,
        "next_cursor": next_cursor,
    })))
}

/// The signing keys and their rotation states (never key material).
pub async fn list_keys(state: web::Data<AppState>, _: Admin) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "keys": state.keys.listing() }))
}

pub async fn delete_client(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    clients::delete(&state.db, id.into_inner(), Some(admin.0.sub)).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! `/v1/admin/*`: for bearers of the `admin` role only.

use crate::audit;
use crate::ids::{ClientId, UserId};
use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::{AdminUser, Client, ClientRegistration, KeyListing, RecordedEvent};
use super::error::Problem;
use super::openapi::{AdminErrors, InvalidText, PROBLEM};
use super::{AdminBearer, ApiError, AppState, JsonObject, client_info};
use crate::accounts::administration::{self, UserChange};
use crate::accounts::{self, ADMIN_ROLE};
use crate::app;
use crate::clients::{self, NewClient};
use crate::tokens::{ClaimIds, Claims};

/// A request from an administrator: a valid token (401 otherwise) of a user
/// with the admin scope (403 otherwise), who has the `admin` role now, in
/// the database (403 otherwise). The token's `roles` claim isn't enough: it
/// would let a demoted admin act, even promote themselves back, until the
/// token expires.
pub struct Admin(pub Claims);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = AdminBearer::from_request(req, payload);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let AdminBearer(claims) = authenticated.await?;
            #[allow(
                clippy::expect_used,
                reason = "startup registers AppState before any route"
            )]
            let state = state.expect("AppState is registered at start");
            let is_admin = match accounts::find_by_id(&state.app.db, claims.user_id()).await {
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

/// One page of users, oldest first.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<AdminUser>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// One page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    events: Vec<RecordedEvent>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    clients: Vec<Client>,
}

/// A client just registered: the only answer that ever holds its secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    client: Client,
    /// Confidential clients only. Shown once; only its hash is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyListing>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only the user with this email address.
    email: Option<String>,
}

/// List users
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    params(UserQuery),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "One page of users", body = UserPage),
        (status = 400, description = "Bad query or cursor", body = Problem, content_type = PROBLEM),
        AdminErrors,
    ))]
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
        administration::list_page(&state.app.db, limit.unwrap_or(50), cursor.as_deref(), email)
            .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(UserPage {
            users: page.users.into_iter().map(AdminUser::from).collect(),
            next_cursor: page.next_cursor,
        }))
}

/// One user
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "The user", body = AdminUser),
        (status = 404, description = "No such user", body = Problem, content_type = PROBLEM),
        AdminErrors,
        InvalidText,
    ))]
pub async fn get_user(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts::find_by_id(&state.app.db, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(AdminUser::from(user)))
}

/// The fields to change; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// The user's roles, replacing the old ones (e.g. `["admin"]`).
    pub(crate) roles: Option<Vec<String>>,
    /// A disabled user can't log in, and their sessions end.
    pub(crate) disabled: Option<bool>,
    /// True: the user must choose a new password before they sign in again
    /// (login answers 403 `password_change_required`; a password change,
    /// reset or `POST /v1/auth/password-change` clears it).
    pub(crate) must_change_password: Option<bool>,
}

/// Change a user's roles or disable them
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = PatchUser,
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "The changed user", body = AdminUser),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such user", body = Problem, content_type = PROBLEM),
        (status = 409, description = "It would leave no active administrator (`last_admin`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "An invalid role or field", body = Problem, content_type = PROBLEM),
        AdminErrors,
    ))]
pub async fn patch_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    id: web::Path<UserId>,
    body: web::Json<JsonObject<PatchUser>>,
) -> Result<HttpResponse, ApiError> {
    let PatchUser {
        roles,
        disabled,
        must_change_password,
    } = body.into_inner().0;
    let change = UserChange {
        roles,
        disabled,
        must_change_password,
    };
    let actor = acting(admin.0.sub, &req);
    let user = app::account::update_user(&state.app.db, id.into_inner(), change, actor).await?;
    Ok(HttpResponse::Ok().json(AdminUser::from(user)))
}

/// Someone to invite.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    #[schema(format = "email", example = "ada@example.com")]
    pub(crate) email: String,
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

/// Invite a user
///
/// Makes an account with no password, and mails the address a link to
/// choose it (`{issuer}/account/invitation?token=…`, valid
/// `accounts.invitation_hours`). Works whatever `accounts.registration` is.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin",
    request_body = InviteUser,
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 201, description = "Invited: the account, its invitation on its way", body = AdminUser,
            headers(("Location" = String, description = "/v1/admin/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The address has an account (`email_taken`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "An invalid address, name or role", body = Problem, content_type = PROBLEM),
        (status = 503, description = "No SMTP server is configured (`email_unavailable`), or the database is unavailable", body = Problem, content_type = PROBLEM),
        AdminErrors,
    ))]
pub async fn invite_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Json<JsonObject<InviteUser>>,
) -> Result<HttpResponse, ApiError> {
    let InviteUser { email, name, roles } = body.into_inner().0;
    let invitee = accounts::Invitee::parse(&email, name, roles)?;
    state.app.can_mail()?;
    let actor = acting(admin.0.sub, &req);
    let invitations = &state.app.invitations;
    let user = app::invitation::invite(&state.app.db, invitations, invitee, actor).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/admin/users/{}", user.id)))
        .json(AdminUser::from(user)))
}

/// Send a user a password reset link
///
/// Mails the user a reset link, as `POST /v1/auth/password-reset` does,
/// without its per-address interval.
#[utoipa::path(post, path = "/v1/admin/users/{id}/password-reset", tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 202, description = "The link is on its way"),
        (status = 403, description = "The account is disabled (`account_disabled`)", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such user", body = Problem, content_type = PROBLEM),
        (status = 503, description = "No SMTP server is configured (`email_unavailable`), or the database is unavailable", body = Problem, content_type = PROBLEM),
        AdminErrors,
        InvalidText,
    ))]
pub async fn send_password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    state.app.can_mail()?;
    let actor = acting(admin.0.sub, &req);
    let app = &state.app;
    app::recovery::send_password_reset(&app.db, &app.issuer_url, app.reset, id.into_inner(), actor)
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Delete a user, with their sessions
#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = Problem, content_type = PROBLEM),
        (status = 409, description = "It would leave no active administrator (`last_admin`)", body = Problem, content_type = PROBLEM),
        AdminErrors,
        InvalidText,
    ))]
pub async fn delete_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    app::account::delete_user(&state.app.db, id.into_inner(), acting(admin.0.sub, &req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Register a client
///
/// The answer holds its secret, the only time it is ever shown.
#[utoipa::path(post, path = "/v1/admin/clients", tag = "admin",
    request_body = ClientRegistration,
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 201, description = "Registered", body = CreatedClient,
            headers(("Location" = String, description = "/v1/admin/clients/{client_id}"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "An invalid registration (grant types, scopes, redirect URIs, …)", body = Problem, content_type = PROBLEM),
        AdminErrors,
    ))]
pub async fn create_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Json<JsonObject<ClientRegistration>>,
) -> Result<HttpResponse, ApiError> {
    let registration = body.into_inner().0.into();
    let new = NewClient::parse(registration, &state.app.own_audiences)?;
    let (client, secret) = clients::create(&state.app.db, new, acting(admin.0.sub, &req)).await?;
    let location = format!("/v1/admin/clients/{}", client.client_id);
    let body = CreatedClient {
        client: client.into(),
        client_secret: secret.map(|s| s.expose().to_owned()),
    };
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::LOCATION, location))
        .json(body))
}

/// List clients
#[utoipa::path(get, path = "/v1/admin/clients", tag = "admin",
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "Every registered client", body = ClientList),
        AdminErrors,
        InvalidText,
    ))]
pub async fn list_clients(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let clients = clients::list(&state.app.db).await?;
    Ok(HttpResponse::Ok().json(ClientList {
        clients: clients.into_iter().map(Client::from).collect(),
    }))
}

/// One client
#[utoipa::path(get, path = "/v1/admin/clients/{id}", tag = "admin",
    params(("id" = String, Path, description = "The client's id")),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "The client", body = Client),
        (status = 404, description = "No such client", body = Problem, content_type = PROBLEM),
        AdminErrors,
        InvalidText,
    ))]
pub async fn get_client(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<ClientId>,
) -> Result<HttpResponse, ApiError> {
    let client = clients::find(&state.app.db, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(Client::from(client)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only events about this user id.
    user: Option<String>,
    /// Only events of this action, e.g. `register`, `user_created`, `login`,
    /// `refresh`, `logout`, `sso_sign_in`.
    kind: Option<String>,
}

/// The audit trail
///
/// Newest first, filtered by `user` and `kind`, paged by `cursor`.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "One page of events", body = AuditPage),
        (status = 400, description = "Bad query or cursor", body = Problem, content_type = PROBLEM),
        AdminErrors,
    ))]
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
    let (events, next_cursor) = audit::list(
        &state.app.db,
        filter,
        limit.unwrap_or(50),
        cursor.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        events: events.into_iter().map(RecordedEvent::from).collect(),
        next_cursor,
    }))
}

/// The signing keys
///
/// Every key file and its rotation state; never key material.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin",
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 200, description = "The key files", body = KeyList),
        AdminErrors,
        InvalidText,
    ))]
pub async fn list_keys(state: web::Data<AppState>, _: Admin) -> HttpResponse {
    HttpResponse::Ok().json(KeyList {
        keys: state
            .keys
            .listing()
            .into_iter()
            .map(KeyListing::from)
            .collect(),
    })
}

/// Delete a client, with its sessions
#[utoipa::path(delete, path = "/v1/admin/clients/{id}", tag = "admin",
    params(("id" = String, Path, description = "The client's id")),
    security(("bearer" = ["tessera:admin"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such client", body = Problem, content_type = PROBLEM),
        AdminErrors,
        InvalidText,
    ))]
pub async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    id: web::Path<ClientId>,
) -> Result<HttpResponse, ApiError> {
    clients::delete(&state.app.db, id.into_inner(), acting(admin.0.sub, &req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The administrator `user_id` acting from the request's client address,
/// for the audit trail.
fn acting(user_id: String, req: &HttpRequest) -> audit::Actor {
    audit::Actor {
        id: user_id,
        ip: client_info(req).ip,
    }
}

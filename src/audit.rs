//! The audit trail: who did what to which session, from where, and how it
//! went. Written in the same database as the change it records.

use diesel::prelude::*;

use crate::db::schema::audit_events;
use crate::db::{AnyConnection, Db, DbError};

// Actions. Sessions that end are recorded under their end reason
// (`sessions::end_reason`): logout, logout_all, revoked, password_changed,
// password_reset (a password set with a reset link), ...
/// A password login that started a session (`POST /v1/auth/login`).
pub const LOGIN: &str = "login";
/// An account registered by its user (`POST /v1/auth/register`).
pub const REGISTER: &str = "register";
/// An account created by an operator (`tessera users create`).
pub const USER_CREATED: &str = "user_created";
pub const REFRESH: &str = "refresh";
pub const USER_UPDATED: &str = "user_updated";
pub const USER_DELETED: &str = "user_deleted";
pub const CLIENT_CREATED: &str = "client_created";
pub const CLIENT_DELETED: &str = "client_deleted";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// A reset link sent to an account's address.
pub const PASSWORD_RESET_REQUESTED: &str = "password_reset_requested";
/// A verification link sent to an account's address.
pub const EMAIL_VERIFICATION_SENT: &str = "email_verification_sent";
/// An address verified with its link.
pub const EMAIL_VERIFIED: &str = "email_verified";

/// An account made by an administrator's invitation.
pub const USER_INVITED: &str = "user_invited";
/// An invited user chose their first password with the invitation's link.
pub const INVITATION_ACCEPTED: &str = "invitation_accepted";
/// A registration of an address that already has an account (its owner
/// was mailed; nothing else changed).
pub const REGISTER_EXISTING: &str = "register_existing";
/// A user changed their own profile (`PATCH /v1/me`).
pub const PROFILE_UPDATED: &str = "profile_updated";
/// A change of address asked for; the link went to the new address.
pub const EMAIL_CHANGE_REQUESTED: &str = "email_change_requested";
/// The account moved to a new, verified address (`detail`: the old one).
pub const EMAIL_CHANGED: &str = "email_changed";

/// The actor of changes made from the command line.
pub const CLI: &str = "cli";

/// Who made a change, when not the user themselves, and from where: an
/// administrator (their user id and client address), or the CLI.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn cli() -> Actor {
        Actor {
            id: CLI.to_owned(),
            ip: None,
        }
    }
}

/// One event: `actor_id` did `action` to `user_id`'s account or session (or
/// to `client_id`). `detail` is a short reason, never secret material.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    /// Who acted, when not the user themselves (an administrator, `cli`).
    pub actor_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// Records `event` as having happened `at` (the caller's clock).
pub fn record(
    conn: &mut AnyConnection,
    at: chrono::NaiveDateTime,
    event: Event<'_>,
) -> Result<(), DbError> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(uuid::Uuid::now_v7().to_string()),
            audit_events::occurred_at.eq(at),
            audit_events::action.eq(event.action),
            audit_events::outcome.eq(event.outcome),
            audit_events::actor_id.eq(event.actor_id),
            audit_events::user_id.eq(event.user_id),
            audit_events::session_id.eq(event.session_id),
            audit_events::client_id.eq(event.client_id),
            audit_events::ip.eq(event.ip),
            audit_events::detail.eq(event.detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// A recorded event, as stored. The API shows it as
/// `http::dto::RecordedEvent`.
#[derive(Debug, Clone, Queryable)]
pub struct RecordedEvent {
    pub id: String,
    pub occurred_at: chrono::NaiveDateTime,
    pub action: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub user_id: Option<String>,
    pub action: Option<String>,
}

const MAX_PAGE: i64 = 200;

/// Events newest first, `limit` at a time; the cursor continues after the
/// last one returned.
pub async fn list(
    db: &Db,
    filter: EventFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<(Vec<RecordedEvent>, Option<String>), ListError> {
    let before = match cursor {
        None => None,
        Some(c) => Some(crate::db::decode_cursor(c).ok_or(ListError::InvalidCursor)?),
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let mut events: Vec<RecordedEvent> = db
        .run(move |conn| {
            let mut query = audit_events::table
                .select((
                    audit_events::id,
                    audit_events::occurred_at,
                    audit_events::action,
                    audit_events::outcome,
                    audit_events::actor_id,
                    audit_events::user_id,
                    audit_events::session_id,
                    audit_events::client_id,
                    audit_events::ip,
                    audit_events::detail,
                ))
                .order(audit_events::id.desc())
                .limit(limit + 1)
                .into_boxed();
            if let Some(before) = before {
                query = query.filter(audit_events::id.lt(before));
            }
            if let Some(user) = filter.user_id {
                query = query.filter(audit_events::user_id.eq(user));
            }
            if let Some(action) = filter.action {
                query = query.filter(audit_events::action.eq(action));
            }
            Ok(query.load(conn)?)
        })
        .await?;
    let next = if events.len() as i64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| crate::db::encode_cursor(&e.id))
    } else {
        None
    };
    Ok((events, next))
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the cursor is not one this endpoint gave out")]
    InvalidCursor,
    #[error(transparent)]
    Db(#[from] DbError),
}

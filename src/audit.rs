//! The audit trail: who did what to which session, from where, and how it
//! went. Written in the same database as the change it records.

use diesel::prelude::*;

use crate::accounts::now;
use crate::db::schema::audit_events;
use crate::db::{AnyConnection, DbError};

// Actions. Sessions that end are recorded under their end reason
// (`sessions::end_reason`): logout, logout_all, revoked, ...
pub const REFRESH: &str = "refresh";
pub const USER_UPDATED: &str = "user_updated";
pub const USER_DELETED: &str = "user_deleted";
pub const CLIENT_CREATED: &str = "client_created";
pub const CLIENT_DELETED: &str = "client_deleted";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

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

pub fn record(conn: &mut AnyConnection, event: Event<'_>) -> Result<(), DbError> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(uuid::Uuid::now_v7().to_string()),
            audit_events::occurred_at.eq(now()),
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

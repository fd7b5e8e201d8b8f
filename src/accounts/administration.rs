//! What administrators do to accounts: list them page by page, change roles,
//! disable, delete — never leaving the system without an enabled admin.

use diesel::prelude::*;

use super::{ADMIN_ROLE, AccountError, User, UserRow, find_row};
use crate::audit::{self, Actor, Event};
use crate::db::schema::users;
use crate::db::{AnyConnection, Db, DbError};
use crate::ids::UserId;

pub const MAX_PAGE: i64 = 200;

/// A role name: 1–64 of letters, digits and `_ . : -`. Unknown names are
/// allowed (they're the application's), malformed ones are not.
pub fn parse_roles(roles: Vec<String>) -> Result<Vec<String>, AccountError> {
    if roles.len() > 50 {
        return Err(AccountError::InvalidRole("at most 50 roles".into()));
    }
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        let ok = !role.is_empty()
            && role.len() <= 64
            && role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        if !ok {
            return Err(AccountError::InvalidRole(format!(
                "{role:?} is not a role name (1-64 of letters, digits, _ . : -)"
            )));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

/// A page of users and the cursor of the next one.
pub struct Page {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

/// Users in id order (UUIDv7: creation order), after `cursor`, whose email
/// starts with `email_prefix`. New users sort after every existing cursor,
/// so a walk sees each user exactly once even while users are added.
pub async fn list_page(
    db: &Db,
    limit: i64,
    cursor: Option<&str>,
    email_prefix: Option<String>,
) -> Result<Page, AccountError> {
    let after = match cursor {
        None => None,
        Some(c) => Some(crate::db::decode_cursor(c).ok_or(AccountError::InvalidCursor)?),
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let rows: Vec<UserRow> = db
        .run(move |conn| {
            let mut query = users::table
                .select(UserRow::as_select())
                .order(users::id.asc())
                .limit(limit + 1)
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(users::id.gt(after));
            }
            // In the stored addresses' normal form, so a look-alike
            // spelling of a prefix finds them too.
            if let Some(prefix) = email_prefix
                .map(|p| super::email::case_mapped(&p))
                .filter(|p| !p.is_empty())
            {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                query = query.filter(users::email.like(format!("{escaped}%")).escape('\\'));
            }
            Ok(query.load(conn)?)
        })
        .await?;
    let mut users: Vec<User> = rows.into_iter().map(UserRow::into_user).collect();
    let next_cursor = if users.len() as i64 > limit {
        users.truncate(limit as usize);
        users
            .last()
            .map(|u| crate::db::encode_cursor(u.id.as_str()))
    } else {
        None
    };
    Ok(Page { users, next_cursor })
}

/// A change an administrator makes to a user.
#[derive(Debug, Default, Clone)]
pub struct UserChange {
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
    /// Ask the user for a new password at their next sign-in.
    pub must_change_password: Option<bool>,
}

/// How often a write that lost a race with a concurrent one is retried.
const CONFLICT_RETRIES: usize = 3;

/// Why a [`locked_write`] transaction did not commit.
enum Abort {
    Db(DbError),
    /// The write refused the change: nothing it wrote before stays.
    Refused(AccountError),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Abort {
        Abort::Db(e.into())
    }
}

impl From<DbError> for Abort {
    fn from(e: DbError) -> Abort {
        Abort::Db(e)
    }
}

/// Runs `write` in a write-locked, serializable transaction, retrying when
/// a concurrent transaction interfered: the last-admin rule reads other
/// rows, so two changes at once must not both pass it. A refusal rolls the
/// transaction back, so a step taken before it (sessions ended, say) can't
/// outlive the change it was for.
pub(crate) async fn locked_write<T: Send + 'static>(
    db: &Db,
    write: impl Fn(&mut AnyConnection) -> Result<Result<T, AccountError>, DbError>
    + Send
    + Sync
    + 'static,
) -> Result<T, AccountError> {
    let write = std::sync::Arc::new(write);
    for attempt in 1.. {
        let write = write.clone();
        let result = db
            .run(move |conn| {
                let written = conn.transaction(|conn| {
                    Db::lock_for_write(conn)?;
                    write(conn)?.map_err(Abort::Refused)
                });
                match written {
                    Ok(value) => Ok(Ok(value)),
                    Err(Abort::Refused(refused)) => Ok(Err(refused)),
                    Err(Abort::Db(e)) => Err(e),
                }
            })
            .await;
        match result {
            Err(DbError::Conflict) if attempt < CONFLICT_RETRIES => continue,
            other => return other?,
        }
    }
    unreachable!("the loop returns")
}

/// A user after an administrator's change, and whether it disabled them
/// (their sessions are then ended by the caller, in the same transaction).
pub struct Changed {
    pub user: User,
    pub newly_disabled: bool,
    /// The change asked for a new password: whoever holds a session now
    /// may hold the old password, so every session ends.
    pub newly_must_change: bool,
}

/// Applies `change` inside the caller's [`locked_write`]. Refused (422) for
/// a malformed role, (409) when it would leave no enabled administrator.
pub(crate) fn apply_change(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    id: &UserId,
    change: &UserChange,
    actor: &Actor,
) -> Result<Result<Changed, AccountError>, DbError> {
    let id = id.as_str();
    let roles = match change.roles.clone().map(parse_roles).transpose() {
        Ok(roles) => roles,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let Some(row) = find_row(conn, id)? else {
        return Ok(Err(AccountError::NotFound));
    };
    let mut user = row.into_user();
    let was_admin = is_enabled_admin(&user);
    if let Some(roles) = roles {
        user.roles = roles;
    }
    let newly_disabled = change.disabled == Some(true) && !user.disabled;
    let newly_must_change = change.must_change_password == Some(true) && !user.must_change_password;
    if let Some(disabled) = change.disabled {
        user.disabled = disabled;
    }
    if let Some(must) = change.must_change_password {
        user.must_change_password = must;
    }
    if was_admin && !is_enabled_admin(&user) && other_enabled_admins(conn, id)? == 0 {
        return Ok(Err(AccountError::LastAdmin));
    }
    diesel::update(users::table.find(id))
        .set((
            users::roles.eq(crate::db::json_text(&user.roles)?),
            users::disabled.eq(user.disabled),
            users::must_change_password.eq(user.must_change_password),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    let detail = format!(
        "roles={:?} disabled={} must_change_password={}",
        user.roles, user.disabled, user.must_change_password
    );
    let event = Event {
        action: audit::USER_UPDATED,
        outcome: "success",
        actor_id: Some(&actor.id),
        user_id: Some(id),
        ip: actor.ip.as_deref(),
        detail: Some(&detail),
        ..Event::default()
    };
    audit::record(conn, now, event)?;
    Ok(Ok(Changed {
        user,
        newly_disabled,
        newly_must_change,
    }))
}

/// Whether the user can be deleted: they exist and aren't the last enabled
/// admin.
fn may_delete(conn: &mut AnyConnection, id: &UserId) -> Result<Result<(), AccountError>, DbError> {
    let id = id.as_str();
    let Some(row) = find_row(conn, id)? else {
        return Ok(Err(AccountError::NotFound));
    };
    if is_enabled_admin(&row.into_user()) && other_enabled_admins(conn, id)? == 0 {
        return Ok(Err(AccountError::LastAdmin));
    }
    Ok(Ok(()))
}

/// Deletes a user inside the caller's [`locked_write`]; refused for the
/// last enabled admin. Rows that belong to the user go with it (ON DELETE
/// CASCADE); the caller ends their sessions first so that is audited, and
/// a refusal here rolls that back.
pub(crate) fn delete_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    id: &UserId,
    actor: &Actor,
) -> Result<Result<(), AccountError>, DbError> {
    if let Err(refused) = may_delete(conn, id)? {
        return Ok(Err(refused));
    }
    let id = id.as_str();
    diesel::delete(users::table.find(id)).execute(conn)?;
    let event = Event {
        action: audit::USER_DELETED,
        outcome: "success",
        actor_id: Some(&actor.id),
        user_id: Some(id),
        ip: actor.ip.as_deref(),
        ..Event::default()
    };
    audit::record(conn, now, event)?;
    Ok(Ok(()))
}

/// An administrator who can act: enabled, and with a password (an
/// invitation not yet accepted is nobody in charge).
fn is_enabled_admin(user: &User) -> bool {
    !user.disabled && user.has_password && user.roles.iter().any(|r| r == ADMIN_ROLE)
}

/// Enabled administrators other than `id`. The LIKE only narrows the rows
/// (it ignores case on SQLite); the exact role match is made here.
fn other_enabled_admins(conn: &mut AnyConnection, id: &str) -> Result<usize, DbError> {
    let candidates: Vec<UserRow> = users::table
        .filter(users::id.ne(id))
        .filter(users::disabled.eq(false))
        .filter(users::roles.like(format!("%\"{ADMIN_ROLE}\"%")))
        .select(UserRow::as_select())
        .load(conn)?;
    Ok(candidates
        .into_iter()
        .map(UserRow::into_user)
        .filter(is_enabled_admin)
        .count())
}

//! Single-use links sent to an account's address (`account_tokens`): a
//! token of 256 random bits, stored as its SHA-256 only, for one purpose,
//! until it expires. Issuing one deletes the user's others of that purpose
//! (the newest link is the only one that works); redeeming one deletes them
//! all.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::account_tokens;
use crate::db::{AnyConnection, DbError};
use crate::ids::UserId;
use crate::secrets::{is_token_shaped, random_token, stored_hash};

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    EmailVerification,
    /// An invited user's first password.
    Invitation,
    /// A new address, changed to once this link to it is followed.
    EmailChange,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::EmailVerification => "email_verification",
            Purpose::Invitation => "invitation",
            Purpose::EmailChange => "email_change",
        }
    }
}

/// A link's token as sent: shown once, in the message. No Debug: it is a
/// secret.
pub struct LinkToken(String, NaiveDateTime);

impl LinkToken {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// When it stops working.
    pub fn expires_at(&self) -> NaiveDateTime {
        self.1
    }
}

/// Issues a token for `purpose`, valid for `ttl`, inside the caller's
/// transaction; the user's earlier ones of that purpose stop working.
pub fn issue_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user: &UserId,
    purpose: Purpose,
    ttl: chrono::Duration,
) -> Result<LinkToken, DbError> {
    issue_carrying(conn, now, user, purpose, ttl, None)
}

/// Issues an address change's link: `new_email` is where it goes, and what
/// [`redeem_email_change_with`] gives back.
pub fn issue_email_change_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user: &UserId,
    new_email: &str,
    ttl: chrono::Duration,
) -> Result<LinkToken, DbError> {
    issue_carrying(conn, now, user, Purpose::EmailChange, ttl, Some(new_email))
}

fn issue_carrying(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user: &UserId,
    purpose: Purpose,
    ttl: chrono::Duration,
    new_email: Option<&str>,
) -> Result<LinkToken, DbError> {
    diesel::delete(account_tokens::table)
        .filter(account_tokens::user_id.eq(user.as_str()))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .execute(conn)?;
    let token = random_token();
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::token_hash.eq(stored_hash(&token)),
            account_tokens::user_id.eq(user.as_str()),
            account_tokens::purpose.eq(purpose.as_str()),
            account_tokens::created_at.eq(now),
            account_tokens::expires_at.eq(now + ttl),
            account_tokens::new_email.eq(new_email),
        ))
        .execute(conn)?;
    Ok(LinkToken(token, now + ttl))
}

/// Whether the user was sent a link for `purpose`, still standing, since
/// `since` (the per-account interval between links).
pub fn issued_since_with(
    conn: &mut AnyConnection,
    user: &UserId,
    purpose: Purpose,
    since: NaiveDateTime,
) -> Result<bool, DbError> {
    let issued: i64 = account_tokens::table
        .filter(account_tokens::user_id.eq(user.as_str()))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .filter(account_tokens::created_at.gt(since))
        .count()
        .get_result(conn)?;
    Ok(issued > 0)
}

/// The user a live token of `purpose` was issued to, without using it.
pub fn holder_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    token: &str,
    purpose: Purpose,
) -> Result<Option<UserId>, DbError> {
    if !is_token_shaped(token) {
        return Ok(None);
    }
    let user: Option<String> = account_tokens::table
        .find(stored_hash(token))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .filter(account_tokens::expires_at.gt(now))
        .select(account_tokens::user_id)
        .first(conn)
        .optional()?;
    Ok(user.map(UserId::new))
}

/// Uses a token inside the caller's transaction: if it is live and of
/// `purpose`, every token of that purpose of its user is deleted and the
/// user returned; None if it is unknown, used, superseded or expired.
pub fn redeem_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    token: &str,
    purpose: Purpose,
) -> Result<Option<UserId>, DbError> {
    let Some(user) = holder_with(conn, now, token, purpose)? else {
        return Ok(None);
    };
    // Deleting this very row is the claim: of two redemptions at once, one
    // deletes it and the other finds nothing.
    let claimed = diesel::delete(account_tokens::table.find(stored_hash(token))).execute(conn)?;
    if claimed == 0 {
        return Ok(None);
    }
    diesel::delete(account_tokens::table)
        .filter(account_tokens::user_id.eq(user.as_str()))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .execute(conn)?;
    Ok(Some(user))
}

/// Uses an address change's token inside the caller's transaction: its
/// user and the new address, as [`redeem_with`] does.
pub fn redeem_email_change_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    token: &str,
) -> Result<Option<(UserId, String)>, DbError> {
    if !is_token_shaped(token) {
        return Ok(None);
    }
    let new_email: Option<Option<String>> = account_tokens::table
        .find(stored_hash(token))
        .filter(account_tokens::purpose.eq(Purpose::EmailChange.as_str()))
        .filter(account_tokens::expires_at.gt(now))
        .select(account_tokens::new_email)
        .first(conn)
        .optional()?;
    let Some(Some(new_email)) = new_email else {
        return Ok(None);
    };
    Ok(redeem_with(conn, now, token, Purpose::EmailChange)?.map(|user| (user, new_email)))
}

/// Makes every outstanding link of `purpose` of the user useless, inside
/// the caller's transaction (a password changed, an account disabled: a
/// reset link sent before must not undo it).
pub fn revoke_with(
    conn: &mut AnyConnection,
    user: &UserId,
    purpose: Purpose,
) -> Result<usize, DbError> {
    Ok(diesel::delete(account_tokens::table)
        .filter(account_tokens::user_id.eq(user.as_str()))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .execute(conn)?)
}

/// Makes every outstanding link that could take the account (a reset, an
/// invitation, a pending change of address) useless, inside the caller's
/// transaction: the password was just written — perhaps because whoever
/// asked for those knew the old one.
pub fn revoke_password_links_with(
    conn: &mut AnyConnection,
    user: &UserId,
) -> Result<usize, DbError> {
    Ok(revoke_with(conn, user, Purpose::PasswordReset)?
        + revoke_with(conn, user, Purpose::Invitation)?
        + revoke_with(conn, user, Purpose::EmailChange)?)
}

/// Makes every outstanding link of the user useless (an account disabled).
pub fn revoke_all_with(conn: &mut AnyConnection, user: &UserId) -> Result<usize, DbError> {
    Ok(diesel::delete(account_tokens::table)
        .filter(account_tokens::user_id.eq(user.as_str()))
        .execute(conn)?)
}

/// Deletes expired tokens (the periodic clean-up).
pub fn delete_expired_with(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::delete(account_tokens::table)
        .filter(account_tokens::expires_at.le(now))
        .execute(conn)?)
}

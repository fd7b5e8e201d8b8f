//! Account recovery by e-mail: a password reset asked for by address, and
//! confirmed with the link's token. The request answers the same for every
//! address — known, unknown, disabled, or sent a link a moment ago — and
//! writes the same (an outbox row), so neither its answer nor its time
//! says whether the address has an account.

use std::time::Duration;

use diesel::Connection;

use super::Services;
use crate::accounts::links::{self, Purpose};
use crate::accounts::{self, AccountError, Email, ResetPassword};
use crate::audit::{self, Event};
use crate::db::DbError;
use crate::email::{self, templates};
use crate::sessions::{self, ClientInfo, Ending, end_reason};
use crate::sso;
use crate::throttle::lockout;

/// Why a reset request or confirmation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// No SMTP server is configured: nothing could be sent.
    #[error("this service sends no e-mail (no SMTP server is configured)")]
    EmailUnavailable,
    #[error("{0}")]
    InvalidEmail(&'static str),
    /// The link is unknown, used, superseded or expired.
    #[error("this reset link is invalid, used or expired; ask for a new one")]
    InvalidLink,
    #[error("this verification link is invalid, used or expired; ask for a new one")]
    InvalidVerificationLink,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The settings a reset works with.
#[derive(Debug, Clone, Copy)]
pub struct ResetPolicy {
    pub link_ttl: Duration,
    /// Per address, at most one link in this long.
    pub interval: Duration,
}

/// The link a reset message carries: always under the configured issuer,
/// never a request's Host.
fn reset_link(issuer: &str, token: &str) -> String {
    format!("{issuer}/account/reset?token={token}")
}

/// Asks for a password reset for `address`. A live, enabled account gets a
/// message with a link (unless it got one within the interval); any other
/// address gets nothing. The caller answers 202 either way.
pub async fn request_password_reset(
    services: &Services,
    address: &str,
    info: ClientInfo,
) -> Result<(), RecoveryError> {
    if services.mailer.is_none() {
        return Err(RecoveryError::EmailUnavailable);
    }
    let email = Email::parse(address).map_err(RecoveryError::InvalidEmail)?;
    let policy = services.reset;
    let issuer = services.issuer_url.clone();
    let now = services.db.now();
    services
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                let user = accounts::find_by_email_with(conn, &email)?.filter(|u| !u.disabled);
                let recent = match &user {
                    Some(user) => links::last_issued_with(conn, &user.id, Purpose::PasswordReset)?
                        .is_some_and(|at| now < at + chrono_duration(policy.interval)),
                    None => false,
                };
                let Some(user) = user.filter(|_| !recent) else {
                    return email::record_unsent_with(
                        conn,
                        now,
                        templates::PASSWORD_RESET_NO_ACCOUNT,
                    );
                };
                let token = links::issue_with(
                    conn,
                    now,
                    &user.id,
                    Purpose::PasswordReset,
                    policy.link_ttl,
                )?;
                let link = reset_link(&issuer, token.expose());
                let minutes = policy.link_ttl.as_secs() / 60;
                let message =
                    templates::password_reset(&user.email, &link, minutes).map_err(|e| {
                        DbError::Query(diesel::result::Error::SerializationError(Box::new(e)))
                    })?;
                email::enqueue_with(conn, now, &message)?;
                audit::record(
                    conn,
                    now,
                    Event {
                        action: audit::PASSWORD_RESET_REQUESTED,
                        outcome: "success",
                        user_id: Some(user.id.as_str()),
                        ip: info.ip.as_deref(),
                        ..Event::default()
                    },
                )
            })
        })
        .await?;
    Ok(())
}

/// Whether `token` is a live reset link (the page checks before it shows
/// the form).
pub async fn reset_link_is_live(services: &Services, token: String) -> Result<bool, RecoveryError> {
    let now = services.db.now();
    let holder = services
        .db
        .run(move |conn| links::holder_with(conn, now, &token, Purpose::PasswordReset))
        .await?;
    Ok(holder.is_some())
}

/// Sets a new password with a reset link's token: the token and every
/// other reset token of the account die, every session of the user ends
/// (token and SSO), and the lockout of the address is cleared — in one
/// transaction.
pub async fn confirm_password_reset(
    services: &Services,
    token: String,
    new_password: String,
    info: ClientInfo,
) -> Result<(), RecoveryError> {
    let db = &services.db;
    let now = db.now();
    let peeked = token.clone();
    let holder = db
        .run(move |conn| links::holder_with(conn, now, &peeked, Purpose::PasswordReset))
        .await?
        .ok_or(RecoveryError::InvalidLink)?;
    let user = match accounts::find_by_id(db, holder).await {
        Ok(user) => user,
        Err(AccountError::NotFound) => return Err(RecoveryError::InvalidLink),
        Err(e) => return Err(e.into()),
    };
    // The slow part (policy, argon2) before the transaction.
    let reset = ResetPassword::hash(&services.hasher, &user, new_password).await?;
    let now = db.now();
    let done = db
        .run(move |conn| {
            conn.transaction(|conn| {
                // Redeemed here, in the writing transaction: of two uses of
                // one link, only one gets past this.
                let redeemed = links::redeem_with(conn, now, &token, Purpose::PasswordReset)?;
                if redeemed.as_ref() != Some(reset.user_id()) || !reset.write_with(conn, now)? {
                    return Ok::<_, DbError>(false);
                }
                let user_id = reset.user_id();
                // Recorded in the audit trail as the sessions' ending.
                let reason = end_reason::PASSWORD_RESET;
                sessions::end_with(conn, now, user_id, &Ending::All, reason, &info)?;
                sso::end_all_of_user(conn, now, user_id)?;
                lockout::clear_with(conn, &user.email)?;
                Ok(true)
            })
        })
        .await?;
    if done {
        Ok(())
    } else {
        Err(RecoveryError::InvalidLink)
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

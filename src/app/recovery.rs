//! Account recovery by e-mail: a password reset asked for by address, and
//! confirmed with the link's token. The request answers the same for every
//! address — known, unknown, disabled, or sent a link a moment ago — and
//! writes the same (an outbox row), so neither its answer nor its time
//! says whether the address has an account.

use diesel::Connection;

use super::Services;
use crate::accounts::links::{self, Purpose};
use crate::accounts::{self, AccountError, Email, ResetPassword, User};
use crate::audit::{self, Actor, Event};
use crate::db::{AnyConnection, Db, DbError};
use crate::email::{self, templates};
use crate::ids::UserId;
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
    #[error("this invitation is invalid, used or expired; ask an administrator for a new one")]
    InvalidInvitationLink,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The settings a reset works with.
#[derive(Debug, Clone, Copy)]
pub struct ResetPolicy {
    pub link_ttl: chrono::Duration,
    /// Per address, at most one link in this long.
    pub interval: chrono::Duration,
}

impl ResetPolicy {
    pub fn from_settings(accounts: &crate::configuration::AccountSettings) -> ResetPolicy {
        let seconds = crate::configuration::duration_seconds;
        ResetPolicy {
            link_ttl: seconds(accounts.password_reset_minutes * 60),
            interval: seconds(accounts.password_reset_interval_seconds),
        }
    }
}

/// The link a reset message carries: always under the configured issuer,
/// never a request's Host.
pub(super) fn reset_link(issuer: &str, token: &str) -> String {
    format!("{issuer}/account/reset?token={token}")
}

/// Asks for a password reset for `address`: one outbox row, the same for
/// every address, so neither the answer nor its time says whether the
/// address has an account. `requests::prepare_requested` does the rest in
/// the background. The caller answers 202.
pub async fn request_password_reset(
    services: &Services,
    address: &str,
    info: ClientInfo,
) -> Result<(), RecoveryError> {
    services.can_mail()?;
    let email = Email::parse(address).map_err(RecoveryError::InvalidEmail)?;
    let now = services.db.now();
    services
        .db
        .run(move |conn| {
            let ip = info.ip.as_deref();
            email::enqueue_request_with(conn, now, email::REQUEST, email.as_str(), ip)
        })
        .await?;
    Ok(())
}

/// The message a queued reset request (or a registration of a taken
/// address) becomes, inside the caller's transaction: for a live, enabled
/// account not sent a link within the interval, a new reset link in a
/// message, the audit action it is recorded under, and the user; None
/// otherwise (the request is dropped).
pub(super) fn reset_request_message_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    issuer: &str,
    policy: ResetPolicy,
    request: &email::Request,
) -> Result<Option<(email::Message, &'static str, User)>, DbError> {
    let user = match Email::parse(&request.address) {
        Ok(address) => accounts::find_by_email_with(conn, &address)?.filter(|u| !u.disabled),
        Err(_) => None,
    };
    if let Some(user) = &user {
        // Two instances preparing two requests for one account: the second
        // waits here, then sees the first's link, and keeps to the interval.
        accounts::lock_row_with(conn, &user.id, true)?;
    }
    let recent = match &user {
        Some(user) => {
            let since = now - policy.interval;
            links::issued_since_with(conn, &user.id, Purpose::PasswordReset, since)?
        }
        None => false,
    };
    let Some(user) = user.filter(|_| !recent) else {
        return Ok(None);
    };
    // A registration of the address: its owner is told, with the link.
    let again = request.kind == email::REGISTERED_AGAIN_REQUEST;
    let (message, action) = if again {
        let message = reset_message_with(conn, now, issuer, policy, &user, |link, _| {
            templates::already_registered(&user.email, link)
        })?;
        (message, audit::REGISTER_EXISTING)
    } else {
        let message = reset_message_with(conn, now, issuer, policy, &user, |link, minutes| {
            templates::password_reset(&user.email, link, minutes)
        })?;
        (message, audit::PASSWORD_RESET_REQUESTED)
    };
    Ok(Some((message, action, user)))
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
        Ok(user) if !user.disabled => user,
        Ok(_) => return Err(RecoveryError::InvalidLink),
        Err(AccountError::NotFound) => return Err(RecoveryError::InvalidLink),
        Err(e) => return Err(e.into()),
    };
    // The slow part (policy, argon2) before the transaction.
    let reset = ResetPassword::hash(&services.hasher, &user, new_password).await?;
    let now = db.now();
    let done = db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
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
                links::revoke_password_links_with(conn, user_id)?;
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

/// Issues `user` a reset link, inside the caller's transaction (their
/// older ones die), and renders the message that carries it, not to be
/// sent once the link has expired.
fn reset_message_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    issuer: &str,
    policy: ResetPolicy,
    user: &User,
    render: impl FnOnce(&str, u64) -> Result<email::Message, DbError>,
) -> Result<email::Message, DbError> {
    let token = links::issue_with(conn, now, &user.id, Purpose::PasswordReset, policy.link_ttl)?;
    let link = reset_link(issuer, token.expose());
    let minutes = policy.link_ttl.num_minutes().unsigned_abs();
    Ok(render(&link, minutes)?.until(token.expires_at()))
}

/// Sends a named user a password reset link, at an administrator's word:
/// no per-address interval (the administrator is trusted), refused for a
/// disabled account. The caller checks that mail can be sent.
pub async fn send_password_reset(
    db: &Db,
    issuer: &str,
    policy: ResetPolicy,
    user: UserId,
    actor: Actor,
) -> Result<(), AccountError> {
    let issuer = issuer.to_owned();
    let now = db.now();
    db.run(move |conn| {
        conn.transaction(|conn| {
            Db::lock_sqlite_for_write(conn)?;
            let Some(user) = accounts::find_with(conn, user.as_str())? else {
                return Ok(Err(AccountError::NotFound));
            };
            if user.disabled {
                return Ok(Err(AccountError::Disabled));
            }
            let message =
                reset_message_with(conn, now, &issuer, policy, &user, |link, minutes| {
                    templates::password_reset(&user.email, link, minutes)
                })?;
            email::enqueue_with(conn, now, &message)?;
            audit::record(
                conn,
                now,
                Event {
                    action: audit::PASSWORD_RESET_REQUESTED,
                    outcome: "success",
                    user_id: Some(user.id.as_str()),
                    actor_id: Some(&actor.id),
                    ip: actor.ip.as_deref(),
                    ..Event::default()
                },
            )?;
            Ok(Ok(()))
        })
    })
    .await?
}

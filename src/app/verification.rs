//! Address verification: a link sent at registration (in the registering
//! transaction) or on request, whose token marks the address verified.

use diesel::Connection;

use super::Services;
use super::recovery::RecoveryError;
use crate::accounts::links::{self, Purpose};
use crate::accounts::{self, AccountError, NewAccount, User};
use crate::audit::{self, Event};
use crate::db::{AnyConnection, Db, DbError};
use crate::email::{self, templates};
use crate::ids::UserId;
use crate::sessions::ClientInfo;

/// How long a verification link works.
pub const LINK_TTL: chrono::Duration = chrono::Duration::hours(48);

/// Queues the verification message for `user` inside the caller's
/// transaction; the user's earlier verification links stop working.
fn send_link_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    user: &User,
    issuer: &str,
) -> Result<(), DbError> {
    let token = links::issue_with(conn, now, &user.id, Purpose::EmailVerification, LINK_TTL)?;
    let link = format!("{issuer}/account/verify?token={}", token.expose());
    let message = templates::verify_email(&user.email, &link, LINK_TTL.num_hours().unsigned_abs())?;
    email::enqueue_with(conn, now, &message)?;
    record(conn, now, audit::EMAIL_VERIFICATION_SENT, &user.id)
}

fn record(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    action: &'static str,
    user: &UserId,
) -> Result<(), DbError> {
    let event = Event {
        action,
        outcome: "success",
        user_id: Some(user.as_str()),
        ..Event::default()
    };
    audit::record(conn, now, event)
}

/// Registers an account and, where mail is sent, asks its owner to verify
/// the address — one transaction. Without SMTP the account is made all the
/// same (unverified; a verification can be asked for later).
pub async fn register(
    services: &Services,
    account: NewAccount,
    info: ClientInfo,
) -> Result<User, AccountError> {
    let mails = services.mailer.is_some();
    let issuer = services.issuer_url.clone();
    accounts::register_with(
        &services.db,
        &services.hasher,
        account,
        info,
        move |conn, user, now| {
            if mails {
                send_link_with(conn, now, user, &issuer)?;
            }
            Ok(())
        },
    )
    .await
}

/// Sends a new verification link to the user's address; nothing when it is
/// verified already.
pub async fn resend(services: &Services, user: UserId) -> Result<(), RecoveryError> {
    if services.mailer.is_none() {
        return Err(RecoveryError::EmailUnavailable);
    }
    let issuer = services.issuer_url.clone();
    let now = services.db.now();
    services
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                let Some(user) = accounts::find_with(conn, user.as_str())? else {
                    return Ok(Err(AccountError::NotFound));
                };
                if !user.email_verified {
                    send_link_with(conn, now, &user, &issuer)?;
                }
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(())
}

/// Marks the address of the link's user verified; the link dies with it.
pub async fn verify(services: &Services, token: String) -> Result<(), RecoveryError> {
    let now = services.db.now();
    let verified = services
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                let Some(user) = links::redeem_with(conn, now, &token, Purpose::EmailVerification)?
                else {
                    return Ok(false);
                };
                if !accounts::mark_verified_with(conn, now, &user)? {
                    return Ok(false);
                }
                record(conn, now, audit::EMAIL_VERIFIED, &user)?;
                Ok(true)
            })
        })
        .await?;
    if verified {
        Ok(())
    } else {
        Err(RecoveryError::InvalidVerificationLink)
    }
}

/// Whether `token` is a live verification link (the page asks before it
/// offers the button: a mail scanner opening the link verifies nothing).
pub async fn link_is_live(services: &Services, token: String) -> Result<bool, RecoveryError> {
    let now = services.db.now();
    let holder = services
        .db
        .run(move |conn| links::holder_with(conn, now, &token, Purpose::EmailVerification))
        .await?;
    Ok(holder.is_some())
}

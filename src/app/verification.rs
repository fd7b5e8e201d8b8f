//! Address verification: a link sent at registration (in the registering
//! transaction) or on request, whose token marks the address verified.

use diesel::Connection;

use super::Services;
use super::recovery::RecoveryError;
use crate::accounts::links::{self, Purpose};
use crate::accounts::{self, AccountError, Email, NewAccount, Registering, User};
use crate::audit::{self, Event};
use crate::configuration::Registration;
use crate::db::{AnyConnection, Db, DbError};
use crate::email::{self, templates};
use crate::ids::UserId;
use crate::sessions::ClientInfo;
use crate::throttle::lockout;

/// The link a verification or address-change message carries: under the
/// configured issuer only.
pub(super) fn verify_link(issuer: &str, token: &str) -> String {
    format!("{issuer}/account/verify?token={token}")
}

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
    let message = link_message_with(conn, now, user, issuer)?;
    email::enqueue_with(conn, now, &message)?;
    record(conn, now, audit::EMAIL_VERIFICATION_SENT, &user.id)
}

/// Issues `user` a verification link (their earlier ones die) and renders
/// its message, not to be sent once the link has expired.
fn link_message_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    user: &User,
    issuer: &str,
) -> Result<email::Message, DbError> {
    let token = links::issue_with(conn, now, &user.id, Purpose::EmailVerification, LINK_TTL)?;
    let link = verify_link(issuer, token.expose());
    let hours = LINK_TTL.num_hours().unsigned_abs();
    Ok(templates::verify_email(&user.email, &link, hours)?.until(token.expires_at()))
}

/// The message a queued verification request (a registration) becomes,
/// inside the caller's transaction: a link for an enabled account whose
/// address is not verified; None otherwise.
pub(super) fn request_message_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    issuer: &str,
    interval: chrono::Duration,
    request: &email::Request,
) -> Result<Option<(email::Message, &'static str, User)>, DbError> {
    let user = match Email::parse(&request.address) {
        Ok(address) => accounts::find_by_email_with(conn, &address)?,
        Err(_) => None,
    };
    let Some(user) = user.filter(|u| !u.disabled && !u.email_verified) else {
        return Ok(None);
    };
    accounts::lock_row_with(conn, &user.id, true)?;
    // A link sent meanwhile (a resend) stands: a second would kill it.
    if links::issued_since_with(conn, &user.id, Purpose::EmailVerification, now - interval)? {
        return Ok(None);
    }
    let message = link_message_with(conn, now, &user, issuer)?;
    Ok(Some((message, audit::EMAIL_VERIFICATION_SENT, user)))
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

/// How a registration went.
pub enum Registered {
    /// The account is made (addresses need not be verified to sign in).
    Created(User),
    /// Addresses must be verified: a link went to the address — or, if it
    /// has an account already, a notice to its owner. The same answer
    /// either way, so registration tells nobody who has an account.
    Accepted { email: String },
}

/// Registers an account, if the registration policy lets anyone, and where
/// mail is sent asks its owner to verify the address — one transaction.
/// Without SMTP the account is made all the same (unverified; a
/// verification can be asked for later) unless verification is required.
pub async fn register(
    services: &Services,
    account: NewAccount,
    info: ClientInfo,
) -> Result<Registered, RecoveryError> {
    if services.accounts.registration != Registration::Open {
        return Err(AccountError::RegistrationClosed.into());
    }
    let required = services.accounts.require_verified_email;
    if required {
        services.can_mail()?;
    }
    let mails = services.mailer.is_some();
    let email = account.email.clone();
    let ip = info.ip.clone();
    // Both ways cost alike: the account and a request row, or a request
    // row and a record of the attempt. The messages are made in the
    // background (`requests`).
    let made = accounts::register_with(
        &services.db,
        &services.hasher,
        account,
        info,
        move |conn, registering, now| {
            let (kind, address) = match registering {
                Registering::Made(user) if mails => {
                    (email::VERIFICATION_REQUEST, user.email.clone())
                }
                Registering::Made(_) => return Ok(()),
                // The owner of a taken address hears of it, where
                // registration answers alike for both.
                Registering::Taken(address) if required => {
                    record_taken(conn, now, ip.as_deref())?;
                    (email::REGISTERED_AGAIN_REQUEST, address.as_str().to_owned())
                }
                Registering::Taken(_) => return Ok(()),
            };
            email::enqueue_request_with(conn, now, kind, &address, ip.as_deref())
        },
    )
    .await;
    match made {
        Ok(user) if required => Ok(Registered::Accepted { email: user.email }),
        Ok(user) => Ok(Registered::Created(user)),
        Err(AccountError::EmailTaken) if required => Ok(Registered::Accepted {
            email: email.as_str().to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Records a registration of a taken address (the owner is told in the
/// background, if at all).
fn record_taken(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    ip: Option<&str>,
) -> Result<(), DbError> {
    let event = Event {
        action: audit::REGISTER,
        outcome: "address_taken",
        ip,
        ..Event::default()
    };
    audit::record(conn, now, event)
}

/// Sends a new verification link to the user's address; nothing when it is
/// verified already, or was sent a link within the reset interval (a
/// token is no way to flood the address).
pub async fn resend(services: &Services, user: UserId) -> Result<(), RecoveryError> {
    services.can_mail()?;
    let issuer = services.issuer_url.clone();
    let interval = services.reset.interval;
    let now = services.db.now();
    services
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                let Some(user) = accounts::find_with(conn, user.as_str())? else {
                    return Ok(Err(AccountError::NotFound));
                };
                let since = now - interval;
                let recent =
                    links::issued_since_with(conn, &user.id, Purpose::EmailVerification, since)?;
                if !user.email_verified && !recent {
                    send_link_with(conn, now, &user, &issuer)?;
                }
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(())
}

/// Follows a verification link: the address of the link's user is marked
/// verified, or, for a change of address, the account moves to the new
/// address (verified by this very link; reset links sent to the old one
/// die). The link dies with it.
pub async fn verify(services: &Services, token: String) -> Result<(), RecoveryError> {
    let now = services.db.now();
    let verified = services
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                if let Some(user) =
                    links::redeem_with(conn, now, &token, Purpose::EmailVerification)?
                {
                    if !accounts::mark_verified_with(conn, now, &user)? {
                        return Ok(Ok(false));
                    }
                    record(conn, now, audit::EMAIL_VERIFIED, &user)?;
                    return Ok(Ok(true));
                }
                let Some((user, new)) = links::redeem_email_change_with(conn, now, &token)? else {
                    return Ok(Ok(false));
                };
                let Ok(new) = Email::parse(&new) else {
                    return Ok(Ok(false));
                };
                let Some(before) =
                    accounts::find_with(conn, user.as_str())?.filter(|u| !u.disabled)
                else {
                    return Ok(Ok(false));
                };
                // Taken since it was asked for: the link is spent. (A
                // registration racing this one fails the unique index, and
                // the transaction rolls back; mapped below.)
                if accounts::find_by_email_with(conn, &new)?.is_some() {
                    return Ok(Err(AccountError::EmailTaken));
                }
                if !accounts::change_email_with(conn, now, &user, &new)? {
                    return Ok(Ok(false));
                }
                // Links sent to the old address die; failed logins counted
                // under either address are forgotten (the lock was the old
                // address's; the new one's count was nobody's).
                links::revoke_all_with(conn, &user)?;
                lockout::clear_with(conn, &before.email)?;
                lockout::clear_with(conn, new.as_str())?;
                record(conn, now, audit::EMAIL_CHANGED, &user)?;
                Ok(Ok(true))
            })
        })
        .await
        .map_err(accounts::taken)??;
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
        .run(move |conn| {
            let verification = links::holder_with(conn, now, &token, Purpose::EmailVerification)?;
            match verification {
                Some(user) => Ok(Some(user)),
                None => links::holder_with(conn, now, &token, Purpose::EmailChange),
            }
        })
        .await?;
    Ok(holder.is_some())
}

//! What a signed-in user does to their own account: their name, their
//! address (changed only once the new one is verified), the consents they
//! gave clients, and deleting the account. Changing the address and
//! deleting the account ask for the password again, behind the lockout.

use diesel::Connection;

use super::Services;
use super::recovery::RecoveryError;
use crate::accounts::links;
use crate::accounts::{self, AccountError, Email, User};
use crate::audit::{self, Actor, Event};
use crate::clients;
use crate::db::{Db, DbError};
use crate::email::{self, templates};
use crate::ids::{ClientId, UserId};
use crate::oauth::authorization;
use crate::sessions::{self, ClientInfo, Ending, end_reason};
use crate::sso;
use crate::throttle::lockout::{self, LoginError};

/// How long the link to a new address works.
pub const EMAIL_CHANGE_TTL: chrono::Duration = chrono::Duration::hours(48);

/// Sets the user's display name (None or blank clears it); audited.
pub async fn rename(
    db: &Db,
    user: UserId,
    name: Option<String>,
    info: ClientInfo,
) -> Result<User, AccountError> {
    let name = accounts::parse_name(name)?;
    accounts::rename(db, user, name, info.ip).await
}

/// Checks the user's password again for a sensitive change, behind the
/// lockout of their address (a stolen access token is no password oracle):
/// a wrong one counts towards the lock, a right one clears the count.
async fn recheck_password(
    services: &Services,
    user: &UserId,
    password: String,
) -> Result<User, LoginError> {
    let db = &services.db;
    let found = accounts::find_by_id(db, user.clone()).await?;
    let check = async {
        match accounts::password_matches(db, &services.hasher, user, password).await? {
            true => Ok(()),
            false => Err(AccountError::WrongCurrentPassword),
        }
    };
    lockout::guard(db, services.lockout, &found.email, check).await?;
    Ok(found)
}

/// Why an address change or an account deletion was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

impl From<AccountError> for ProfileError {
    fn from(e: AccountError) -> ProfileError {
        ProfileError::Login(e.into())
    }
}

impl From<DbError> for ProfileError {
    fn from(e: DbError) -> ProfileError {
        ProfileError::Login(e.into())
    }
}

/// Asks to move the account to `new_email`: a link to the new address (the
/// change happens only when it is followed) and a notice to the old one,
/// in one transaction. An address that has an account gets a notice
/// instead of the link, and the answer is the same: the caller learns
/// nothing about who has an account.
pub async fn request_email_change(
    services: &Services,
    user: UserId,
    new_email: &str,
    password: String,
    info: ClientInfo,
) -> Result<(), ProfileError> {
    services.can_mail()?;
    let new_email = Email::parse(new_email).map_err(AccountError::InvalidEmail)?;
    let current = recheck_password(services, &user, password).await?;
    if current.email == new_email.as_str() {
        return Err(AccountError::InvalidEmail("this is the account's address already").into());
    }
    let issuer = services.issuer_url.clone();
    let interval = services.reset.interval;
    let now = services.db.now();
    services
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                // One request per account per interval is acted on (the
                // same answer either way): asking is no way to flood an
                // address, new or old.
                let notice = templates::EMAIL_CHANGE_NOTICE;
                if email::queued_since_with(conn, notice, &current.email, now - interval)? {
                    return Ok(());
                }
                // Whatever the new address, an earlier pending change dies
                // (so whether it did says nothing about the address).
                links::revoke_with(conn, &current.id, links::Purpose::EmailChange)?;
                let new = new_email.as_str();
                if accounts::find_by_email_with(conn, &new_email)?.is_some() {
                    email::enqueue_with(conn, now, &templates::address_in_use(new)?)?;
                } else {
                    let ttl = EMAIL_CHANGE_TTL;
                    let token = links::issue_email_change_with(conn, now, &current.id, new, ttl)?;
                    let link = super::verification::verify_link(&issuer, token.expose());
                    let hours = ttl.num_hours().unsigned_abs();
                    let message = templates::confirm_new_email(new, &current.email, &link, hours)?;
                    email::enqueue_with(conn, now, &message.until(token.expires_at()))?;
                }
                email::enqueue_with(
                    conn,
                    now,
                    &templates::email_change_notice(&current.email, new)?,
                )?;
                audit::record(
                    conn,
                    now,
                    Event {
                        action: audit::EMAIL_CHANGE_REQUESTED,
                        outcome: "success",
                        user_id: Some(current.id.as_str()),
                        ip: info.ip.as_deref(),
                        ..Event::default()
                    },
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(())
}

/// Deletes the user's own account, after their password: every session
/// ends and the account row goes, with everything that belongs to it
/// (sessions, consents, links); the audit trail keeps the user's id. The
/// last enabled administrator can't (409 `last_admin`).
pub async fn delete_account(
    services: &Services,
    user: UserId,
    password: String,
    info: ClientInfo,
) -> Result<(), ProfileError> {
    recheck_password(services, &user, password).await?;
    let actor = Actor {
        id: user.as_str().to_owned(),
        ip: info.ip,
    };
    super::account::delete_user(&services.db, user, actor).await?;
    Ok(())
}

/// A consent, with the client's name (None if the client is gone).
pub struct ConsentedClient {
    pub consent: sso::Consent,
    pub client_name: Option<String>,
}

/// The clients the user consented to, newest first.
pub async fn consents(db: &Db, user: UserId) -> Result<Vec<ConsentedClient>, DbError> {
    let consents = sso::consents_of(db, user).await?;
    let ids = consents
        .iter()
        .map(|c| c.client_id.as_str().to_owned())
        .collect();
    let names = clients::names_of(db, ids).await?;
    Ok(consents
        .into_iter()
        .map(|consent| ConsentedClient {
            client_name: names.get(consent.client_id.as_str()).cloned(),
            consent,
        })
        .collect())
}

/// Withdraws the user's consent to `client`, in one transaction: that
/// client's sessions of the user end and the codes it has not redeemed yet
/// die. False if there was no consent.
pub async fn withdraw_consent(
    db: &Db,
    user: UserId,
    client: ClientId,
    info: ClientInfo,
) -> Result<bool, DbError> {
    let now = db.now();
    db.run(move |conn| {
        conn.transaction(|conn| {
            if !sso::forget_consent_with(conn, &user, &client)? {
                return Ok(false);
            }
            // Codes before sessions: a redemption under way holds its
            // code's row, so this waits for it, and the sessions ended
            // next include the one it started.
            authorization::delete_unused_codes_with(conn, &user, &client)?;
            let ending = Ending::OfClient(client.clone());
            sessions::end_with(
                conn,
                now,
                &user,
                &ending,
                end_reason::CONSENT_REVOKED,
                &info,
            )?;
            Ok(true)
        })
    })
    .await
}

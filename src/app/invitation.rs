//! What administrators send to users by e-mail: an invitation (an account
//! with no password yet, and a link to choose it) and a password reset
//! link for a named user. Both are written with their message in one
//! transaction.

use diesel::Connection;

use super::recovery::{RecoveryError, ResetPolicy, reset_link};
use crate::accounts::links::{self, Purpose};
use crate::accounts::{self, AccountError, Invitee, ResetPassword, User};
use crate::audit::{self, Actor, Event};
use crate::db::{AnyConnection, Db, DbError};
use crate::email::{self, templates};
use crate::ids::UserId;
use crate::sessions::ClientInfo;

/// Where invitations are sent from and how long their links work.
#[derive(Debug, Clone)]
pub struct Invitations {
    /// The configured issuer: the base of every link.
    pub issuer: String,
    pub ttl: chrono::Duration,
}

impl Invitations {
    fn link(&self, token: &str) -> String {
        format!("{}/account/invitation?token={token}", self.issuer)
    }
}

fn record(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    action: &'static str,
    user: &UserId,
    actor: Option<&Actor>,
) -> Result<(), DbError> {
    audit::record(
        conn,
        now,
        Event {
            action,
            outcome: "success",
            user_id: Some(user.as_str()),
            actor_id: actor.map(|a| a.id.as_str()),
            ip: actor.and_then(|a| a.ip.as_deref()),
            ..Event::default()
        },
    )
}

/// Makes the invitee's account (no password: none can sign in to it yet)
/// and queues the invitation, in one transaction. The caller checks that
/// mail can be sent. 409 `email_taken` when the address has an account.
pub async fn invite(
    db: &Db,
    invitations: &Invitations,
    invitee: Invitee,
    actor: Actor,
) -> Result<User, AccountError> {
    let invitations = invitations.clone();
    let now = db.now();
    db.run(move |conn| {
        conn.transaction(|conn| {
            Db::lock_sqlite_for_write(conn)?;
            let user = accounts::invite_with(conn, now, &invitee)?;
            let token =
                links::issue_with(conn, now, &user.id, Purpose::Invitation, invitations.ttl)?;
            let hours = invitations.ttl.num_hours().unsigned_abs();
            let message =
                templates::invitation(&user.email, &invitations.link(token.expose()), hours)?
                    .until(token.expires_at());
            email::enqueue_with(conn, now, &message)?;
            let detail = format!("roles={:?}", user.roles);
            audit::record(
                conn,
                now,
                Event {
                    action: audit::USER_INVITED,
                    outcome: "success",
                    user_id: Some(user.id.as_str()),
                    actor_id: Some(&actor.id),
                    ip: actor.ip.as_deref(),
                    detail: Some(&detail),
                    ..Event::default()
                },
            )?;
            Ok(user)
        })
    })
    .await
    .map_err(accounts::taken)
}

/// Whether `token` is a live invitation (the page checks before the form).
pub async fn invitation_is_live(db: &Db, token: String) -> Result<bool, RecoveryError> {
    let now = db.now();
    let holder = db
        .run(move |conn| links::holder_with(conn, now, &token, Purpose::Invitation))
        .await?;
    Ok(holder.is_some())
}

/// Accepts an invitation: the invited user's first password, which also
/// verifies the address the link reached. The link dies with it.
pub async fn accept(
    db: &Db,
    hasher: &accounts::PasswordHasher,
    token: String,
    password: String,
    info: ClientInfo,
) -> Result<(), RecoveryError> {
    let now = db.now();
    let peeked = token.clone();
    let holder = db
        .run(move |conn| links::holder_with(conn, now, &peeked, Purpose::Invitation))
        .await?
        .ok_or(RecoveryError::InvalidInvitationLink)?;
    let user = match accounts::find_by_id(db, holder).await {
        Ok(user) if !user.disabled => user,
        Ok(_) | Err(AccountError::NotFound) => return Err(RecoveryError::InvalidInvitationLink),
        Err(e) => return Err(e.into()),
    };
    let password = ResetPassword::hash(hasher, &user, password).await?;
    let now = db.now();
    let accepted = db
        .run(move |conn| {
            conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                let redeemed = links::redeem_with(conn, now, &token, Purpose::Invitation)?;
                if redeemed.as_ref() != Some(password.user_id())
                    || !password.write_with(conn, now, true)?
                {
                    return Ok::<_, DbError>(false);
                }
                audit::record(
                    conn,
                    now,
                    Event {
                        action: audit::INVITATION_ACCEPTED,
                        outcome: "success",
                        user_id: Some(password.user_id().as_str()),
                        ip: info.ip.as_deref(),
                        ..Event::default()
                    },
                )?;
                Ok(true)
            })
        })
        .await?;
    if accepted {
        Ok(())
    } else {
        Err(RecoveryError::InvalidInvitationLink)
    }
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
            let ttl = policy.link_ttl;
            let token = links::issue_with(conn, now, &user.id, Purpose::PasswordReset, ttl)?;
            let minutes = ttl.num_minutes().unsigned_abs();
            let link = reset_link(&issuer, token.expose());
            email::enqueue_with(
                conn,
                now,
                &templates::password_reset(&user.email, &link, minutes)?.until(token.expires_at()),
            )?;
            record(
                conn,
                now,
                audit::PASSWORD_RESET_REQUESTED,
                &user.id,
                Some(&actor),
            )?;
            Ok(Ok(()))
        })
    })
    .await?
}

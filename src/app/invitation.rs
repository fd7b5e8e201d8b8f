//! Invitations: an administrator makes an account with no password, and
//! mails its address a link to choose one (written with the account, in
//! one transaction); the invitee accepts with the link.

use diesel::Connection;

use super::recovery::RecoveryError;
use crate::accounts::links::{self, Purpose};
use crate::accounts::{self, AccountError, Invitee, ResetPassword, User};
use crate::audit::{self, Actor, Event};
use crate::db::{Db, DbError};
use crate::email::{self, templates};
use crate::sessions::ClientInfo;

/// Where invitations are sent from and how long their links work.
#[derive(Debug, Clone)]
pub struct Invitations {
    /// The configured issuer: the base of every link.
    pub issuer: String,
    pub ttl: chrono::Duration,
}

impl Invitations {
    pub fn from_settings(settings: &crate::configuration::Settings) -> Invitations {
        Invitations {
            issuer: settings.issuer.clone(),
            ttl: crate::configuration::duration_seconds(settings.accounts.invitation_hours * 3600),
        }
    }

    fn link(&self, token: &str) -> String {
        format!("{}/account/invitation?token={token}", self.issuer)
    }
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
        Ok(user) if !user.disabled && !user.has_password => user,
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
                    || !password.write_first_with(conn, now)?
                {
                    return Ok::<_, DbError>(false);
                }
                links::revoke_password_links_with(conn, password.user_id())?;
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

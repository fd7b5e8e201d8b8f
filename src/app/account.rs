//! Account operations that end sessions, each in the transaction that
//! changes the account: a password change ends the user's other token
//! sessions and every SSO session; an administrator's disable or delete
//! ends all their sessions.

use diesel::Connection;

use super::Services;
use crate::accounts::administration::{self, UserChange};
use crate::accounts::links;
use crate::accounts::{self, AccountError, PasswordChange, User};
use crate::audit::Actor;
use crate::db::{Db, DbError};
use crate::ids::UserId;
use crate::sessions::{self, ClientInfo, Ending, end_reason};
use crate::sso;
use crate::throttle::lockout::{self, LoginError};

/// Changes the user's password, behind the same lockout as logins (counted
/// under the account's address, so a stolen token is no password oracle):
/// while it is locked the change is refused without checking the current
/// password; a wrong current password counts towards the lock, a right one
/// clears the count. The new hash and the end of the user's other sessions
/// are written in one transaction, so a failure can't leave the password
/// changed and a thief's session alive.
pub async fn change_password(
    services: &Services,
    change: PasswordChange,
    info: ClientInfo,
) -> Result<(), LoginError> {
    let db = &services.db;
    let email = accounts::find_by_id(db, change.user_id.clone())
        .await?
        .email;
    let check = accounts::check_password_change(db, &services.hasher, &change);
    let checked = lockout::guard(db, services.lockout, &email, check).await?;
    let others = match change.keep_session {
        Some(sid) => Ending::AllBut(sid),
        None => Ending::All,
    };
    if !write_change(db, checked, others, info).await? {
        // Changed by a concurrent request since it was checked.
        return Err(AccountError::WrongCurrentPassword.into());
    }
    Ok(())
}

/// Writes a checked password change — only over the hash that was checked
/// — and ends the user's sessions as `ending` says and every SSO session,
/// and kills the links that could take the account, in one transaction:
/// a failure can't leave the password changed and a thief's session
/// alive, and a reset link sent before can't undo the change. False if a
/// concurrent change came first.
async fn write_change(
    db: &Db,
    checked: accounts::CheckedChange,
    ending: Ending,
    info: ClientInfo,
) -> Result<bool, DbError> {
    let now = db.now();
    db.run(move |conn| {
        conn.transaction(|conn| {
            if !accounts::set_password_with(conn, now, &checked)? {
                return Ok(false);
            }
            let user_id = checked.user_id();
            let reason = end_reason::PASSWORD_CHANGED;
            sessions::end_with(conn, now, user_id, &ending, reason, &info)?;
            sso::end_all_of_user(conn, now, user_id)?;
            links::revoke_password_links_with(conn, user_id)?;
            Ok(true)
        })
    })
    .await
}

/// An administrator's change to a user; disabling ends every session of
/// the user, token and SSO alike, in the same transaction (re-enabling the
/// account must not bring a browser's sign-in back).
pub async fn update_user(
    db: &Db,
    id: UserId,
    change: UserChange,
    actor: Actor,
) -> Result<User, AccountError> {
    let now = db.now();
    administration::locked_write(db, move |conn| {
        let changed = match administration::apply_change(conn, now, &id, &change, &actor)? {
            Ok(changed) => changed,
            Err(refused) => return Ok(Err(refused)),
        };
        if changed.newly_disabled {
            let reason = end_reason::ACCOUNT_DISABLED;
            sessions::end_with(conn, now, &id, &Ending::All, reason, &client_of(&actor))?;
            sso::end_all_of_user(conn, now, &id)?;
            links::revoke_all_with(conn, &id)?;
        } else if changed.newly_must_change {
            let reason = end_reason::PASSWORD_CHANGE_REQUIRED;
            sessions::end_with(conn, now, &id, &Ending::All, reason, &client_of(&actor))?;
            sso::end_all_of_user(conn, now, &id)?;
            // Whoever holds the old password may have asked to move the
            // account; the owner's reset links stay.
            links::revoke_with(conn, &id, links::Purpose::EmailChange)?;
        }
        Ok(Ok(changed.user))
    })
    .await
}

/// Deletes a user; their sessions are ended (and audited) first, in the
/// same transaction, which a refusal rolls back.
pub async fn delete_user(db: &Db, id: UserId, actor: Actor) -> Result<(), AccountError> {
    let now = db.now();
    administration::locked_write(db, move |conn| {
        let reason = end_reason::ACCOUNT_DELETED;
        sessions::end_with(conn, now, &id, &Ending::All, reason, &client_of(&actor))?;
        // Mail not sent yet to the account's address (an invitation, a
        // reset link) would only mislead: it goes with the account.
        if let Some(user) = accounts::find_with(conn, id.as_str())? {
            crate::email::forget_unsent_to_with(conn, &user.email)?;
        }
        administration::delete_with(conn, now, &id, &actor)
    })
    .await
}

/// Where an administrator's change came from, as the sessions it ends
/// record it.
fn client_of(actor: &Actor) -> ClientInfo {
    ClientInfo {
        ip: actor.ip.clone(),
        user_agent: None,
    }
}

/// Changes a password with the account's address and current password, no
/// token: how a user an administrator asked for a new password (who can't
/// sign in until they choose one) chooses it. Behind the lockout, as a
/// login (an unknown address costs the same check and gets the same 401);
/// the new password must differ from the current one. The new hash is
/// written only over the one just checked, and every session of the user
/// ends, in one transaction.
pub async fn change_owed_password(
    services: &Services,
    email: &str,
    current: String,
    new: String,
    info: ClientInfo,
) -> Result<(), LoginError> {
    let db = &services.db;
    let check = accounts::check_change_by_address(db, &services.hasher, email, current, new);
    let checked = lockout::guard(db, services.lockout, email, check).await?;
    if !write_change(db, checked, Ending::All, info).await? {
        // Changed by a concurrent request (a reset) since it was checked.
        return Err(AccountError::InvalidCredentials.into());
    }
    Ok(())
}

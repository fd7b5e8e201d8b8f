//! Account operations that end sessions: a password change ends the user's
//! other token sessions and every SSO session, in the transaction that
//! writes the new hash.

use diesel::Connection;

use super::Services;
use crate::accounts::{self, AccountError, PasswordChange};
use crate::db::DbError;
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
    let policy = services.lockout;
    let email = accounts::find_by_id(db, change.user_id.clone())
        .await?
        .email;
    if let Some(until) = lockout::locked_until(db, policy, &email).await? {
        return Err(lockout::retry_at(db.now(), until).into());
    }
    let checked = match accounts::check_password_change(db, &services.hasher, &change).await {
        Ok(checked) => checked,
        Err(AccountError::WrongCurrentPassword) => {
            lockout::record_failure(db, policy, &email).await?;
            return Err(AccountError::WrongCurrentPassword.into());
        }
        Err(e) => return Err(e.into()),
    };
    let now = db.now();
    let others = match change.keep_session {
        Some(sid) => Ending::AllBut(sid),
        None => Ending::All,
    };
    let changed = db
        .run(move |conn| {
            conn.transaction(|conn| {
                if !accounts::set_password_with(conn, now, &checked)? {
                    return Ok::<_, DbError>(false);
                }
                let user_id = checked.user_id();
                let reason = end_reason::PASSWORD_CHANGED;
                sessions::end_with(conn, now, user_id, &others, reason, &info)?;
                // A browser signed in with the old password signs in again.
                sso::end_all_of_user(conn, now, user_id)?;
                Ok(true)
            })
        })
        .await?;
    if !changed {
        // Changed by a concurrent request since it was checked.
        return Err(AccountError::WrongCurrentPassword.into());
    }
    lockout::record_success(db, policy, &email).await?;
    Ok(())
}

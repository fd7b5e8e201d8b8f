//! Per-account lockout: after `threshold` consecutive failed password checks
//! for an email address — logins, and the current password of a password
//! change — further attempts are refused without checking the password, for
//! a delay that doubles with every further failure, up to a maximum. Kept in
//! the database so every instance sees it; reset by a right password.
//! Unknown addresses are counted exactly like known ones, so the answers
//! never tell whether an account exists.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::accounts::{self, AccountError, Email, PasswordHasher, User};
use crate::configuration::ThrottleSettings;
use crate::db::schema::login_failures;
use crate::db::{AnyConnection, Db, DbError};
use crate::secrets::stored_hash;

#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub enabled: bool,
    pub threshold: i32,
    pub base: Duration,
    pub max: Duration,
}

impl From<&ThrottleSettings> for LockoutPolicy {
    fn from(s: &ThrottleSettings) -> Self {
        LockoutPolicy {
            enabled: s.enabled && s.lockout_threshold > 0,
            threshold: s.lockout_threshold.min(1000) as i32,
            base: Duration::seconds(s.lockout_base_seconds.min(86_400) as i64),
            max: Duration::seconds(s.lockout_max_seconds.min(86_400 * 30) as i64),
        }
    }
}

impl LockoutPolicy {
    /// How long the `failures`-th consecutive failure locks the address.
    fn delay(&self, failures: i32) -> Option<Duration> {
        let over = failures - self.threshold;
        if over < 0 {
            return None;
        }
        let factor = 1i64 << over.min(30);
        Some((self.base * factor as i32).min(self.max))
    }
}

/// The key an address is counted under: its normal form (the one accounts
/// are stored and found under, so every spelling that reaches an account
/// shares its count), hashed. A malformed address reaches no account; it is
/// still counted, under its trimmed lower-case text.
fn key(email: &str) -> String {
    match Email::parse(email) {
        Ok(email) => stored_hash(email.as_str()),
        Err(_) => stored_hash(&email.trim().to_lowercase()),
    }
}

/// Until when the address is locked, if it is now.
pub async fn locked_until(
    db: &Db,
    policy: LockoutPolicy,
    email: &str,
) -> Result<Option<NaiveDateTime>, DbError> {
    if !policy.enabled {
        return Ok(None);
    }
    let key = key(email);
    let now = db.now();
    db.run(move |conn| {
        let until: Option<Option<NaiveDateTime>> = login_failures::table
            .find(&key)
            .select(login_failures::locked_until)
            .first(conn)
            .optional()?;
        Ok(until.flatten().filter(|t| *t > now))
    })
    .await
}

/// Counts a failed password check; returns the lock it caused, if any.
pub async fn record_failure(
    db: &Db,
    policy: LockoutPolicy,
    email: &str,
) -> Result<Option<NaiveDateTime>, DbError> {
    if !policy.enabled {
        return Ok(None);
    }
    let key = key(email);
    // A concurrent first failure may insert the row first: then once more,
    // counting on it.
    for attempt in 0.. {
        let key = key.clone();
        let now = db.now();
        let result = db
            .run(move |conn| conn.transaction(|conn| count_failure(conn, now, &policy, &key)))
            .await;
        match result {
            Err(DbError::UniqueViolation) if attempt == 0 => continue,
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

fn count_failure(
    conn: &mut crate::db::AnyConnection,
    now: chrono::NaiveDateTime,
    policy: &LockoutPolicy,
    key: &str,
) -> Result<Option<NaiveDateTime>, DbError> {
    crate::db::Db::lock_sqlite_for_write(conn)?;
    // One statement, so concurrent failures all count.
    let updated = diesel::update(login_failures::table.find(key))
        .set((
            login_failures::failures.eq(login_failures::failures + 1),
            login_failures::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::email_key.eq(key),
                login_failures::failures.eq(1),
                login_failures::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    let failures: i32 = login_failures::table
        .find(key)
        .select(login_failures::failures)
        .first(conn)?;
    let Some(delay) = policy.delay(failures) else {
        return Ok(None);
    };
    let until = now + delay;
    diesel::update(login_failures::table.find(key))
        .set(login_failures::locked_until.eq(until))
        .execute(conn)?;
    Ok(Some(until))
}

/// A right password clears the count.
pub async fn record_success(db: &Db, policy: LockoutPolicy, email: &str) -> Result<(), DbError> {
    if !policy.enabled {
        return Ok(());
    }
    let key = key(email);
    db.run(move |conn| {
        diesel::delete(login_failures::table.find(&key)).execute(conn)?;
        Ok(())
    })
    .await
}

/// Clears the address's count inside the caller's transaction (a password
/// reset proved the account another way).
pub fn clear_with(conn: &mut AnyConnection, email: &str) -> Result<(), DbError> {
    diesel::delete(login_failures::table.find(key(email))).execute(conn)?;
    Ok(())
}

/// Why a guarded login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The address is locked: the password wasn't even checked.
    #[error(transparent)]
    Locked(#[from] super::Throttled),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// How a login attempt ended, as the metrics count it.
pub fn outcome_label<T>(result: &Result<T, LoginError>) -> &'static str {
    use crate::accounts::HashError;
    match result {
        Ok(_) => "success",
        Err(LoginError::Locked(_)) => "locked",
        Err(LoginError::Account(AccountError::InvalidCredentials)) => "invalid_credentials",
        Err(LoginError::Account(AccountError::Disabled)) => "disabled",
        Err(LoginError::Account(AccountError::EmailNotVerified)) => "email_not_verified",
        Err(LoginError::Account(AccountError::PasswordChangeRequired)) => {
            "password_change_required"
        }
        Err(LoginError::Account(AccountError::Hashing(HashError::Busy))) => "busy",
        Err(_) => "error",
    }
}

impl From<DbError> for LoginError {
    fn from(e: DbError) -> Self {
        LoginError::Account(AccountError::Db(e))
    }
}

/// [`accounts::authenticate`] behind the lockout: a locked address is
/// refused at once; a wrong password (or an unknown address) counts
/// towards the lock; success clears the count.
pub async fn authenticate(
    db: &Db,
    hasher: &PasswordHasher,
    policy: LockoutPolicy,
    email: &str,
    password: String,
) -> Result<User, LoginError> {
    guard(
        db,
        policy,
        email,
        accounts::authenticate(db, hasher, email, password),
    )
    .await
}

/// Runs `check`, a check of a password for the account at `email`, behind
/// the lockout: while the address is locked it is refused without being
/// run; a wrong password (`InvalidCredentials`, `WrongCurrentPassword`)
/// counts towards the lock; a right one clears the count. Every password
/// check — login, sign-in, a change, a re-check — goes through here.
pub async fn guard<T>(
    db: &Db,
    policy: LockoutPolicy,
    email: &str,
    check: impl std::future::Future<Output = Result<T, AccountError>>,
) -> Result<T, LoginError> {
    if let Some(until) = locked_until(db, policy, email).await? {
        return Err(retry_at(db.now(), until).into());
    }
    match check.await {
        Ok(checked) => {
            record_success(db, policy, email).await?;
            Ok(checked)
        }
        Err(wrong @ (AccountError::InvalidCredentials | AccountError::WrongCurrentPassword)) => {
            record_failure(db, policy, email).await?;
            Err(wrong.into())
        }
        Err(e) => Err(e.into()),
    }
}

pub fn retry_at(now: NaiveDateTime, until: NaiveDateTime) -> super::Throttled {
    // Rounded up: retrying at the advertised moment must succeed.
    let millis = (until - now).num_milliseconds().max(1) as u64;
    let seconds = millis.div_ceil(1000);
    super::Throttled {
        retry_after: std::time::Duration::from_secs(seconds),
    }
}

/// Forgets counts untouched for a day whose lock is over.
pub async fn delete_stale(db: &Db) -> Result<usize, DbError> {
    let now = db.now();
    db.run(move |conn| {
        Ok(diesel::delete(login_failures::table)
            .filter(login_failures::updated_at.lt(now - Duration::days(1)))
            .filter(
                login_failures::locked_until
                    .is_null()
                    .or(login_failures::locked_until.lt(now)),
            )
            .execute(conn)?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_the_maximum() {
        let policy = LockoutPolicy {
            enabled: true,
            threshold: 5,
            base: Duration::seconds(5),
            max: Duration::seconds(60),
        };
        assert_eq!(policy.delay(4), None);
        assert_eq!(policy.delay(5), Some(Duration::seconds(5)));
        assert_eq!(policy.delay(6), Some(Duration::seconds(10)));
        assert_eq!(policy.delay(8), Some(Duration::seconds(40)));
        assert_eq!(policy.delay(9), Some(Duration::seconds(60)));
        assert_eq!(policy.delay(500), Some(Duration::seconds(60)));
    }
}

//! User accounts: who can sign in, with which password, and with which roles.
//! Owns the user types, the password policy and hashing, and the queries on
//! the `users` table.

pub mod administration;
mod email;
mod hashing;
pub mod links;
mod password;

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::audit::{self, Event};
use crate::db::schema::users;
use crate::db::{AnyConnection, Db, DbError};
use crate::ids::{SessionId, UserId};

pub use email::Email;
pub use hashing::{HashError, PasswordHasher};
pub use password::NewPassword;

pub const ADMIN_ROLE: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    InvalidEmail(&'static str),
    #[error("{0}")]
    InvalidPassword(&'static str),
    #[error("{0}")]
    InvalidName(&'static str),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("the current password is not correct")]
    WrongCurrentPassword,
    #[error("{0}")]
    InvalidRole(String),
    #[error("the cursor is not one this service gave out")]
    InvalidCursor,
    #[error("this would leave no enabled administrator")]
    LastAdmin,
    #[error("no such user")]
    NotFound,
    #[error(
        "this account's e-mail address is not verified yet: follow the link sent to it, or ask for a password reset (its link verifies the address too)"
    )]
    EmailNotVerified,
    #[error("a new password must be chosen before signing in")]
    PasswordChangeRequired,
    #[error("registration is closed; ask an administrator for an invitation")]
    RegistrationClosed,
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A user, without the password hash (which never leaves this module).
/// The API shows it as `http::dto::User` / `AdminUser`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub created_at: NaiveDateTime,
    pub disabled: bool,
    /// The address was shown to be the user's (a verification link).
    pub email_verified: bool,
    /// An administrator asked for a new password at the next sign-in.
    pub must_change_password: bool,
    /// False for an invited user who has not chosen a password yet.
    pub has_password: bool,
}

/// The stored hash of an account with no password yet (an invitation not
/// accepted): no password matches it.
const NO_PASSWORD: &str = "";

/// Whether `user`, whose password was just checked, may sign in: not with
/// an unverified address where verification is required, nor before
/// choosing the new password an administrator asked for.
pub fn may_sign_in(user: &User, require_verified_email: bool) -> Result<(), AccountError> {
    if require_verified_email && !user.email_verified {
        return Err(AccountError::EmailNotVerified);
    }
    if user.must_change_password {
        return Err(AccountError::PasswordChangeRequired);
    }
    Ok(())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    name: Option<String>,
    password_hash: String,
    roles: String,
    disabled: bool,
    created_at: NaiveDateTime,
    email_verified: bool,
    must_change_password: bool,
}

impl UserRow {
    /// The hash a password is checked against; None for an account with
    /// no password yet (it then costs the same dummy check as an unknown
    /// address, and fails it).
    fn stored_hash(&self) -> Option<String> {
        Some(self.password_hash.clone()).filter(|h| h != NO_PASSWORD)
    }

    fn into_user(self) -> User {
        User {
            id: UserId::new(self.id),
            email: self.email,
            name: self.name,
            // Written only by this module, always as a JSON array.
            roles: serde_json::from_str(&self.roles).unwrap_or_default(),
            created_at: self.created_at,
            disabled: self.disabled,
            email_verified: self.email_verified,
            must_change_password: self.must_change_password,
            has_password: self.password_hash != NO_PASSWORD,
        }
    }
}

/// A display name: trimmed, 1–200 characters, no control characters.
pub fn parse_name(raw: Option<String>) -> Result<Option<String>, AccountError> {
    let Some(raw) = raw else { return Ok(None) };
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > 200 {
        return Err(AccountError::InvalidName(
            "name must be at most 200 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountError::InvalidName(
            "name must not contain control characters",
        ));
    }
    Ok(Some(name.to_owned()))
}

/// What registration needs, validated on construction.
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub password: NewPassword,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

impl NewAccount {
    pub fn parse(
        email: &str,
        password: String,
        name: Option<String>,
        roles: Vec<String>,
    ) -> Result<NewAccount, AccountError> {
        let email = Email::parse(email).map_err(AccountError::InvalidEmail)?;
        let password =
            NewPassword::parse(password, &email).map_err(AccountError::InvalidPassword)?;
        let name = parse_name(name)?;
        let roles = administration::parse_roles(roles)?;
        Ok(NewAccount {
            email,
            password,
            name,
            roles,
        })
    }
}

/// Creates an account for a user registering from `client`: hashes the
/// password off the async workers and inserts the user with its audit
/// event, 409 when the email is taken.
pub async fn register(
    db: &Db,
    hasher: &PasswordHasher,
    account: NewAccount,
    client: crate::sessions::ClientInfo,
) -> Result<User, AccountError> {
    register_with(db, hasher, account, client, |_, _, _| Ok(())).await
}

/// What a registration's transaction found: the account it made, or the
/// address taken by another.
pub enum Registering<'a> {
    Made(&'a User),
    Taken(&'a Email),
}

/// [`register`], running `within` in the registration's transaction, with
/// the account made or the address found taken (the verification message
/// goes out if and only if the account is made; a notice to the owner of a
/// taken address in the same one transaction, so the two cost alike).
pub async fn register_with(
    db: &Db,
    hasher: &PasswordHasher,
    account: NewAccount,
    client: crate::sessions::ClientInfo,
    within: impl Fn(&mut AnyConnection, Registering<'_>, NaiveDateTime) -> Result<(), DbError>
    + Send
    + Sync
    + 'static,
) -> Result<User, AccountError> {
    let password_hash = hasher.hash(account.password.expose().to_owned()).await?;
    let (account, password_hash) = (Arc::new(account), Arc::new(password_hash));
    let (client, within) = (Arc::new(client), Arc::new(within));
    // Twice at most: a registration of the same address committed between
    // this one's check and its insert (PostgreSQL) fails the unique index;
    // tried again, the check finds it and takes the taken-address way.
    for attempt in 0..2 {
        let (account, password_hash) = (account.clone(), password_hash.clone());
        let (client, within) = (client.clone(), within.clone());
        let now = db.now();
        let result = db
            .run(move |conn| {
                conn.transaction(|conn| {
                    Db::lock_sqlite_for_write(conn)?;
                    if find_row_by_email(conn, &account.email)?.is_some() {
                        within(conn, Registering::Taken(&account.email), now)?;
                        return Ok(Err(AccountError::EmailTaken));
                    }
                    let user = insert_user(conn, now, &account, &password_hash)?;
                    within(conn, Registering::Made(&user), now)?;
                    let event = Event {
                        action: audit::REGISTER,
                        outcome: "success",
                        user_id: Some(user.id.as_str()),
                        ip: client.ip.as_deref(),
                        ..Event::default()
                    };
                    audit::record(conn, now, event)?;
                    Ok(Ok(user))
                })
            })
            .await;
        match result {
            Err(DbError::UniqueViolation) if attempt == 0 => continue,
            other => return other.map_err(unique_to_taken)?,
        }
    }
    Err(AccountError::EmailTaken)
}

/// The CLI's way in (`tessera users create`): everything synchronous, the
/// event's actor `cli`. `verified`: the operator vouches for the address
/// (`--verified`), so the account can sign in where verified addresses
/// are required — the first administrator, say.
pub fn register_blocking(
    db: &Db,
    hasher: &PasswordHasher,
    account: NewAccount,
    verified: bool,
) -> Result<User, AccountError> {
    let password_hash = hasher.hash_blocking(account.password.expose())?;
    let now = db.now();
    db.run_blocking(|conn| {
        conn.transaction(|conn| {
            let mut user = insert_user(conn, now, &account, &password_hash)?;
            if verified {
                user.email_verified = mark_verified_with(conn, now, &user.id)?;
            }
            let detail = format!("roles={:?} verified={verified}", user.roles);
            let event = Event {
                action: audit::USER_CREATED,
                outcome: "success",
                actor_id: Some(audit::CLI),
                user_id: Some(user.id.as_str()),
                detail: Some(&detail),
                ..Event::default()
            };
            audit::record(conn, now, event)?;
            Ok(user)
        })
    })
    .map_err(unique_to_taken)
}

/// What [`normalise_stored_addresses`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Renormalised {
    /// Addresses rewritten in their normal form.
    pub rewritten: usize,
    /// Addresses left as they were: another account holds the normal form,
    /// or the address is no longer valid. Their users are logged by id.
    pub left: usize,
}

/// Rewrites the stored addresses in the normal form [`Email::parse`] gives
/// (NFKC, lower case, IDNA domain): run once, when the database is
/// upgraded from a version that only lower-cased them, so their owners can
/// still log in. An address whose normal form another account already
/// holds is left alone (and logged by user id) rather than merged.
pub fn normalise_stored_addresses(conn: &mut AnyConnection) -> Result<Renormalised, DbError> {
    let stored: Vec<(String, String)> =
        users::table.select((users::id, users::email)).load(conn)?;
    let mut done = Renormalised::default();
    for (id, email) in stored {
        let normal = match Email::parse(&email) {
            Ok(normal) if normal.as_str() == email => continue,
            Ok(normal) => normal,
            Err(why) => {
                tracing::warn!(user = %id, why, "a stored address is no longer valid; left as it is");
                done.left += 1;
                continue;
            }
        };
        let taken: i64 = users::table
            .filter(users::email.eq(normal.as_str()))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            tracing::warn!(user = %id, "another account holds this address's normal form; left as it is");
            done.left += 1;
            continue;
        }
        diesel::update(users::table.find(&id))
            .set(users::email.eq(normal.as_str()))
            .execute(conn)?;
        done.rewritten += 1;
    }
    Ok(done)
}

fn unique_to_taken(e: DbError) -> AccountError {
    match e {
        DbError::UniqueViolation => AccountError::EmailTaken,
        other => AccountError::Db(other),
    }
}

fn insert_user(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    account: &NewAccount,
    password_hash: &str,
) -> Result<User, DbError> {
    let (email, name) = (&account.email, account.name.as_deref());
    insert_row(conn, now, email, name, &account.roles, password_hash)
}

fn insert_row(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    email: &Email,
    name: Option<&str>,
    roles: &[String],
    password_hash: &str,
) -> Result<User, DbError> {
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&id),
            users::email.eq(email.as_str()),
            users::name.eq(name),
            users::password_hash.eq(password_hash),
            users::roles.eq(crate::db::json_text(&roles)?),
            users::disabled.eq(false),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(User {
        id: UserId::new(id),
        email: email.as_str().to_owned(),
        name: name.map(str::to_owned),
        roles: roles.to_vec(),
        created_at: now,
        disabled: false,
        email_verified: false,
        must_change_password: false,
        has_password: password_hash != NO_PASSWORD,
    })
}

/// Checks an email and password. An unknown email, a malformed one and a
/// wrong password all cost one argon2 verification and give the same error;
/// a disabled account is reported only to someone who knows its password.
pub async fn authenticate(
    db: &Db,
    hasher: &PasswordHasher,
    email: &str,
    password: String,
) -> Result<User, AccountError> {
    let row = match Email::parse(email) {
        Ok(email) => db.run(move |conn| find_row_by_email(conn, &email)).await?,
        Err(_) => None,
    };
    let stored = row.as_ref().and_then(UserRow::stored_hash);
    let user = row.map(UserRow::into_user);
    let matches = hasher.verify(password, stored).await?;
    match user {
        Some(user) if matches && user.disabled => Err(AccountError::Disabled),
        Some(user) if matches => Ok(user),
        _ => Err(AccountError::InvalidCredentials),
    }
}

fn find_row_by_email(conn: &mut AnyConnection, email: &Email) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::email.eq(email.as_str()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

fn find_row(conn: &mut AnyConnection, id: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// On PostgreSQL, locks the user's row until the caller's transaction
/// ends — `for_update`: against other writers too; otherwise shared, so
/// that a writer (a password reset, a disable) waits, and then sees what
/// this transaction wrote. SQLite needs none: its write lock orders them.
pub fn lock_row_with(
    conn: &mut AnyConnection,
    id: &UserId,
    for_update: bool,
) -> Result<(), DbError> {
    if let AnyConnection::Postgresql(pg) = conn {
        let sql = if for_update {
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT 1 FROM users WHERE id = $1 FOR SHARE"
        };
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(id.as_str())
            .execute(pg)?;
    }
    Ok(())
}

/// The user with this id, on a connection (inside another operation's
/// transaction).
pub fn find_with(conn: &mut AnyConnection, id: &str) -> Result<Option<User>, DbError> {
    Ok(find_row(conn, id)?.map(UserRow::into_user))
}

/// The user with this id.
pub async fn find_by_id(db: &Db, id: UserId) -> Result<User, AccountError> {
    let row = db.run(move |conn| find_row(conn, id.as_str())).await?;
    row.map(UserRow::into_user).ok_or(AccountError::NotFound)
}

/// A password change asked for by the user of `keep_session`.
pub struct PasswordChange {
    pub user_id: UserId,
    pub current: String,
    pub new: String,
    /// The session to keep; every other session of the user ends.
    pub keep_session: Option<SessionId>,
}

/// A password change whose current password was right: the hash that was
/// checked, and the new password's hash. No Debug: hashes stay in.
pub struct CheckedChange {
    user_id: UserId,
    checked_hash: String,
    new_hash: String,
}

impl CheckedChange {
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
}

/// Checks a password change (the slow part, off any transaction): the
/// current password must be right and the new one must meet the policy.
pub async fn check_password_change(
    db: &Db,
    hasher: &PasswordHasher,
    change: &PasswordChange,
) -> Result<CheckedChange, AccountError> {
    let id = change.user_id.clone();
    let row = db
        .run(move |conn| find_row(conn, id.as_str()))
        .await?
        .ok_or(AccountError::NotFound)?;
    let email = Email::parse(&row.email).map_err(AccountError::InvalidEmail)?;
    let new =
        NewPassword::parse(change.new.clone(), &email).map_err(AccountError::InvalidPassword)?;
    let checked_hash = row.password_hash.clone();
    if !hasher
        .verify(change.current.clone(), row.stored_hash())
        .await?
    {
        return Err(AccountError::WrongCurrentPassword);
    }
    let new_hash = hasher.hash(new.expose().to_owned()).await?;
    Ok(CheckedChange {
        user_id: change.user_id.clone(),
        checked_hash,
        new_hash,
    })
}

/// Checks a password change asked for with the account's address (no
/// token): the current password must be right — an unknown address or an
/// account with no password costs the same check and fails alike — the
/// account enabled, and the new password different and within the policy.
pub async fn check_change_by_address(
    db: &Db,
    hasher: &PasswordHasher,
    address: &str,
    current: String,
    new: String,
) -> Result<CheckedChange, AccountError> {
    let row = match Email::parse(address) {
        Ok(email) => db.run(move |conn| find_row_by_email(conn, &email)).await?,
        Err(_) => None,
    };
    let stored = row.as_ref().and_then(UserRow::stored_hash);
    let matches = hasher.verify(current.clone(), stored).await?;
    let Some(row) = row.filter(|_| matches) else {
        return Err(AccountError::InvalidCredentials);
    };
    if row.disabled {
        return Err(AccountError::Disabled);
    }
    if current == new {
        return Err(AccountError::InvalidPassword(
            "the new password must differ from the current one",
        ));
    }
    let email = Email::parse(&row.email).map_err(AccountError::InvalidEmail)?;
    let new = NewPassword::parse(new, &email).map_err(AccountError::InvalidPassword)?;
    let new_hash = hasher.hash(new.expose().to_owned()).await?;
    Ok(CheckedChange {
        user_id: UserId::new(row.id),
        checked_hash: row.password_hash,
        new_hash,
    })
}

/// Writes a checked change inside the caller's transaction — only if the
/// hash is still the one just checked, so a concurrent change wins and
/// this one is refused (false).
pub fn set_password_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    change: &CheckedChange,
) -> Result<bool, DbError> {
    let updated = diesel::update(users::table.find(change.user_id.as_str()))
        .filter(users::password_hash.eq(&change.checked_hash))
        .set((
            users::password_hash.eq(&change.new_hash),
            users::must_change_password.eq(false),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(updated > 0)
}

/// The user with this address (in its normal form), inside the caller's
/// transaction.
pub fn find_by_email_with(
    conn: &mut AnyConnection,
    email: &Email,
) -> Result<Option<User>, DbError> {
    Ok(find_row_by_email(conn, email)?.map(UserRow::into_user))
}

/// A new password for a user who proved the account another way (a reset
/// link): it meets the policy for the user's address, and is hashed. No
/// Debug: the hash stays in.
pub struct ResetPassword {
    user_id: UserId,
    new_hash: String,
}

impl ResetPassword {
    /// Checks `raw` against the policy for `user` and hashes it (the slow
    /// part, off any transaction).
    pub async fn hash(
        hasher: &PasswordHasher,
        user: &User,
        raw: String,
    ) -> Result<ResetPassword, AccountError> {
        let email = Email::parse(&user.email).map_err(AccountError::InvalidEmail)?;
        let new = NewPassword::parse(raw, &email).map_err(AccountError::InvalidPassword)?;
        let new_hash = hasher.hash(new.expose().to_owned()).await?;
        Ok(ResetPassword {
            user_id: user.id.clone(),
            new_hash,
        })
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Writes the first password of an invited account inside the caller's
    /// transaction (its address verified: the invitation reached it); false
    /// if the account has a password by now, or is gone.
    pub fn write_first_with(
        &self,
        conn: &mut AnyConnection,
        now: chrono::NaiveDateTime,
    ) -> Result<bool, DbError> {
        let updated = diesel::update(users::table.find(self.user_id.as_str()))
            .filter(users::password_hash.eq(NO_PASSWORD))
            .set((
                users::password_hash.eq(&self.new_hash),
                users::must_change_password.eq(false),
                users::email_verified.eq(true),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(updated > 0)
    }

    /// Writes the new hash inside the caller's transaction (a new password
    /// asked for is chosen with it); false if the user is gone. The link
    /// that allowed it reached the address, so the address is verified.
    pub fn write_with(
        &self,
        conn: &mut AnyConnection,
        now: chrono::NaiveDateTime,
    ) -> Result<bool, DbError> {
        let updated = diesel::update(users::table.find(self.user_id.as_str()))
            .set((
                users::password_hash.eq(&self.new_hash),
                users::must_change_password.eq(false),
                users::email_verified.eq(true),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(updated > 0)
    }
}

/// Marks the user's address verified, inside the caller's transaction.
pub fn mark_verified_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user: &UserId,
) -> Result<bool, DbError> {
    let updated = diesel::update(users::table.find(user.as_str()))
        .set((users::email_verified.eq(true), users::updated_at.eq(now)))
        .execute(conn)?;
    Ok(updated > 0)
}

/// Someone an administrator invites: an address, and optionally a name and
/// roles; the password is theirs to choose, with the invitation's link.
#[derive(Debug)]
pub struct Invitee {
    pub email: Email,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

impl Invitee {
    pub fn parse(
        email: &str,
        name: Option<String>,
        roles: Vec<String>,
    ) -> Result<Invitee, AccountError> {
        Ok(Invitee {
            email: Email::parse(email).map_err(AccountError::InvalidEmail)?,
            name: parse_name(name)?,
            roles: administration::parse_roles(roles)?,
        })
    }
}

/// Makes the account of an invitee, with no password (none matches it
/// until the invitation is accepted), inside the caller's transaction;
/// `EmailTaken` (via [`DbError::UniqueViolation`]) when the address is.
pub fn invite_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    invitee: &Invitee,
) -> Result<User, DbError> {
    let (email, name) = (&invitee.email, invitee.name.as_deref());
    insert_row(conn, now, email, name, &invitee.roles, NO_PASSWORD)
}

/// The taken-address error for a unique violation of `users.email`.
pub fn taken(e: DbError) -> AccountError {
    unique_to_taken(e)
}

/// Sets the user's display name (None clears it) and records it, from
/// `ip`, in one transaction; the user as it is now.
pub async fn rename(
    db: &Db,
    id: UserId,
    name: Option<String>,
    ip: Option<String>,
) -> Result<User, AccountError> {
    let now = db.now();
    let row = db
        .run(move |conn| {
            conn.transaction(|conn| {
                let updated = diesel::update(users::table.find(id.as_str()))
                    .set((users::name.eq(name.as_deref()), users::updated_at.eq(now)))
                    .execute(conn)?;
                if updated == 0 {
                    return Ok(None);
                }
                let event = Event {
                    action: audit::PROFILE_UPDATED,
                    outcome: "success",
                    user_id: Some(id.as_str()),
                    ip: ip.as_deref(),
                    detail: Some("name"),
                    ..Event::default()
                };
                audit::record(conn, now, event)?;
                find_row(conn, id.as_str())
            })
        })
        .await?;
    row.map(UserRow::into_user).ok_or(AccountError::NotFound)
}

/// Moves the user to a new, verified address inside the caller's
/// transaction; false if the user is gone. A unique violation means the
/// address was taken meanwhile.
pub fn change_email_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user: &UserId,
    new: &Email,
) -> Result<bool, DbError> {
    let updated = diesel::update(users::table.find(user.as_str()))
        .set((
            users::email.eq(new.as_str()),
            users::email_verified.eq(true),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(updated > 0)
}

/// Whether `password` is the user's (one argon2 verification; false for
/// an account with no password).
pub async fn password_matches(
    db: &Db,
    hasher: &PasswordHasher,
    id: &UserId,
    password: String,
) -> Result<bool, AccountError> {
    let id = id.clone();
    let row = db
        .run(move |conn| find_row(conn, id.as_str()))
        .await?
        .ok_or(AccountError::NotFound)?;
    Ok(hasher.verify(password, row.stored_hash()).await?)
}

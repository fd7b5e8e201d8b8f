//! Browser sign-in for OpenID Connect: the SSO session a browser holds after
//! entering its password once (so other applications sign it in without
//! asking again), the sign-ins in progress behind the login and consent
//! pages, and the consents users remembered.
//!
//! Every value handed to the browser is 256 random bits; the database holds
//! only SHA-256 hashes of them.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::audit::{self, Event};
use crate::configuration::SsoSettings;
use crate::db::schema::{authorization_requests, browser_sessions, consents, users};
use crate::db::{AnyConnection, Db, DbError};
use crate::ids::{ClientId, UserId};
use crate::secrets::{is_token_shaped, random_token, stored_hash};
use crate::sessions::{self, ClientInfo, Ending, end_reason};

pub const SIGN_IN: &str = "sso_sign_in";
pub const SIGN_OUT: &str = "sso_sign_out";

/// How long SSO sessions, codes and sign-in pages live.
#[derive(Debug, Clone, Copy)]
pub struct SsoPolicy {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
    pub code_ttl: Duration,
    pub login_timeout: Duration,
}

impl From<&SsoSettings> for SsoPolicy {
    fn from(s: &SsoSettings) -> Self {
        let seconds = crate::configuration::duration_seconds;
        SsoPolicy {
            idle_timeout: seconds(s.idle_timeout_seconds),
            absolute_lifetime: seconds(s.absolute_lifetime_seconds),
            code_ttl: seconds(s.code_ttl_seconds),
            login_timeout: seconds(s.login_timeout_seconds),
        }
    }
}

/// A live SSO session: who signed in, and when they last entered their
/// password (`auth_time`).
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub id: String,
    pub user_id: UserId,
    pub auth_time: NaiveDateTime,
}

/// The SSO session the cookie value names, if it is live and its account
/// enabled; using it counts as activity for the idle timeout.
pub async fn find_session(
    db: &Db,
    policy: SsoPolicy,
    cookie: String,
) -> Result<Option<BrowserSession>, DbError> {
    if !is_token_shaped(&cookie) {
        return Ok(None); // not one of ours: no lookup
    }
    let now = db.now();
    db.run(move |conn| {
        let found: Option<(String, String, NaiveDateTime)> = browser_sessions::table
            .inner_join(users::table)
            .filter(browser_sessions::token_hash.eq(stored_hash(&cookie)))
            .filter(browser_sessions::ended_at.is_null())
            .filter(browser_sessions::last_seen_at.gt(now - policy.idle_timeout))
            .filter(browser_sessions::expires_at.gt(now))
            .filter(users::disabled.eq(false))
            .select((
                browser_sessions::id,
                browser_sessions::user_id,
                browser_sessions::auth_time,
            ))
            .first(conn)
            .optional()?;
        let Some((id, user_id, auth_time)) = found else {
            return Ok(None);
        };
        // Activity is recorded at most once a minute: an idle timeout of
        // minutes needs no finer clock, and each write costs a commit.
        diesel::update(browser_sessions::table.find(&id))
            .filter(browser_sessions::last_seen_at.lt(now - Duration::seconds(60)))
            .set(browser_sessions::last_seen_at.eq(now))
            .execute(conn)?;
        Ok(Some(BrowserSession {
            id,
            user_id: UserId::new(user_id),
            auth_time,
        }))
    })
    .await
}

/// Records that a user just entered their password in this browser, and
/// returns the SSO session with a new cookie value (which exists nowhere
/// else). The same user signing in again keeps their session — so the
/// applications signed in through it stay attached to it — with a fresh
/// `auth_time` and a new cookie (no fixation); another user's session in
/// this browser is ended.
pub async fn sign_in(
    db: &Db,
    policy: SsoPolicy,
    user_id: UserId,
    previous_cookie: Option<String>,
    info: ClientInfo,
) -> Result<(BrowserSession, String), DbError> {
    let now = db.now();
    db.run(move |conn| {
        conn.transaction(|conn| {
            crate::db::Db::lock_sqlite_for_write(conn)?;
            let cookie = random_token();
            let previous: Option<(String, String)> = match &previous_cookie {
                Some(c) if is_token_shaped(c) => browser_sessions::table
                    .filter(browser_sessions::token_hash.eq(stored_hash(c)))
                    .filter(browser_sessions::ended_at.is_null())
                    .select((browser_sessions::id, browser_sessions::user_id))
                    .first(conn)
                    .optional()?,
                _ => None,
            };
            let session = match previous {
                Some((id, owner)) if user_id == owner => {
                    diesel::update(browser_sessions::table.find(&id))
                        .set((
                            browser_sessions::token_hash.eq(stored_hash(&cookie)),
                            browser_sessions::auth_time.eq(now),
                            browser_sessions::last_seen_at.eq(now),
                            browser_sessions::expires_at.eq(now + policy.absolute_lifetime),
                        ))
                        .execute(conn)?;
                    BrowserSession {
                        id,
                        user_id,
                        auth_time: now,
                    }
                }
                other => {
                    if let Some((id, _)) = other {
                        end_sessions_with(conn, now, &[id], &info)?;
                    }
                    let session = BrowserSession {
                        id: uuid::Uuid::now_v7().to_string(),
                        user_id,
                        auth_time: now,
                    };
                    diesel::insert_into(browser_sessions::table)
                        .values((
                            browser_sessions::id.eq(&session.id),
                            browser_sessions::token_hash.eq(stored_hash(&cookie)),
                            browser_sessions::user_id.eq(session.user_id.as_str()),
                            browser_sessions::auth_time.eq(now),
                            browser_sessions::created_at.eq(now),
                            browser_sessions::last_seen_at.eq(now),
                            browser_sessions::expires_at.eq(now + policy.absolute_lifetime),
                        ))
                        .execute(conn)?;
                    session
                }
            };
            audit::record(
                conn,
                now,
                Event {
                    action: SIGN_IN,
                    outcome: "success",
                    user_id: Some(session.user_id.as_str()),
                    session_id: Some(&session.id),
                    ip: info.ip.as_deref(),
                    ..Event::default()
                },
            )?;
            Ok((session, cookie))
        })
    })
    .await
}

/// Ends the SSO session the cookie names and every token session started
/// from it. Returns whether there was a live one.
pub async fn sign_out(db: &Db, cookie: String, info: ClientInfo) -> Result<bool, DbError> {
    if !is_token_shaped(&cookie) {
        return Ok(false);
    }
    let now = db.now();
    db.run(move |conn| {
        conn.transaction(|conn| {
            let id: Option<String> = browser_sessions::table
                .filter(browser_sessions::token_hash.eq(stored_hash(&cookie)))
                .select(browser_sessions::id)
                .first(conn)
                .optional()?;
            Ok(end_sessions_with(conn, now, &id.into_iter().collect::<Vec<_>>(), &info)? > 0)
        })
    })
    .await
}

/// The token the sign-out confirmation form carries: derived from the SSO
/// cookie, so only a page shown to this browser can have it.
pub fn sign_out_token(cookie: &str) -> String {
    stored_hash(&format!("tessera sign-out confirmation\0{cookie}"))
}

/// Ends every SSO session of a user (a password change), inside the
/// caller's transaction: a browser signed in with the old password must
/// sign in again. Token sessions are the caller's to end.
pub fn end_all_of_user(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user_id: &UserId,
) -> Result<usize, DbError> {
    Ok(diesel::update(browser_sessions::table)
        .filter(browser_sessions::user_id.eq(user_id.as_str()))
        .filter(browser_sessions::ended_at.is_null())
        .set(browser_sessions::ended_at.eq(now))
        .execute(conn)?)
}

/// Whether the SSO session `id` has ended (signed out, or ended with a
/// password change, reset, disable) or is gone: what it signed in to since
/// must not be finished (an authorization code it issued is refused).
pub fn has_ended_with(conn: &mut AnyConnection, id: &str) -> Result<bool, DbError> {
    // On PostgreSQL the row stays locked (shared) until the caller's
    // transaction ends: a sign-out waits for it, then ends what it started.
    if let AnyConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT 1 FROM browser_sessions WHERE id = $1 FOR SHARE")
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
    }
    let ended: Option<Option<NaiveDateTime>> = browser_sessions::table
        .find(id)
        .select(browser_sessions::ended_at)
        .first(conn)
        .optional()?;
    Ok(!matches!(ended, Some(None)))
}

fn end_sessions_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    ids: &[String],
    info: &ClientInfo,
) -> Result<usize, DbError> {
    let mut ended = 0;
    for id in ids {
        let user_id: Option<String> = diesel::update(browser_sessions::table.find(id))
            .filter(browser_sessions::ended_at.is_null())
            .set(browser_sessions::ended_at.eq(now))
            .returning(browser_sessions::user_id)
            .get_result(conn)
            .optional()?;
        let Some(user_id) = user_id else { continue };
        ended += 1;
        audit::record(
            conn,
            now,
            Event {
                action: SIGN_OUT,
                outcome: "success",
                user_id: Some(&user_id),
                session_id: Some(id),
                ip: info.ip.as_deref(),
                ..Event::default()
            },
        )?;
        // The token sessions this sign-in started end with it.
        let started_here = Ending::StartedBy {
            browser_session_id: id.clone(),
        };
        let user_id = UserId::new(user_id);
        sessions::end_with(conn, now, &user_id, &started_here, end_reason::LOGOUT, info)?;
    }
    Ok(ended)
}

/// A sign-in in progress, as the login and consent forms carry it: which
/// stored request, and the CSRF token only the page shown to this browser
/// holds. No Debug: the token is a secret.
pub struct PendingForm {
    pub request_id: String,
    pub csrf_token: String,
}

/// Which page a sign-in in progress is on; a form is accepted only for the
/// page that was shown (a login page can't be answered with a consent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Login,
    Consent,
}

/// What is stored for a sign-in in progress: the stage, and the request
/// it continues (an OAuth authorization request; opaque here).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored<R> {
    stage: Stage,
    request: R,
}

/// A sign-in in progress, as loaded back.
pub struct Pending<R> {
    pub request: R,
    pub stage: Stage,
    pub form: PendingForm,
}

/// Why a submitted form can't continue its sign-in.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error(
        "this sign-in form has expired or was not opened in this browser; return to the application and start again"
    )]
    Stale,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Stores `request` until the user has signed in and consented, tied to the
/// browser (`browser_cookie`, a value the browser keeps in a cookie). A
/// browser has one sign-in in progress per client (`client_id`): starting
/// another replaces it, so requests can't pile up rows.
pub async fn save_pending<R: serde::Serialize + Send + 'static>(
    db: &Db,
    policy: SsoPolicy,
    client_id: String,
    request: R,
    stage: Stage,
    browser_cookie: String,
) -> Result<PendingForm, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let form = PendingForm {
            request_id: uuid::Uuid::now_v7().to_string(),
            csrf_token: random_token(),
        };
        let browser_hash = stored_hash(&browser_cookie);
        let stored = crate::db::json_text(&Stored { stage, request })?;
        conn.transaction(|conn| {
            diesel::delete(authorization_requests::table)
                .filter(authorization_requests::browser_hash.eq(&browser_hash))
                .filter(authorization_requests::client_id.eq(&client_id))
                .execute(conn)?;
            diesel::insert_into(authorization_requests::table)
                .values((
                    authorization_requests::id.eq(&form.request_id),
                    authorization_requests::browser_hash.eq(&browser_hash),
                    authorization_requests::csrf_hash.eq(stored_hash(&form.csrf_token)),
                    authorization_requests::client_id.eq(&client_id),
                    authorization_requests::request.eq(&stored),
                    authorization_requests::created_at.eq(now),
                    authorization_requests::expires_at.eq(now + policy.login_timeout),
                ))
                .execute(conn)?;
            Ok::<_, DbError>(())
        })?;
        Ok(form)
    })
    .await
}

/// The stored request a submitted form continues — only from the browser
/// that opened it, with the CSRF token of its page, before it expires.
pub async fn load_pending<R: serde::de::DeserializeOwned>(
    db: &Db,
    form: PendingForm,
    browser_cookie: Option<String>,
) -> Result<Pending<R>, PendingError> {
    let Some(browser_cookie) = browser_cookie.filter(|c| is_token_shaped(c)) else {
        return Err(PendingError::Stale);
    };
    if form.request_id.len() > 64 {
        return Err(PendingError::Stale);
    }
    let id = form.request_id.clone();
    let now = db.now();
    let row: Option<(String, String)> = db
        .run(move |conn| {
            Ok(authorization_requests::table
                .find(&id)
                .filter(authorization_requests::expires_at.gt(now))
                .filter(authorization_requests::browser_hash.eq(stored_hash(&browser_cookie)))
                .select((
                    authorization_requests::csrf_hash,
                    authorization_requests::request,
                ))
                .first(conn)
                .optional()?)
        })
        .await?;
    let Some((csrf_hash, stored)) = row else {
        return Err(PendingError::Stale);
    };
    let presented = stored_hash(&form.csrf_token);
    if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), csrf_hash.as_bytes())
        .is_err()
    {
        return Err(PendingError::Stale);
    }
    let stored: Stored<R> = serde_json::from_str(&stored).map_err(|_| PendingError::Stale)?;
    Ok(Pending {
        request: stored.request,
        stage: stored.stage,
        form,
    })
}

/// Moves a sign-in in progress on to the consent page.
pub async fn advance_pending<R: serde::Serialize>(
    db: &Db,
    request_id: String,
    request: R,
) -> Result<(), DbError> {
    let stored = crate::db::json_text(&Stored {
        stage: Stage::Consent,
        request,
    })?;
    db.run(move |conn| {
        diesel::update(authorization_requests::table.find(request_id))
            .set(authorization_requests::request.eq(stored))
            .execute(conn)?;
        Ok(())
    })
    .await
}

/// A sign-in is over (a code was issued, or the user declined).
pub async fn forget_pending(db: &Db, request_id: String) -> Result<(), DbError> {
    db.run(move |conn| {
        diesel::delete(authorization_requests::table.find(request_id)).execute(conn)?;
        Ok(())
    })
    .await
}

/// Whether the user already granted `client_id` every scope in `scope`.
pub async fn has_consented(
    db: &Db,
    user_id: UserId,
    client_id: ClientId,
    scope: String,
) -> Result<bool, DbError> {
    db.run(move |conn| {
        let granted: Option<String> = consents::table
            .find((user_id.as_str(), client_id.as_str()))
            .select(consents::scope)
            .first(conn)
            .optional()?;
        let Some(granted) = granted else {
            return Ok(false);
        };
        let granted: Vec<&str> = granted.split_ascii_whitespace().collect();
        Ok(scope.split_ascii_whitespace().all(|s| granted.contains(&s)))
    })
    .await
}

/// Remembers that the user granted `client_id` the scopes in `scope`, on
/// top of what they granted before.
pub async fn remember_consent(
    db: &Db,
    user_id: UserId,
    client_id: ClientId,
    scope: String,
) -> Result<(), DbError> {
    for attempt in 0.. {
        let (user_id, client_id, scope) = (user_id.clone(), client_id.clone(), scope.clone());
        let now = db.now();
        let result = db
            .run(move |conn| {
                conn.transaction(|conn| {
                    // Two tabs consenting at once: on SQLite the lock orders them; on
                    // PostgreSQL the loser's insert conflicts and is retried below,
                    // finding the winner's row to add to.
                    crate::db::Db::lock_sqlite_for_write(conn)?;
                    let before: Option<String> = consents::table
                        .find((user_id.as_str(), client_id.as_str()))
                        .select(consents::scope)
                        .first(conn)
                        .optional()?;
                    let mut granted: Vec<&str> = before
                        .as_deref()
                        .map(|b| b.split_ascii_whitespace().collect())
                        .unwrap_or_default();
                    for s in scope.split_ascii_whitespace() {
                        if !granted.contains(&s) {
                            granted.push(s);
                        }
                    }
                    let granted = granted.join(" ");
                    if before.is_some() {
                        diesel::update(
                            consents::table.find((user_id.as_str(), client_id.as_str())),
                        )
                        .set((consents::scope.eq(&granted), consents::granted_at.eq(now)))
                        .execute(conn)?;
                    } else {
                        diesel::insert_into(consents::table)
                            .values((
                                consents::user_id.eq(user_id.as_str()),
                                consents::client_id.eq(client_id.as_str()),
                                consents::scope.eq(&granted),
                                consents::granted_at.eq(now),
                            ))
                            .execute(conn)?;
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Err(DbError::UniqueViolation) if attempt == 0 => continue,
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

/// A client the user consented to, and what it was granted.
#[derive(Debug, Clone)]
pub struct Consent {
    pub client_id: ClientId,
    pub scope: String,
    pub granted_at: NaiveDateTime,
}

/// The user's consents, newest first.
pub async fn consents_of(db: &Db, user_id: UserId) -> Result<Vec<Consent>, DbError> {
    db.run(move |conn| {
        let rows: Vec<(String, String, NaiveDateTime)> = consents::table
            .filter(consents::user_id.eq(user_id.as_str()))
            .order(consents::granted_at.desc())
            .select((consents::client_id, consents::scope, consents::granted_at))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(client_id, scope, granted_at)| Consent {
                client_id: ClientId::new(client_id),
                scope,
                granted_at,
            })
            .collect())
    })
    .await
}

/// Forgets the user's consent to `client_id`, inside the caller's
/// transaction; false if there was none.
pub fn forget_consent_with(
    conn: &mut AnyConnection,
    user_id: &UserId,
    client_id: &ClientId,
) -> Result<bool, DbError> {
    let deleted = diesel::delete(consents::table.find((user_id.as_str(), client_id.as_str())))
        .execute(conn)?;
    Ok(deleted > 0)
}

/// Deletes ended and expired SSO sessions and stale sign-ins. Run
/// periodically with the session clean-up.
pub async fn delete_expired(db: &Db, policy: SsoPolicy) -> Result<usize, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let mut deleted = diesel::delete(browser_sessions::table)
            .filter(
                browser_sessions::ended_at
                    .is_not_null()
                    .or(browser_sessions::expires_at.lt(now))
                    .or(browser_sessions::last_seen_at.lt(now - policy.idle_timeout)),
            )
            .execute(conn)?;
        deleted += diesel::delete(authorization_requests::table)
            .filter(authorization_requests::expires_at.lt(now))
            .execute(conn)?;
        Ok(deleted)
    })
    .await
}

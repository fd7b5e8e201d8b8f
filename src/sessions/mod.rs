//! Sessions: each login starts one; its id is the `sid` of the access tokens
//! issued in it, and it owns a chain of refresh tokens. A session is live
//! while not ended, used within the idle timeout, and before its absolute
//! end. Refreshing rotates the refresh token; presenting a spent one again
//! (outside a short grace window) is taken as theft and ends the session.

mod refresh_token;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::audit::{self, Event};
use crate::configuration::SessionSettings;
use crate::db::schema::{refresh_tokens, sessions};
use crate::db::{AnyConnection, Db, DbError};
use crate::ids::{ClientId, SessionId, UserId};

pub use refresh_token::RefreshToken;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    #[error("the refresh token was already used; the session has been revoked")]
    Reused,
    #[error("the refresh token was issued to another client")]
    WrongClient,
    #[error("the refresh token's client must authenticate")]
    ClientAuthRequired,
    #[error("the requested scope exceeds the scope originally granted")]
    ScopeExceeded,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a session ended, as recorded in `end_reason`.
pub mod end_reason {
    pub const LOGOUT: &str = "logout";
    pub const LOGOUT_ALL: &str = "logout_all";
    pub const ENDED_BY_USER: &str = "ended_by_user";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const REFRESH_TOKEN_REUSE: &str = "refresh_token_reuse";
    pub const REVOKED: &str = "revoked";
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
    pub const ACCOUNT_DELETED: &str = "account_deleted";
    pub const AUTHORIZATION_CODE_REUSE: &str = "authorization_code_reuse";
    /// The user withdrew the client's consent (`DELETE /v1/me/consents/{id}`);
    /// recorded even when no session of it was live.
    pub const CONSENT_REVOKED: &str = "consent_revoked";
    /// An administrator asked for a new password before the next sign-in.
    pub const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";
}

/// How long sessions live and how refresh-token reuse is judged.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
    /// A spent token presented again this soon after (a concurrent
    /// refresh) is never taken for theft.
    pub reuse_grace: Duration,
    /// A spent token presented again this soon after (a retry of a refresh
    /// whose answer was lost) gets the same successor, while that is unused.
    pub retry_window: Duration,
}

impl From<&SessionSettings> for SessionPolicy {
    fn from(s: &SessionSettings) -> Self {
        let seconds = crate::configuration::duration_seconds;
        SessionPolicy {
            idle_timeout: seconds(s.idle_timeout_seconds),
            absolute_lifetime: seconds(s.absolute_lifetime_seconds),
            reuse_grace: seconds(s.refresh_reuse_grace_seconds),
            retry_window: seconds(
                s.refresh_retry_window_seconds
                    .max(s.refresh_reuse_grace_seconds),
            ),
        }
    }
}

/// Where a request came from, recorded with sessions and audit events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Sessions that are live at `now`: not ended, used since `idle_cutoff`,
/// not past their absolute end.
#[diesel::dsl::auto_type]
fn live(now: NaiveDateTime, idle_cutoff: NaiveDateTime) -> _ {
    sessions::ended_at
        .is_null()
        .and(sessions::last_seen_at.gt(idle_cutoff))
        .and(sessions::expires_at.gt(now))
}

/// The last use a session may have had and still be live at `now`.
fn idle_cutoff_at(now: NaiveDateTime, policy: &SessionPolicy) -> NaiveDateTime {
    now - policy.idle_timeout
}

/// A new session and its first refresh token.
pub struct Started {
    pub session_id: String,
    pub refresh_token: RefreshToken,
}

/// A password login: starts a session for `user_id` with `client_id` and
/// `scope`, recorded in the audit trail as a `login`.
pub async fn start_login(
    db: &Db,
    policy: SessionPolicy,
    user_id: UserId,
    client_id: ClientId,
    scope: String,
    client: ClientInfo,
) -> Result<Started, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let new = NewSession {
            user_id: &user_id,
            client_id: &client_id,
            scope: &scope,
            browser_session_id: None,
        };
        conn.transaction(|conn| {
            let started = start_with(conn, now, &policy, new, &client)?;
            audit::record(
                conn,
                now,
                Event {
                    action: audit::LOGIN,
                    outcome: "success",
                    user_id: Some(user_id.as_str()),
                    session_id: Some(&started.session_id),
                    client_id: Some(client_id.as_str()),
                    ip: client.ip.as_deref(),
                    ..Event::default()
                },
            )?;
            Ok(started)
        })
    })
    .await
}

/// A session about to start.
pub struct NewSession<'a> {
    pub user_id: &'a UserId,
    pub client_id: &'a ClientId,
    pub scope: &'a str,
    /// The SSO session it was started from (authorization code flow).
    pub browser_session_id: Option<&'a str>,
}

/// [`start`] inside a caller's transaction.
pub fn start_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    policy: &SessionPolicy,
    new: NewSession<'_>,
    client: &ClientInfo,
) -> Result<Started, DbError> {
    let session_id = uuid::Uuid::now_v7().to_string();
    let refresh_token = RefreshToken::generate();
    // Bounded so a client can't make us store kilobytes per login.
    let user_agent = client
        .user_agent
        .as_ref()
        .map(|ua| ua.chars().take(512).collect::<String>());
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session_id),
            sessions::user_id.eq(new.user_id.as_str()),
            sessions::client_id.eq(new.client_id.as_str()),
            sessions::scope.eq(new.scope),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
            sessions::expires_at.eq(now + policy.absolute_lifetime),
            sessions::user_agent.eq(user_agent),
            sessions::ip.eq(&client.ip),
            sessions::browser_session_id.eq(new.browser_session_id),
        ))
        .execute(conn)?;
    insert_refresh_token(conn, &refresh_token, &session_id, now)?;
    Ok(Started {
        session_id,
        refresh_token,
    })
}

fn insert_refresh_token(
    conn: &mut AnyConnection,
    token: &RefreshToken,
    session_id: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token.hash()),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::issued_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The outcome of a successful refresh: the session, the scope granted, and
/// the refresh token that now continues its chain.
pub struct Refreshed {
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub refresh_token: RefreshToken,
}

/// Who is refreshing, as the token endpoint established it.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A client that authenticated with its secret.
    Client(String),
    /// No client authentication: fine for public clients' sessions, which
    /// may name their client.
    Anonymous { claimed_client_id: Option<String> },
}

/// A refresh, as asked for.
pub struct RefreshRequest {
    pub token: RefreshToken,
    pub caller: Caller,
    /// A narrower scope than the session's, if asked for.
    pub scope: Option<Vec<String>>,
    /// The built-in first-party client (`login.client_id`), which is public.
    pub builtin_public_client: String,
}

/// What the refresh transaction found; a reuse must commit its revocation,
/// so it is an outcome, not an error that would roll it back.
enum Rotation<T = ()> {
    Rotated(Refreshed, T),
    Reused { session_id: String },
    Invalid,
}

/// Ends a refresh transaction early, rolling it back: nothing is spent.
enum Refusal {
    WrongClient,
    ClientAuthRequired,
    ScopeExceeded,
    Db(DbError),
}

impl From<diesel::result::Error> for Refusal {
    fn from(e: diesel::result::Error) -> Self {
        Refusal::Db(e.into())
    }
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        Refusal::Db(e)
    }
}

/// Rotates the presented token: marks it spent and issues its successor, in
/// one transaction whose first statement is an atomic compare-and-set on the
/// token (`spent_at IS NULL`), so two concurrent refreshes can't both win.
/// The loser, and a retry within the retry window, get the same successor
/// while it is unused; otherwise the session is revoked. Whether the caller
/// may refresh this session, and with the scope asked, is decided inside
/// the transaction: a refusal spends nothing. `with` reads, in the same
/// transaction, whatever else the answer needs, and the audit event is
/// written there too: once the rotation commits, nothing of the database is
/// left to fail.
pub async fn refresh<T: Send + 'static>(
    db: &Db,
    policy: SessionPolicy,
    request: RefreshRequest,
    client: ClientInfo,
    with: impl FnOnce(&mut AnyConnection, &Refreshed) -> Result<T, DbError> + Send + 'static,
) -> Result<(Refreshed, T), SessionError> {
    let now = db.now();
    db.run(move |conn| {
        let ip = client.ip.as_deref();
        let outcome = conn.transaction(|conn| match rotate(conn, now, &policy, &request)? {
            Rotation::Rotated(r, ()) => {
                let event = Event {
                    action: audit::REFRESH,
                    outcome: "success",
                    user_id: Some(&r.user_id),
                    session_id: Some(&r.session_id),
                    client_id: Some(&r.client_id),
                    ip,
                    ..Event::default()
                };
                audit::record(conn, now, event)?;
                let extra = with(conn, &r)?;
                Ok(Rotation::Rotated(r, extra))
            }
            Rotation::Reused { session_id } => Ok(Rotation::Reused { session_id }),
            Rotation::Invalid => Ok(Rotation::Invalid),
        });
        let failure = |detail| Event {
            action: audit::REFRESH,
            outcome: "failure",
            ip,
            detail: Some(detail),
            ..Event::default()
        };
        let (event, result) = match outcome {
            Ok(Rotation::Rotated(r, extra)) => return Ok(Ok((r, extra))),
            Ok(Rotation::Reused { session_id }) => {
                tracing::warn!(%session_id, "refresh token reuse: session revoked");
                let event = Event {
                    session_id: Some(&session_id),
                    ..failure("refresh token reuse; session revoked")
                };
                audit::record(conn, now, event)?;
                return Ok(Err(SessionError::Reused));
            }
            Ok(Rotation::Invalid) => (
                failure("invalid, expired or revoked refresh token"),
                SessionError::InvalidGrant,
            ),
            Err(Refusal::WrongClient) => (
                failure("refresh token presented by another client"),
                SessionError::WrongClient,
            ),
            Err(Refusal::ClientAuthRequired) => (
                failure("confidential client did not authenticate"),
                SessionError::ClientAuthRequired,
            ),
            Err(Refusal::ScopeExceeded) => (
                failure("scope exceeds the session's"),
                SessionError::ScopeExceeded,
            ),
            Err(Refusal::Db(e)) => return Err(e),
        };
        audit::record(conn, now, event)?;
        Ok(Err(result))
    })
    .await?
}

fn rotate(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    policy: &SessionPolicy,
    request: &RefreshRequest,
) -> Result<Rotation, Refusal> {
    let idle_cutoff = idle_cutoff_at(now, policy);
    let presented = &request.token;
    let hash = presented.hash();
    let successor = RefreshToken::generate();
    let spent: Option<String> = diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::token_hash.eq(&hash))
        .filter(refresh_tokens::spent_at.is_null())
        .set((
            refresh_tokens::spent_at.eq(now),
            refresh_tokens::successor_sealed.eq(presented.seal(&successor)),
        ))
        .returning(refresh_tokens::session_id)
        .get_result(conn)
        .optional()?;
    if let Some(session_id) = spent {
        let Some(session) = touch_live_session(conn, &session_id, now, idle_cutoff)? else {
            return Ok(Rotation::Invalid); // the session is over: nothing to keep
        };
        let scope = admit(conn, request, &session)?;
        insert_refresh_token(conn, &successor, &session_id, now)?;
        return Ok(Rotation::Rotated(
            session.refreshed(session_id, scope, successor),
            (),
        ));
    }

    // Not a live token: a spent one (a concurrent refresh, or theft), or none.
    let Some((session_id, spent_at, sealed)) = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(&hash))
        .select((
            refresh_tokens::session_id,
            refresh_tokens::spent_at,
            refresh_tokens::successor_sealed,
        ))
        .first::<(String, Option<NaiveDateTime>, Option<String>)>(conn)
        .optional()?
    else {
        return Ok(Rotation::Invalid);
    };
    let since =
        |window: Duration| window > Duration::zero() && spent_at.is_some_and(|t| now - t <= window);
    let successor = sealed.and_then(|s| presented.open(&s));
    let successor_unused = match &successor {
        Some(successor) => !is_spent(conn, successor)?,
        None => false,
    };
    if let Some(successor) = successor.filter(|_| successor_unused && since(policy.retry_window)) {
        // A concurrent refresh, or a retry of one whose answer was lost
        // (a 503 after the commit): the same successor again, which only
        // the holder of the spent token can open.
        let Some(session) = touch_live_session(conn, &session_id, now, idle_cutoff)? else {
            return Ok(Rotation::Invalid);
        };
        let scope = admit(conn, request, &session)?;
        return Ok(Rotation::Rotated(
            session.refreshed(session_id, scope, successor),
            (),
        ));
    }
    if since(policy.reuse_grace) {
        // The chain moved on in the instant between two concurrent
        // refreshes: refuse, but don't take the late one for a thief.
        return Ok(Rotation::Invalid);
    }
    let revoked = diesel::update(sessions::table.find(&session_id))
        .filter(sessions::ended_at.is_null())
        .set((
            sessions::ended_at.eq(now),
            sessions::end_reason.eq(end_reason::REFRESH_TOKEN_REUSE),
        ))
        .execute(conn)?;
    Ok(if revoked > 0 {
        Rotation::Reused { session_id }
    } else {
        Rotation::Invalid // the session had already ended
    })
}

fn is_spent(conn: &mut AnyConnection, token: &RefreshToken) -> Result<bool, DbError> {
    let spent: Option<Option<NaiveDateTime>> = refresh_tokens::table
        .find(token.hash())
        .select(refresh_tokens::spent_at)
        .first(conn)
        .optional()?;
    Ok(!matches!(spent, Some(None)))
}

/// Whether the caller may refresh this session, and the scope granted: the
/// session's, or the narrower one asked for.
fn admit(
    conn: &mut AnyConnection,
    request: &RefreshRequest,
    session: &LiveSession,
) -> Result<String, Refusal> {
    match &request.caller {
        Caller::Client(id) if *id != session.client_id => return Err(Refusal::WrongClient),
        Caller::Client(_) => {}
        Caller::Anonymous { claimed_client_id } => {
            if claimed_client_id
                .as_ref()
                .is_some_and(|c| *c != session.client_id)
            {
                return Err(Refusal::WrongClient);
            }
            if !caller_may_act(
                conn,
                None,
                &session.client_id,
                &request.builtin_public_client,
            )? {
                return Err(Refusal::ClientAuthRequired);
            }
        }
    }
    let Some(asked) = &request.scope else {
        return Ok(session.scope.clone());
    };
    let granted: Vec<&str> = session.scope.split_ascii_whitespace().collect();
    if !asked.iter().all(|s| granted.contains(&s.as_str())) {
        return Err(Refusal::ScopeExceeded);
    }
    Ok(asked.join(" "))
}

struct LiveSession {
    user_id: String,
    client_id: String,
    scope: String,
}

impl LiveSession {
    fn refreshed(
        self,
        session_id: String,
        scope: String,
        refresh_token: RefreshToken,
    ) -> Refreshed {
        Refreshed {
            session_id,
            user_id: self.user_id,
            client_id: self.client_id,
            scope,
            refresh_token,
        }
    }
}

/// Marks a live session used now; None if it isn't live.
fn touch_live_session(
    conn: &mut AnyConnection,
    session_id: &str,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<Option<LiveSession>, DbError> {
    let row: Option<(String, String, String)> = diesel::update(sessions::table.find(session_id))
        .filter(live(now, idle_cutoff))
        .set(sessions::last_seen_at.eq(now))
        .returning((sessions::user_id, sessions::client_id, sessions::scope))
        .get_result(conn)
        .optional()?;
    Ok(row.map(|(user_id, client_id, scope)| LiveSession {
        user_id,
        client_id,
        scope,
    }))
}

/// Whether the session is live: the check Tessera's own protected routes
/// make on every access token's `sid` (one primary-key lookup).
pub async fn is_live(
    db: &Db,
    policy: SessionPolicy,
    session_id: SessionId,
) -> Result<bool, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let idle_cutoff = idle_cutoff_at(now, &policy);
        let found: Option<String> = sessions::table
            .find(session_id.as_str())
            .filter(live(now, idle_cutoff))
            .select(sessions::id)
            .first(conn)
            .optional()?;
        Ok(found.is_some())
    })
    .await
}

/// The live session a refresh token (unspent) belongs to.
pub struct TokenSession {
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: NaiveDateTime,
}

/// The live session of an unspent refresh token, for introspection.
pub async fn find_by_refresh_token(
    db: &Db,
    policy: SessionPolicy,
    token: RefreshToken,
) -> Result<Option<TokenSession>, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let idle_cutoff = idle_cutoff_at(now, &policy);
        let row: Option<(String, String, String, String, NaiveDateTime)> = refresh_tokens::table
            .inner_join(sessions::table)
            .filter(refresh_tokens::token_hash.eq(token.hash()))
            .filter(refresh_tokens::spent_at.is_null())
            .filter(live(now, idle_cutoff))
            .select((
                sessions::id,
                sessions::user_id,
                sessions::client_id,
                sessions::scope,
                sessions::expires_at,
            ))
            .first(conn)
            .optional()?;
        Ok(row.map(
            |(session_id, user_id, client_id, scope, expires_at)| TokenSession {
                session_id,
                user_id,
                client_id,
                scope,
                expires_at,
            },
        ))
    })
    .await
}

/// A live session, as its owner may see it: never token material. The
/// API shows it as `http::dto::SessionView`.
#[derive(Debug)]
pub struct SessionView {
    pub id: String,
    pub client_id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session of the token that asked.
    pub current: bool,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: String,
    client_id: String,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
}

/// The user's live sessions, most recently used first.
pub async fn list_live(
    db: &Db,
    policy: SessionPolicy,
    user_id: UserId,
    current: Option<SessionId>,
) -> Result<Vec<SessionView>, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let idle_cutoff = idle_cutoff_at(now, &policy);
        let rows: Vec<SessionRow> = sessions::table
            .filter(sessions::user_id.eq(user_id.as_str()))
            .filter(live(now, idle_cutoff))
            .order(sessions::last_seen_at.desc())
            .select(SessionRow::as_select())
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|row| SessionView {
                current: current.as_ref().is_some_and(|c| *c == row.id),
                id: row.id,
                client_id: row.client_id,
                created_at: row.created_at,
                last_used_at: row.last_seen_at,
                expires_at: row.expires_at,
                user_agent: row.user_agent,
                ip: row.ip,
            })
            .collect())
    })
    .await
}

/// Which of a user's sessions to end.
#[derive(Debug, Clone)]
pub enum Ending {
    One(SessionId),
    All,
    AllBut(SessionId),
    /// Those a browser's SSO session started (its sign-out).
    StartedBy {
        browser_session_id: String,
    },
    /// Those of one client (its consent withdrawn).
    OfClient(ClientId),
}

/// Ends the user's sessions as `ending` says (only the user's own); returns
/// how many were live. Recorded under `reason` in the audit trail.
pub async fn end(
    db: &Db,
    user_id: UserId,
    ending: Ending,
    reason: &'static str,
    client: ClientInfo,
) -> Result<usize, DbError> {
    let now = db.now();
    db.run(move |conn| end_with(conn, now, &user_id, &ending, reason, &client))
        .await
}

/// Ends one session, whoever's it is (a replayed authorization code
/// revokes what the code issued), inside the caller's transaction.
pub fn end_session_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    session_id: &SessionId,
    reason: &'static str,
    client: &ClientInfo,
) -> Result<usize, DbError> {
    let owner: Option<String> = sessions::table
        .find(session_id.as_str())
        .select(sessions::user_id)
        .first(conn)
        .optional()?;
    let Some(owner) = owner else {
        return Ok(0);
    };
    let ending = Ending::One(session_id.clone());
    end_with(conn, now, &UserId::new(owner), &ending, reason, client)
}

/// [`end`] inside a caller's transaction: the one way sessions end, so
/// every ending is in the audit trail whichever operation caused it.
pub fn end_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    user_id: &UserId,
    ending: &Ending,
    reason: &'static str,
    client: &ClientInfo,
) -> Result<usize, DbError> {
    let base = diesel::update(sessions::table)
        .filter(sessions::user_id.eq(user_id.as_str()))
        .filter(sessions::ended_at.is_null());
    let set = (sessions::ended_at.eq(now), sessions::end_reason.eq(reason));
    let ended = match ending {
        Ending::One(id) => base
            .filter(sessions::id.eq(id.as_str()))
            .set(set)
            .execute(conn)?,
        Ending::All => base.set(set).execute(conn)?,
        Ending::AllBut(id) => base
            .filter(sessions::id.ne(id.as_str()))
            .set(set)
            .execute(conn)?,
        Ending::StartedBy { browser_session_id } => base
            .filter(sessions::browser_session_id.eq(browser_session_id))
            .set(set)
            .execute(conn)?,
        Ending::OfClient(client) => base
            .filter(sessions::client_id.eq(client.as_str()))
            .set(set)
            .execute(conn)?,
    };
    let session_id = match ending {
        Ending::One(id) | Ending::AllBut(id) => Some(id.as_str()),
        Ending::All | Ending::StartedBy { .. } | Ending::OfClient(_) => None,
    };
    audit::record(
        conn,
        now,
        Event {
            action: reason,
            outcome: if ended > 0 { "success" } else { "no_session" },
            user_id: Some(user_id.as_str()),
            session_id,
            client_id: match ending {
                Ending::OfClient(client) => Some(client.as_str()),
                _ => None,
            },
            ip: client.ip.as_deref(),
            ..Event::default()
        },
    )?;
    Ok(ended)
}

/// Whether `caller` (an authenticated client id, or none) may act on a
/// session of `session_client`: its own client may; anyone holding the token
/// may for a public client's session (the built-in login client's among
/// them), as RFC 7009 §2.1 and RFC 6749 §6 have it.
pub fn caller_may_act(
    conn: &mut AnyConnection,
    caller: Option<&str>,
    session_client: &str,
    builtin_public_client: &str,
) -> Result<bool, DbError> {
    Ok(caller == Some(session_client)
        || session_client == builtin_public_client
        || crate::clients::is_public(conn, session_client)?)
}

/// RFC 7009 revocation of a refresh token: ends its session, if `caller`
/// may. Unknown, already revoked or someone else's tokens are left alone
/// (the caller answers 200 either way).
pub async fn revoke_refresh_token(
    db: &Db,
    token: RefreshToken,
    caller: Option<String>,
    builtin_public_client: String,
    client: ClientInfo,
) -> Result<(), DbError> {
    let now = db.now();
    db.run(move |conn| {
        let session: Option<(String, String, String)> = refresh_tokens::table
            .inner_join(sessions::table)
            .filter(refresh_tokens::token_hash.eq(token.hash()))
            .select((sessions::id, sessions::user_id, sessions::client_id))
            .first(conn)
            .optional()?;
        let Some((session_id, user_id, session_client)) = session else {
            return Ok(());
        };
        if !caller_may_act(
            conn,
            caller.as_deref(),
            &session_client,
            &builtin_public_client,
        )? {
            return Ok(());
        }
        let ended = diesel::update(sessions::table.find(&session_id))
            .filter(sessions::ended_at.is_null())
            .set((
                sessions::ended_at.eq(now),
                sessions::end_reason.eq(end_reason::REVOKED),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            Event {
                action: end_reason::REVOKED,
                outcome: if ended > 0 { "success" } else { "no_session" },
                user_id: Some(&user_id),
                session_id: Some(&session_id),
                client_id: Some(&session_client),
                ip: client.ip.as_deref(),
                ..Event::default()
            },
        )
    })
    .await
}

/// Deletes sessions that ended or expired (their refresh tokens go with
/// them). Run periodically off the request path.
pub async fn delete_expired(db: &Db, policy: SessionPolicy) -> Result<usize, DbError> {
    let now = db.now();
    db.run(move |conn| {
        let idle_cutoff = idle_cutoff_at(now, &policy);
        // Ended sessions are kept a little while, so a late reuse of their
        // refresh tokens is still recognised and audited.
        let keep_ended_until = now - policy.reuse_grace - Duration::minutes(10);
        Ok(diesel::delete(sessions::table)
            .filter(
                sessions::ended_at
                    .lt(keep_ended_until)
                    .or(sessions::expires_at.le(now))
                    .or(sessions::last_seen_at.le(idle_cutoff)),
            )
            .execute(conn)?)
    })
    .await
}

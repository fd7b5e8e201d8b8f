//! The authorization code flow (RFC 6749 §4.1, OpenID Connect Core §3.1)
//! with PKCE (RFC 7636): validating an authorization request, issuing a
//! code, and redeeming it at the token endpoint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::granted_scope;
use crate::audit::{self, Event};
use crate::clients::{self, AUTHORIZATION_CODE, Client, ClientError};
use crate::db::schema::authorization_codes;
use crate::db::{AnyConnection, Db, DbError};
use crate::ids::{ClientId, SessionId, UserId};
use crate::secrets::{is_token_shaped, random_token, stored_hash};
use crate::sessions::{ClientInfo, NewSession, SessionPolicy, Started, start_with};
use crate::tokens::OwnAudiences;

/// Longest `state`, `nonce` or hint we carry around.
const MAX_VALUE_LEN: usize = 2048;

/// Which `prompt` values (OIDC Core §3.1.2.1) the request carried.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// An authorization request whose client and redirect URI are known good
/// and whose parameters are valid: what a code will be bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// RFC 8707 resources asked for, each one of the client's audiences.
    #[serde(default)]
    pub resources: Vec<String>,
}

/// Where the user is sent back to, with `state` to return untouched.
#[derive(Debug, Clone)]
pub struct ReturnTo {
    pub redirect_uri: String,
    pub state: Option<String>,
}

/// What is wrong with an authorization request.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or its redirect URI can't be trusted: the error is shown
    /// to the user and nobody is redirected anywhere (no open redirector).
    #[error("{0}")]
    Untrusted(String),
    /// Anything after that goes back to the client (RFC 6749 §4.1.2.1).
    #[error("{description}")]
    ToClient {
        to: ReturnTo,
        error: &'static str,
        description: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Authorization request parameters, as sent in the query or the body.
pub struct RequestParams<'a>(pub &'a [(String, String)]);

impl RequestParams<'_> {
    /// A parameter that must not repeat (RFC 6749 §3.1); empty is absent.
    pub fn one(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("parameter {name} is repeated"));
        }
        Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
    }

    /// A parameter that may repeat (RFC 8707 `resource`), without empties
    /// and repeats.
    pub fn all(&self, name: &str) -> Vec<String> {
        clients::dedup(
            self.0
                .iter()
                .filter(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }
}

/// Checks a request in the order RFC 6749 §4.1.2.1 demands: first the
/// client and the exact redirect URI, whose failures are never redirected;
/// then everything else, whose failures go back to the client.
pub async fn validate(
    db: &Db,
    params: RequestParams<'_>,
    own: &OwnAudiences,
) -> Result<(AuthorizationRequest, Client), AuthorizeError> {
    let client_id = requested_client_id(&params)?;
    let client = match clients::find(db, ClientId::new(client_id)).await {
        Ok(client) => client,
        Err(ClientError::Db(e)) => return Err(e.into()),
        Err(_) => {
            return Err(AuthorizeError::Untrusted(
                "the application is not registered here".into(),
            ));
        }
    };
    let request = validate_for(&params, &client, own)?;
    Ok((request, client))
}

/// The `client_id` of an authorization request, before it is looked up.
pub fn requested_client_id<'p>(params: &'p RequestParams<'_>) -> Result<&'p str, AuthorizeError> {
    let untrusted = |m: String| AuthorizeError::Untrusted(m);
    let client_id = params
        .one("client_id")
        .map_err(untrusted)?
        .ok_or_else(|| untrusted("the request has no client_id".into()))?;
    if client_id.len() > 200 {
        return Err(untrusted("the client_id is not valid".into()));
    }
    Ok(client_id)
}

/// The rest of [`validate`], for the client the request names.
pub fn validate_for(
    params: &RequestParams<'_>,
    client: &Client,
    own: &OwnAudiences,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let untrusted = |m: String| AuthorizeError::Untrusted(m);
    let redirect_uri = params
        .one("redirect_uri")
        .map_err(untrusted)?
        .ok_or_else(|| untrusted("the request has no redirect_uri".into()))?;
    // Canonical form only, and a loopback URI on any port (RFC 8252 §7.3):
    // the code then goes to, and is bound to, the URI as requested.
    if !clients::is_registered_redirect(&client.redirect_uris, redirect_uri) {
        return Err(untrusted(
            "the redirect_uri is not registered for this client".into(),
        ));
    }
    // From here on, errors go back to the client with its state, if the
    // state itself is usable.
    let state = params.one("state").ok().flatten().map(str::to_owned);
    let to = ReturnTo {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone().filter(|s| s.len() <= MAX_VALUE_LEN),
    };
    let fail = |error: &'static str, description: String| AuthorizeError::ToClient {
        to: to.clone(),
        error,
        description,
    };
    let invalid = |description: String| fail("invalid_request", description);
    let one = |name: &str| params.one(name).map_err(invalid);

    if state.as_ref().is_some_and(|s| s.len() > MAX_VALUE_LEN) {
        return Err(invalid(format!(
            "state is longer than {MAX_VALUE_LEN} bytes"
        )));
    }
    if one("request")?.is_some() {
        return Err(fail(
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    if one("request_uri")?.is_some() {
        return Err(fail(
            "request_uri_not_supported",
            "request_uri is not supported".into(),
        ));
    }
    match one("response_type")? {
        Some("code") => {}
        Some(other) => {
            return Err(fail(
                "unsupported_response_type",
                format!("response_type {other:?} is not supported; use code"),
            ));
        }
        None => return Err(invalid("response_type is required".into())),
    }
    if let Some(mode) = one("response_mode")?
        && mode != "query"
    {
        return Err(invalid(format!(
            "response_mode {mode:?} is not supported; use query"
        )));
    }
    if !client.allows_grant(AUTHORIZATION_CODE) {
        return Err(fail(
            "unauthorized_client",
            "this client may not use the authorization code flow".into(),
        ));
    }
    let scope = match granted_scope(one("scope")?, &client.allowed_scopes()) {
        Ok(scope) => scope,
        Err(e) => return Err(fail("invalid_scope", e.to_string())),
    };
    let nonce = one("nonce")?.map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_VALUE_LEN) {
        return Err(invalid(format!(
            "nonce is longer than {MAX_VALUE_LEN} bytes"
        )));
    }
    let code_challenge = match (one("code_challenge")?, one("code_challenge_method")?) {
        (None, None) if client.public => {
            return Err(invalid(
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            ));
        }
        // RFC 9700 §2.1.1: without PKCE only the OpenID nonce protects the
        // code against injection.
        (None, None)
            if nonce.is_none() || !scope.split_ascii_whitespace().any(|s| s == "openid") =>
        {
            return Err(invalid(
                "PKCE is required (code_challenge with code_challenge_method=S256), or an OpenID request with a nonce".into(),
            ));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "code_challenge_method without code_challenge".into(),
            ));
        }
        (Some(challenge), Some("S256")) => {
            if !is_s256_challenge(challenge) {
                return Err(invalid(
                    "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"
                        .into(),
                ));
            }
            Some(challenge.to_owned())
        }
        // RFC 7636 makes `plain` the default; RFC 9700 §2.1.1 says not to
        // accept it.
        (Some(_), method) => {
            return Err(invalid(format!(
                "code_challenge_method {:?} is not supported; use S256",
                method.unwrap_or("plain")
            )));
        }
    };
    let mut prompt = Prompt::default();
    for value in one("prompt")?.unwrap_or_default().split_ascii_whitespace() {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => {} // one account per browser: nothing to select
            other => return Err(invalid(format!("prompt {other:?} is not supported"))),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(invalid(
            "prompt=none cannot be combined with other values".into(),
        ));
    }
    let max_age = match one("max_age")? {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(invalid(
                    "max_age must be a non-negative number of seconds".into(),
                ));
            }
        },
    };
    let login_hint = one("login_hint")?
        .filter(|h| h.len() <= 320)
        .map(str::to_owned);
    let resources = params.all("resource");
    let allowed = client.allowed_audiences(own);
    if let Some(bad) = resources.iter().find(|r| !allowed.contains(r)) {
        return Err(fail(
            "invalid_target",
            format!("this client may not have tokens for {bad:?}"),
        ));
    }
    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: to.state.clone(),
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
        resources,
    };
    Ok(request)
}

/// Deletes codes that expired a while ago. Redeemed ones are kept ten
/// minutes past their expiry, so a late second use is still recognised and
/// revokes what the first one got.
pub async fn delete_expired_codes(db: &Db) -> Result<usize, DbError> {
    let now = db.now();
    db.run(move |conn| {
        Ok(diesel::delete(authorization_codes::table)
            .filter(authorization_codes::expires_at.lt(now - chrono::Duration::minutes(10)))
            .execute(conn)?)
    })
    .await
}

/// RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is exactly 43 characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|b| b.len() == 32)
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.6: `verifier` is well-formed and its S256 is `challenge`
/// (compared in constant time).
pub fn verifier_matches(challenge: &str, verifier: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    is_code_verifier(verifier)
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            computed.as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

/// `uri` with `params` added to its query, keeping what it had.
pub fn redirect_with(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.into()
        }
        // Registered URIs were parsed at registration; this can't happen.
        Err(_) => uri.to_owned(),
    }
}

/// Who signed in, for the code about to be issued.
pub struct Authentication<'a> {
    pub user_id: &'a UserId,
    pub browser_session_id: &'a str,
    pub auth_time: NaiveDateTime,
}

/// Issues a single-use code bound to the request (client, redirect URI,
/// PKCE challenge, nonce) and the sign-in; only its hash is stored.
pub async fn issue_code(
    db: &Db,
    code_ttl: chrono::Duration,
    request: &AuthorizationRequest,
    who: Authentication<'_>,
) -> Result<String, DbError> {
    let code = random_token();
    let now = db.now();
    let values = (
        authorization_codes::code_hash.eq(stored_hash(&code)),
        authorization_codes::client_id.eq(request.client_id.clone()),
        authorization_codes::user_id.eq(who.user_id.as_str().to_owned()),
        authorization_codes::browser_session_id.eq(who.browser_session_id.to_owned()),
        authorization_codes::redirect_uri.eq(request.redirect_uri.clone()),
        authorization_codes::scope.eq(request.scope.clone()),
        authorization_codes::nonce.eq(request.nonce.clone()),
        authorization_codes::code_challenge.eq(request.code_challenge.clone()),
        authorization_codes::auth_time.eq(who.auth_time),
        authorization_codes::created_at.eq(now),
        authorization_codes::expires_at.eq(now + code_ttl),
        authorization_codes::resources
            .eq(serde_json::to_string(&request.resources).unwrap_or_else(|_| "[]".to_owned())),
    );
    db.run(move |conn| {
        diesel::insert_into(authorization_codes::table)
            .values(values)
            .execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(code)
}

/// A `grant_type=authorization_code` request (RFC 6749 §4.1.3).
pub struct CodeRedemption {
    pub code: String,
    pub client: Client,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    /// RFC 8707 `resource`s asked for at the token endpoint: within those
    /// of the authorization request, if it named any.
    pub resources: Vec<String>,
}

/// A redeemed code: the token session it started and what the tokens say.
pub struct Redeemed {
    /// The user, as the redemption found it.
    pub user: crate::accounts::User,
    pub client_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: NaiveDateTime,
    pub browser_session_id: String,
    /// The resources the tokens are for; none means the client's default.
    pub resources: Vec<String>,
    pub started: Started,
}

/// Why a code was refused; all are `invalid_grant`.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("the authorization code is invalid or expired")]
    Invalid,
    #[error("the authorization code was already used; the tokens issued for it are revoked")]
    Reused,
    #[error("the authorization code was issued to another client")]
    WrongClient,
    #[error("redirect_uri does not match the authorization request")]
    WrongRedirect,
    #[error("code_verifier does not match the code_challenge")]
    WrongVerifier,
    #[error("code_verifier is required")]
    MissingVerifier,
    #[error("code_verifier was sent but the authorization request had no code_challenge")]
    UnexpectedVerifier,
    #[error("resource {0:?} was not part of the authorization request")]
    ResourceNotRequested(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RedeemError {
    fn from(e: diesel::result::Error) -> Self {
        RedeemError::Db(e.into())
    }
}

/// What the redemption transaction found; a reuse must commit its
/// revocation, so it is an outcome, not an error that would roll it back.
enum Redemption {
    Redeemed(Box<Redeemed>),
    Reused,
}

#[derive(Queryable)]
struct CodeRow {
    client_id: String,
    user_id: String,
    browser_session_id: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    session_id: Option<String>,
    resources: String,
}

/// Redeems a code once: checks client, redirect URI, expiry and PKCE (a
/// refusal spends nothing), then marks it used with a compare-and-set and
/// starts a token session, in one transaction. A code presented again
/// revokes the session its first use started (RFC 6749 §4.1.2).
pub async fn redeem(
    db: &Db,
    policy: SessionPolicy,
    redemption: CodeRedemption,
    info: ClientInfo,
) -> Result<Redeemed, RedeemError> {
    let now = db.now();
    db.run(move |conn| {
        let outcome = conn.transaction(|conn| redeem_with(conn, now, &policy, &redemption, &info));
        let client_id = redemption.client.client_id.as_str();
        let record = |conn: &mut AnyConnection, outcome: &str, detail: Option<&str>| {
            audit::record(
                conn,
                now,
                Event {
                    action: AUTHORIZATION_CODE,
                    outcome,
                    client_id: Some(client_id),
                    ip: info.ip.as_deref(),
                    detail,
                    ..Event::default()
                },
            )
        };
        match outcome {
            Ok(Redemption::Redeemed(r)) => Ok(Ok(*r)),
            Ok(Redemption::Reused) => {
                tracing::warn!(client_id, "authorization code reuse: its tokens revoked");
                record(conn, "failure", Some("code reuse; tokens revoked"))?;
                Ok(Err(RedeemError::Reused))
            }
            Err(RedeemError::Db(e)) => Err(e),
            Err(e) => {
                record(conn, "failure", Some(&e.to_string()))?;
                Ok(Err(e))
            }
        }
    })
    .await?
}

fn redeem_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    policy: &SessionPolicy,
    redemption: &CodeRedemption,
    info: &ClientInfo,
) -> Result<Redemption, RedeemError> {
    if !is_token_shaped(&redemption.code) {
        return Err(RedeemError::Invalid);
    }
    // Reads before it writes: on SQLite, queue behind a concurrent
    // redemption instead of failing at the write.
    crate::db::Db::lock_sqlite_for_write(conn)?;
    let hash = stored_hash(&redemption.code);
    let row: Option<CodeRow> = authorization_codes::table
        .find(&hash)
        .select((
            authorization_codes::client_id,
            authorization_codes::user_id,
            authorization_codes::browser_session_id,
            authorization_codes::redirect_uri,
            authorization_codes::scope,
            authorization_codes::nonce,
            authorization_codes::code_challenge,
            authorization_codes::auth_time,
            authorization_codes::expires_at,
            authorization_codes::used_at,
            authorization_codes::session_id,
            authorization_codes::resources,
        ))
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        return Err(RedeemError::Invalid);
    };
    if row.used_at.is_some() {
        revoke_issued(conn, now, row.session_id.as_deref())?;
        return Ok(Redemption::Reused);
    }
    if row.expires_at <= now {
        return Err(RedeemError::Invalid);
    }
    // An account disabled since the sign-in gets nothing (and the code
    // stays unspent). The user is read here, in the redemption's own
    // transaction, so nothing the answer needs is read after it commits;
    // its row is locked (PostgreSQL) so that a password reset, a disable
    // or a new password asked for, which write it first, wait for this
    // redemption and then end the session it starts.
    crate::accounts::lock_row_with(conn, &UserId::new(&row.user_id), false)?;
    let Some(user) = crate::accounts::find_with(conn, &row.user_id)?.filter(|u| !u.disabled) else {
        return Err(RedeemError::Invalid);
    };
    // Nor does a code whose sign-in has ended since: a password changed or
    // reset, a sign-out, must not be outlived by a code issued before it.
    if crate::sso::has_ended_with(conn, &row.browser_session_id)? {
        return Err(RedeemError::Invalid);
    }
    if row.client_id != redemption.client.client_id {
        return Err(RedeemError::WrongClient);
    }
    if redemption.redirect_uri.as_deref() != Some(row.redirect_uri.as_str()) {
        return Err(RedeemError::WrongRedirect);
    }
    match (&row.code_challenge, &redemption.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            if !verifier_matches(challenge, verifier) {
                return Err(RedeemError::WrongVerifier);
            }
        }
        (Some(_), None) => return Err(RedeemError::MissingVerifier),
        // RFC 9700 §2.1.1: a verifier for a code without a challenge is a
        // PKCE downgrade attempt.
        (None, Some(_)) => return Err(RedeemError::UnexpectedVerifier),
        (None, None) => {}
    }
    // RFC 8707 §2.2: the token request may narrow the resources of the
    // authorization request, not add to them.
    let authorized: Vec<String> = serde_json::from_str(&row.resources).unwrap_or_default();
    if !authorized.is_empty()
        && let Some(extra) = redemption
            .resources
            .iter()
            .find(|r| !authorized.contains(r))
    {
        return Err(RedeemError::ResourceNotRequested(extra.clone()));
    }
    let resources = if redemption.resources.is_empty() {
        authorized
    } else {
        redemption.resources.clone()
    };
    // The compare-and-set: of two concurrent redemptions, one wins; the
    // other finds it used (and revokes what the winner got).
    let claimed = diesel::update(authorization_codes::table.find(&hash))
        .filter(authorization_codes::used_at.is_null())
        .set(authorization_codes::used_at.eq(now))
        .execute(conn)?;
    if claimed == 0 {
        let session_id: Option<Option<String>> = authorization_codes::table
            .find(&hash)
            .select(authorization_codes::session_id)
            .first(conn)
            .optional()?;
        revoke_issued(conn, now, session_id.flatten().as_deref())?;
        return Ok(Redemption::Reused);
    }
    let started = start_with(
        conn,
        now,
        policy,
        NewSession {
            user_id: &UserId::new(&row.user_id),
            client_id: &ClientId::new(&row.client_id),
            scope: &row.scope,
            browser_session_id: Some(&row.browser_session_id),
        },
        info,
    )?;
    diesel::update(authorization_codes::table.find(&hash))
        .set(authorization_codes::session_id.eq(&started.session_id))
        .execute(conn)?;
    audit::record(
        conn,
        now,
        Event {
            action: AUTHORIZATION_CODE,
            outcome: "success",
            user_id: Some(&row.user_id),
            session_id: Some(&started.session_id),
            client_id: Some(&row.client_id),
            ip: info.ip.as_deref(),
            ..Event::default()
        },
    )?;
    Ok(Redemption::Redeemed(Box::new(Redeemed {
        user,
        client_id: row.client_id,
        scope: row.scope,
        nonce: row.nonce,
        auth_time: row.auth_time,
        browser_session_id: row.browser_session_id,
        resources,
        started,
    })))
}

/// Deletes the user's unredeemed codes for `client` inside the caller's
/// transaction (the consent they were issued under is withdrawn).
pub fn delete_unused_codes_with(
    conn: &mut AnyConnection,
    user: &UserId,
    client: &ClientId,
) -> Result<usize, DbError> {
    Ok(diesel::delete(authorization_codes::table)
        .filter(authorization_codes::user_id.eq(user.as_str()))
        .filter(authorization_codes::client_id.eq(client.as_str()))
        .filter(authorization_codes::used_at.is_null())
        .execute(conn)?)
}

fn revoke_issued(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    session_id: Option<&str>,
) -> Result<(), DbError> {
    let Some(session_id) = session_id else {
        return Ok(());
    };
    let reason = crate::sessions::end_reason::AUTHORIZATION_CODE_REUSE;
    let info = crate::sessions::ClientInfo::default();
    crate::sessions::end_session_with(conn, now, &SessionId::new(session_id), reason, &info)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_code_verifier(verifier));
        assert!(is_s256_challenge(&challenge));
        assert!(!is_code_verifier("short"));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn redirect_keeps_the_registered_query() {
        assert_eq!(
            redirect_with(
                "https://app.example/cb?x=1",
                &[("code", "a b"), ("state", "s&t")]
            ),
            "https://app.example/cb?x=1&code=a+b&state=s%26t"
        );
    }
}

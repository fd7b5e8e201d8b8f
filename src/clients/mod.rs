//! OAuth clients: the applications and services that ask Tessera for
//! tokens. Confidential clients hold a secret Tessera generated (256 bits,
//! shown once, stored as SHA-256: a fast hash is right for a high-entropy
//! secret); public clients hold none.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;

use crate::audit::{self, Actor, Event};
use crate::db::schema::clients;
use crate::db::{AnyConnection, Db, DbError, json_text};
use crate::ids::ClientId;
use crate::tokens::{OwnAudiences, scopes};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such client")]
    NotFound,
    #[error("a client with this id already exists")]
    IdTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const REFRESH_TOKEN: &str = "refresh_token";
const GRANT_TYPES: [&str; 3] = [AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN];

/// A registered client, without its secret's hash (which never leaves
/// this module). The API shows it as `http::dto::Client`.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub first_party: bool,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub created_at: NaiveDateTime,
}

impl Client {
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// The audiences this client may have tokens for: its registered ones,
    /// less Tessera's own API for a third-party client and the userinfo
    /// audience for anyone — rows registered before those rules included.
    pub fn allowed_audiences(&self, own: &OwnAudiences) -> Vec<String> {
        self.audiences
            .iter()
            .filter(|a| !own.is_userinfo(a) && (self.first_party || !own.is_api(a)))
            .cloned()
            .collect()
    }

    /// The scopes this client may ask for: its registered ones, less
    /// Tessera's API scopes for a third-party client (rows registered before
    /// that rule included).
    pub fn allowed_scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| self.first_party || !scopes::is_tessera_api(s))
            .cloned()
            .collect()
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = clients)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: Option<String>,
    grant_types: String,
    scopes: String,
    audiences: String,
    redirect_uris: String,
    first_party: bool,
    created_at: NaiveDateTime,
    post_logout_redirect_uris: String,
}

impl ClientRow {
    fn into_client(self) -> Client {
        // Written only by this module, always as JSON arrays.
        let list = |json: &str| serde_json::from_str(json).unwrap_or_default();
        Client {
            public: self.secret_hash.is_none(),
            client_id: self.id,
            name: self.name,
            first_party: self.first_party,
            grant_types: list(&self.grant_types),
            scopes: list(&self.scopes),
            audiences: list(&self.audiences),
            redirect_uris: list(&self.redirect_uris),
            post_logout_redirect_uris: list(&self.post_logout_redirect_uris),
            created_at: self.created_at,
        }
    }
}

/// A client secret as generated: shown once, then only its hash exists.
/// No Debug: it is a secret.
pub struct ClientSecret(String);

impl ClientSecret {
    fn generate() -> ClientSecret {
        ClientSecret(crate::secrets::random_token())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn secret_hash(secret: &str) -> String {
    crate::secrets::stored_hash(secret)
}

/// What a new client is, validated on construction.
#[derive(Debug, Clone)]
pub struct NewClient {
    name: String,
    public: bool,
    first_party: bool,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
}

/// The fields of a client registration, before validation.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistration {
    /// Shown to users on the consent page: 1 to 100 printable characters.
    pub name: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
}

/// A scope token per RFC 6749 §3.3: printable ASCII but space, `"` and `\`.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// RFC 9700 §2.1 / RFC 8252: https; plain http only to the user's own
/// machine; or a native app's reverse-domain scheme. Never `javascript:`,
/// `data:` and the like.
fn redirect_scheme_allowed(uri: &url::Url) -> bool {
    match uri.scheme() {
        "https" => has_plain_host(uri),
        "http" => matches!(uri.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        scheme => scheme.contains('.'),
    }
}

/// A DNS name or an IP address. The url crate lets characters such as `;`
/// through in a host, and the origin goes into the sign-in pages' CSP
/// (`form-action`), where `;` would start another directive.
fn has_plain_host(uri: &url::Url) -> bool {
    match uri.host() {
        Some(url::Host::Domain(name)) => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        None => false,
    }
}

/// A third-party client may not reach Tessera's own API: neither its
/// audience nor its scopes, in any spelling (README "What a token may do");
/// and no client may have the userinfo audience.
fn tessera_audiences_refused(
    r: &ClientRegistration,
    own: &OwnAudiences,
) -> Result<(), ClientError> {
    if let Some(audience) = r.audiences.iter().find(|a| own.is_userinfo(a)) {
        return Err(ClientError::Invalid(format!(
            "audience {audience:?} is Tessera's userinfo endpoint: no client may be registered for it"
        )));
    }
    if r.first_party {
        return Ok(());
    }
    if let Some(scope) = r.scopes.iter().find(|s| scopes::is_tessera_api(s)) {
        return Err(ClientError::Invalid(format!(
            "scope {scope:?} is for first-party clients only"
        )));
    }
    if let Some(audience) = r.audiences.iter().find(|a| own.is_api(a)) {
        return Err(ClientError::Invalid(format!(
            "audience {audience:?} is Tessera's own API: for first-party clients only"
        )));
    }
    Ok(())
}

/// An audience (RFC 8707 resource): 1 to 200 printable ASCII characters,
/// no spaces, so no invisible or look-alike character makes two that
/// compare different but read the same.
fn is_audience(a: &str) -> bool {
    !a.is_empty() && a.len() <= 200 && a.bytes().all(|b| b.is_ascii_graphic())
}

/// Longest redirect URI registered or compared.
const MAX_REDIRECT_URI_LEN: usize = 2048;

/// Checks redirect URIs and returns them in canonical form (WHATWG URL
/// serialization, as `url` writes it). A URI whose canonical form differs
/// from what was sent is refused rather than fixed: the text and the parsed
/// URL could name different hosts (`https://evil.example\@app.example/cb`
/// is `https://evil.example/@app.example/cb`), and the sender should see
/// the form that will be compared.
fn canonical_redirect_uris(uris: Vec<String>) -> Result<Vec<String>, ClientError> {
    let invalid = |m: String| Err(ClientError::Invalid(m));
    let mut canonical = Vec::with_capacity(uris.len());
    for uri in uris {
        if uri.len() > MAX_REDIRECT_URI_LEN {
            return invalid(format!(
                "a redirect URI is longer than {MAX_REDIRECT_URI_LEN} bytes"
            ));
        }
        let parsed = url::Url::parse(&uri)
            .map_err(|e| ClientError::Invalid(format!("redirect URI {uri:?}: {e}")))?;
        // Credentials in a redirect URI would travel in every redirect.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return invalid(format!(
                "redirect URI {uri:?} must not carry a user name or password"
            ));
        }
        if parsed.as_str() != uri {
            return invalid(format!(
                "redirect URI {uri:?} is not in canonical form; it would be read as {:?}",
                parsed.as_str()
            ));
        }
        if parsed.fragment().is_some() {
            return invalid(format!("redirect URI {uri:?} must not have a fragment"));
        }
        if !redirect_scheme_allowed(&parsed) {
            return invalid(format!(
                "redirect URI {uri:?} must be https, http on a loopback host, or a private-use scheme like com.example.app"
            ));
        }
        canonical.push(parsed.into());
    }
    Ok(canonical)
}

/// A loopback IP literal on plain http (RFC 8252 §7.3): the URI with its
/// port removed. `localhost` is a name, not a literal, and does not count.
fn loopback_without_port(uri: &url::Url) -> Option<url::Url> {
    let loopback = match uri.host()? {
        url::Host::Ipv4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        url::Host::Ipv6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
        url::Host::Domain(_) => false,
    };
    if uri.scheme() != "http" || !loopback {
        return None;
    }
    let mut without = uri.clone();
    without.set_port(None).ok()?;
    Some(without)
}

/// Whether a requested redirect (or post-logout redirect) URI is one of
/// the registered ones. The request must be in canonical form and equal a
/// registered URI; a loopback one may differ in its port only, for native
/// apps listening on an ephemeral port (RFC 8252 §7.3). Anything that does
/// not parse or is not canonical matches nothing.
pub fn is_registered_redirect(registered: &[String], requested: &str) -> bool {
    if requested.len() > MAX_REDIRECT_URI_LEN {
        return false;
    }
    let Ok(parsed) = url::Url::parse(requested) else {
        return false;
    };
    if parsed.as_str() != requested || parsed.fragment().is_some() {
        return false;
    }
    // The request is canonical, so a canonical registered URI matches only
    // if it is the same text.
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Some(loopback) = loopback_without_port(&parsed) else {
        return false;
    };
    registered.iter().any(|candidate| {
        // A URI registered before registration canonicalised them counts
        // only if it was canonical: otherwise its text and what it names
        // may differ.
        url::Url::parse(candidate)
            .ok()
            .filter(|c| c.as_str() == candidate.as_str())
            .and_then(|c| loopback_without_port(&c))
            .is_some_and(|c| c == loopback)
    })
}

/// `v` without repeats, first occurrences kept in order.
pub(crate) fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

impl NewClient {
    /// Validates a registration. `own` are the audiences that stand for
    /// Tessera: its API only for first-party clients (and the scopes of
    /// its API with it), the userinfo endpoint for none.
    pub fn parse(r: ClientRegistration, own: &OwnAudiences) -> Result<NewClient, ClientError> {
        let invalid = |m: String| Err(ClientError::Invalid(m));
        let name = r.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return invalid("name must be 1 to 100 printable characters".into());
        }
        if r.grant_types.is_empty() {
            return invalid(format!(
                "at least one grant type is required ({})",
                GRANT_TYPES.join(", ")
            ));
        }
        if let Some(unknown) = r
            .grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return invalid(format!(
                "unknown grant type {unknown:?}; known: {}",
                GRANT_TYPES.join(", ")
            ));
        }
        if r.public && r.grant_types.iter().any(|g| g == CLIENT_CREDENTIALS) {
            return invalid(
                "a public client cannot use client_credentials: it has no secret".into(),
            );
        }
        if let Some(bad) = r.scopes.iter().find(|s| !is_scope_token(s)) {
            return invalid(format!("{bad:?} is not a valid scope"));
        }
        if let Some(bad) = r.audiences.iter().find(|a| !is_audience(a)) {
            return invalid(format!(
                "{bad:?} is not a valid audience: 1 to 200 printable ASCII characters, no spaces"
            ));
        }
        tessera_audiences_refused(&r, own)?;
        let r = ClientRegistration {
            redirect_uris: canonical_redirect_uris(r.redirect_uris)?,
            post_logout_redirect_uris: canonical_redirect_uris(r.post_logout_redirect_uris)?,
            ..r
        };
        if r.grant_types.iter().any(|g| g == AUTHORIZATION_CODE) && r.redirect_uris.is_empty() {
            return invalid("authorization_code needs at least one redirect URI".into());
        }
        if r.grant_types.len() > 3
            || r.scopes.len() > 100
            || r.audiences.len() > 100
            || r.redirect_uris.len() > 100
            || r.post_logout_redirect_uris.len() > 100
        {
            return invalid("too many values".into());
        }
        Ok(NewClient {
            name,
            public: r.public,
            first_party: r.first_party,
            grant_types: dedup(r.grant_types),
            scopes: dedup(r.scopes),
            audiences: dedup(r.audiences),
            redirect_uris: dedup(r.redirect_uris),
            post_logout_redirect_uris: dedup(r.post_logout_redirect_uris),
        })
    }
}

/// Registers a client; returns it with its secret (confidential clients),
/// which exists nowhere else from then on.
pub async fn create(
    db: &Db,
    new: NewClient,
    actor: Actor,
) -> Result<(Client, Option<ClientSecret>), ClientError> {
    let now = db.now();
    db.run(move |conn| conn.transaction(|conn| create_with(conn, now, new, &actor)))
        .await
        .map_err(|e| match e {
            DbError::UniqueViolation => ClientError::IdTaken,
            other => other.into(),
        })
}

pub fn create_blocking(
    db: &Db,
    new: NewClient,
) -> Result<(Client, Option<ClientSecret>), ClientError> {
    let now = db.now();
    Ok(db
        .run_blocking(|conn| conn.transaction(|conn| create_with(conn, now, new, &Actor::cli())))?)
}

fn create_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    new: NewClient,
    actor: &Actor,
) -> Result<(Client, Option<ClientSecret>), DbError> {
    let mut id_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let id = URL_SAFE_NO_PAD.encode(id_bytes);
    let secret = (!new.public).then(ClientSecret::generate);
    diesel::insert_into(clients::table)
        .values((
            clients::id.eq(&id),
            clients::name.eq(&new.name),
            clients::secret_hash.eq(secret.as_ref().map(|s| secret_hash(s.expose()))),
            clients::grant_types.eq(json_text(&new.grant_types)?),
            clients::scopes.eq(json_text(&new.scopes)?),
            clients::audiences.eq(json_text(&new.audiences)?),
            clients::redirect_uris.eq(json_text(&new.redirect_uris)?),
            clients::first_party.eq(new.first_party),
            clients::created_at.eq(now),
            clients::post_logout_redirect_uris.eq(json_text(&new.post_logout_redirect_uris)?),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        now,
        Event {
            action: audit::CLIENT_CREATED,
            outcome: "success",
            actor_id: Some(&actor.id),
            client_id: Some(&id),
            ip: actor.ip.as_deref(),
            ..Event::default()
        },
    )?;
    let client = Client {
        client_id: id,
        name: new.name,
        public: new.public,
        first_party: new.first_party,
        grant_types: new.grant_types,
        scopes: new.scopes,
        audiences: new.audiences,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        created_at: now,
    };
    Ok((client, secret))
}

pub async fn list(db: &Db) -> Result<Vec<Client>, DbError> {
    db.run(list_with).await
}

pub fn list_blocking(db: &Db) -> Result<Vec<Client>, DbError> {
    db.run_blocking(list_with)
}

fn list_with(conn: &mut AnyConnection) -> Result<Vec<Client>, DbError> {
    let rows: Vec<ClientRow> = clients::table
        .order(clients::created_at.asc())
        .select(ClientRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(ClientRow::into_client).collect())
}

/// The client with this id, on a connection (inside another operation's
/// transaction).
/// The names of the clients among `ids` that exist, by id.
pub async fn names_of(
    db: &Db,
    ids: Vec<String>,
) -> Result<std::collections::HashMap<String, String>, DbError> {
    db.run(move |conn| {
        Ok(clients::table
            .filter(clients::id.eq_any(ids))
            .select((clients::id, clients::name))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect())
    })
    .await
}

pub fn find_with(conn: &mut AnyConnection, id: &str) -> Result<Option<Client>, DbError> {
    Ok(find_row(conn, id)?.map(ClientRow::into_client))
}

pub async fn find(db: &Db, id: ClientId) -> Result<Client, ClientError> {
    let row = db.run(move |conn| find_row(conn, id.as_str())).await?;
    row.map(ClientRow::into_client).ok_or(ClientError::NotFound)
}

fn find_row(conn: &mut AnyConnection, id: &str) -> Result<Option<ClientRow>, DbError> {
    Ok(clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?)
}

pub async fn delete(db: &Db, id: ClientId, actor: Actor) -> Result<(), ClientError> {
    let now = db.now();
    let deleted = db
        .run(move |conn| conn.transaction(|conn| delete_with(conn, now, id.as_str(), &actor)))
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(ClientError::NotFound)
    }
}

pub fn delete_blocking(db: &Db, id: &str) -> Result<(), ClientError> {
    let now = db.now();
    let deleted =
        db.run_blocking(|conn| conn.transaction(|conn| delete_with(conn, now, id, &Actor::cli())))?;
    if deleted {
        Ok(())
    } else {
        Err(ClientError::NotFound)
    }
}

fn delete_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    id: &str,
    actor: &Actor,
) -> Result<bool, DbError> {
    let deleted = diesel::delete(clients::table.find(id)).execute(conn)? > 0;
    if deleted {
        audit::record(
            conn,
            now,
            Event {
                action: audit::CLIENT_DELETED,
                outcome: "success",
                actor_id: Some(&actor.id),
                client_id: Some(id),
                ip: actor.ip.as_deref(),
                ..Event::default()
            },
        )?;
    }
    Ok(deleted)
}

/// Whether `id` is a registered public client (one without a secret).
pub fn is_public(conn: &mut AnyConnection, id: &str) -> Result<bool, DbError> {
    Ok(find_row(conn, id)?.is_some_and(|row| row.secret_hash.is_none()))
}

/// The client these credentials belong to, or None: unknown id, wrong
/// secret, or a public client presenting a secret. The secret's hash is
/// compared in constant time.
pub async fn authenticate(db: &Db, id: String, secret: String) -> Result<Option<Client>, DbError> {
    let row = db.run(move |conn| find_row(conn, &id)).await?;
    let presented = secret_hash(&secret);
    Ok(row
        .filter(|row| {
            row.secret_hash.as_deref().is_some_and(|stored| {
                verify_slices_are_equal(stored.as_bytes(), presented.as_bytes()).is_ok()
            })
        })
        .map(ClientRow::into_client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnAudiences {
        OwnAudiences::new("https://id.example", &["tessera".to_owned()])
    }

    #[test]
    fn only_first_party_clients_reach_tesseras_api() {
        for (scopes, audiences) in [
            (vec!["tessera:account"], vec![]),
            (vec!["tessera:admin"], vec![]),
            (vec!["TESSERA:Admin"], vec![]),
            (vec!["tessera:anything"], vec![]),
            (vec![], vec!["tessera"]),
            (vec![], vec!["TESSERA"]),
        ] {
            let r = ClientRegistration {
                scopes: scopes.into_iter().map(String::from).collect(),
                audiences: audiences.into_iter().map(String::from).collect(),
                ..registration()
            };
            assert!(NewClient::parse(r.clone(), &own()).is_err(), "{r:?}");
            let first_party = ClientRegistration {
                first_party: true,
                ..r
            };
            assert!(NewClient::parse(first_party, &own()).is_ok());
        }
        let roles = ClientRegistration {
            scopes: vec!["roles".into()],
            ..registration()
        };
        assert!(NewClient::parse(roles, &own()).is_ok());
        // Look-alike and padded audiences are no audiences at all; the
        // userinfo audience is nobody's.
        for audience in [
            " tessera",
            "tessera ",
            "tessera\u{200b}",
            "ｔｅｓｓｅｒａ",
            "https://id.example/oauth2/userinfo",
        ] {
            for first_party in [false, true] {
                let r = ClientRegistration {
                    audiences: vec![audience.into()],
                    first_party,
                    ..registration()
                };
                assert!(NewClient::parse(r, &own()).is_err(), "{audience:?}");
            }
        }
    }

    fn registration() -> ClientRegistration {
        ClientRegistration {
            name: "orders".into(),
            grant_types: vec![CLIENT_CREDENTIALS.into()],
            scopes: vec!["orders:read".into()],
            audiences: vec!["orders-api".into()],
            ..ClientRegistration::default()
        }
    }

    #[test]
    fn validates_registrations() {
        assert!(NewClient::parse(registration(), &own()).is_ok());
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8765/cb",
            "http://localhost/cb",
            "com.example.app:/oauth",
        ] {
            let r = ClientRegistration {
                redirect_uris: vec![ok.into()],
                ..registration()
            };
            assert!(NewClient::parse(r, &own()).is_ok(), "{ok}");
        }
        let bad = [
            ClientRegistration {
                name: " ".into(),
                ..registration()
            },
            ClientRegistration {
                grant_types: vec![],
                ..registration()
            },
            ClientRegistration {
                grant_types: vec!["password".into()],
                ..registration()
            },
            ClientRegistration {
                public: true,
                ..registration()
            },
            ClientRegistration {
                scopes: vec!["two words".into()],
                ..registration()
            },
            ClientRegistration {
                grant_types: vec![AUTHORIZATION_CODE.into()],
                ..registration()
            },
            ClientRegistration {
                redirect_uris: vec!["https://app.example/cb#frag".into()],
                ..registration()
            },
            ClientRegistration {
                redirect_uris: vec!["not a url".into()],
                ..registration()
            },
        ];
        for r in bad {
            assert!(NewClient::parse(r.clone(), &own()).is_err(), "{r:?}");
        }
    }

    fn with_redirect(uri: &str) -> Result<NewClient, ClientError> {
        NewClient::parse(
            ClientRegistration {
                redirect_uris: vec![uri.into()],
                ..registration()
            },
            &own(),
        )
    }

    #[test]
    fn redirect_uris_must_be_sent_in_canonical_form() {
        for (sent, canonical) in [
            (
                "https://evil.example\\@app.example.com/cb",
                "https://evil.example/@app.example.com/cb",
            ),
            ("https:///app.example.com/cb", "https://app.example.com/cb"),
            ("HTTPS://App.Example.com/cb", "https://app.example.com/cb"),
            (
                "https://app.example.com:443/cb",
                "https://app.example.com/cb",
            ),
            ("https://app.example.com", "https://app.example.com/"),
            (
                "https://app.example.com/a/../cb",
                "https://app.example.com/cb",
            ),
            (
                "https://app.example.com/c b",
                "https://app.example.com/c%20b",
            ),
            (
                "https://b\u{FC}cher.example/cb",
                "https://xn--bcher-kva.example/cb",
            ),
            ("http://127.1/cb", "http://127.0.0.1/cb"),
            ("http://[0::1]/cb", "http://[::1]/cb"),
            (" https://app.example.com/cb", "https://app.example.com/cb"),
        ] {
            let Err(ClientError::Invalid(why)) = with_redirect(sent) else {
                panic!("{sent:?} accepted");
            };
            assert!(why.contains(&format!("{canonical:?}")), "{sent:?}: {why}");
            // Post-logout URIs too.
            let r = ClientRegistration {
                post_logout_redirect_uris: vec![sent.into()],
                ..registration()
            };
            assert!(NewClient::parse(r, &own()).is_err(), "{sent:?}");
        }
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth",
        ] {
            let client = with_redirect(ok).unwrap();
            assert_eq!(client.redirect_uris, [ok]);
        }
        // Canonical, but carrying credentials, or too long to ever match.
        let long = format!("https://app.example.com/{}", "a".repeat(2048));
        for bad in [
            "https://user:pw@app.example.com/cb",
            "https://user@app.example.com/cb",
            &long,
        ] {
            assert!(with_redirect(bad).is_err(), "{bad:.40}");
        }
    }

    #[test]
    fn redirects_match_on_the_canonical_form() {
        let registered = ["https://app.example.com/cb".to_owned()];
        assert!(is_registered_redirect(
            &registered,
            "https://app.example.com/cb"
        ));
        for requested in [
            "https://app.example.com:443/cb",
            "HTTPS://app.example.com/cb",
            "https://app.example.com/cb/",
            "https://app.example.com/cb#",
            "https://app.example.com/cb?",
            "https://app.example.com/x/../cb",
            "https:///app.example.com/cb",
            "https://app.example.com\\cb",
            "",
            "cb",
        ] {
            assert!(
                !is_registered_redirect(&registered, requested),
                "{requested:?}"
            );
        }
        // A URI stored before registration checked the form: only the
        // canonical text of a canonical registration ever matches.
        let legacy = ["https://evil.example\\@app.example.com/cb".to_owned()];
        for requested in [
            "https://evil.example/@app.example.com/cb",
            "https://evil.example\\@app.example.com/cb",
        ] {
            assert!(!is_registered_redirect(&legacy, requested), "{requested:?}");
        }
    }

    #[test]
    fn loopback_ip_literals_match_on_any_port() {
        let registered = [
            "http://127.0.0.1/cb".to_owned(),
            "http://[::1]:8000/cb".to_owned(),
            "http://localhost/cb".to_owned(),
        ];
        for ok in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53117/cb",
            "http://127.0.0.1:1/cb",
            "http://[::1]/cb",
            "http://[::1]:8000/cb",
            "http://[::1]:53117/cb",
            "http://localhost/cb",
        ] {
            assert!(is_registered_redirect(&registered, ok), "{ok:?}");
        }
        for bad in [
            "http://127.0.0.1.evil.example:53117/cb",
            "http://127.0.0.1:53117/cb2",
            "http://127.0.0.1:53117/cb?x=1",
            "http://127.0.0.1:53117/",
            "https://127.0.0.1:53117/cb",
            "http://127.0.0.2:53117/cb",
            "http://127.1:53117/cb",
            "http://0x7f.0.0.1:53117/cb",
            "http://[0:0:0:0:0:0:0:1]:53117/cb",
            "http://[::ffff:127.0.0.1]:53117/cb",
            "http://localhost:53117/cb",
            "http://evil.example:53117/cb",
            "http://user@127.0.0.1:53117/cb",
        ] {
            assert!(!is_registered_redirect(&registered, bad), "{bad:?}");
        }
        // A registered https loopback URI gets no port leeway.
        let https = ["https://127.0.0.1/cb".to_owned()];
        assert!(!is_registered_redirect(&https, "https://127.0.0.1:8443/cb"));
    }

    #[test]
    fn scope_tokens() {
        assert!(is_scope_token("orders:read"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("quote\""));
    }
}

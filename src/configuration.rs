//! Settings: the defaults compiled in from `config/default.toml`, then an
//! optional `--config` file, then `TESSERA__SECTION__KEY` environment
//! variables. Everything is validated here, once, so the rest of the service
//! works with values that are known to be usable.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The defaults, documented in place; the binary needs no copy of the file.
const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A number of seconds from the settings as a duration; absurdly large
/// values are capped at what `chrono` can hold instead of panicking.
pub fn duration_seconds(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(n.min(i64::MAX as u64 / 1000) as i64)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub issuer: String,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    pub tokens: TokenSettings,
    pub login: LoginSettings,
    pub sessions: SessionSettings,
    pub sso: SsoSettings,
    pub throttle: ThrottleSettings,
    pub cors: CorsSettings,
    pub passwords: PasswordSettings,
    pub accounts: AccountSettings,
    pub email: EmailSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    pub shutdown_drain_seconds: u64,
    pub json_body_limit_bytes: usize,
    pub request_head_timeout_seconds: u64,
    pub keep_alive_seconds: u64,
    pub max_connections_per_worker: usize,
    pub max_request_head_bytes: usize,
    pub tls: TlsSettings,
}

/// `[server.tls]`: both set, or neither (plain HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    #[serde(deserialize_with = "optional_path")]
    pub cert: Option<PathBuf>,
    #[serde(deserialize_with = "optional_path")]
    pub key: Option<PathBuf>,
}

/// An empty string is no path (so `TESSERA__SERVER__TLS__CERT=` unsets it).
fn optional_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s = String::deserialize(d)?;
    Ok((!s.trim().is_empty()).then(|| PathBuf::from(s)))
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout_seconds: u64,
}

// The URL may hold a password: never print it whole.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &crate::db::redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    pub dir: PathBuf,
    pub bits: usize,
    pub jwks_max_age_seconds: u32,
    pub prepublication_delay_seconds: u64,
    pub rescan_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub access_ttl_seconds: u64,
    #[serde(deserialize_with = "string_or_list")]
    pub audience: Vec<String>,
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSettings {
    pub client_id: String,
    pub scope: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub idle_timeout_seconds: u64,
    pub absolute_lifetime_seconds: u64,
    pub refresh_reuse_grace_seconds: u64,
    pub refresh_retry_window_seconds: u64,
    pub cleanup_interval_seconds: u64,
}

/// Browser sign-in for OpenID Connect (`/oauth2/authorize`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoSettings {
    pub idle_timeout_seconds: u64,
    pub absolute_lifetime_seconds: u64,
    pub code_ttl_seconds: u64,
    pub login_timeout_seconds: u64,
}

/// Origins whose pages may call the API from JavaScript (`[cors]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    #[serde(deserialize_with = "string_or_list")]
    pub allowed_origins: Vec<String>,
}

/// Rate limits per client IP and lockout per account (`[throttle]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    pub enabled: bool,
    pub credentials_burst: u32,
    pub credentials_per_minute: u32,
    pub token_burst: u32,
    pub token_per_minute: u32,
    pub lockout_threshold: u32,
    pub lockout_base_seconds: u64,
    pub lockout_max_seconds: u64,
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub max_concurrent_hashes: usize,
    pub max_queued_hashes: usize,
}

/// `[accounts]`: who may register, whether an address must be verified
/// before signing in, and the links sent to account holders by e-mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub registration: Registration,
    /// Login and sign-in refuse an account whose address is not verified
    /// (403 `email_not_verified`).
    pub require_verified_email: bool,
    pub password_reset_minutes: u64,
    /// Per address: a reset link is sent at most once in this many seconds.
    pub password_reset_interval_seconds: u64,
    /// An invitation link works this long.
    pub invitation_hours: u64,
}

/// Who may make an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone, with `POST /v1/auth/register`.
    Open,
    /// Only someone an administrator invited (`POST /v1/admin/users`).
    Invite,
    /// Only an administrator, on the command line or by invitation.
    Closed,
}

/// `[email]`: outgoing mail. No `smtp_url`: nothing is sent, and what would
/// send answers 503 `email_unavailable`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub smtp_url: String,
    pub from: String,
    /// How often the outbox is looked at for mail that is due.
    pub poll_interval_milliseconds: u64,
    /// Attempts before a message is given up (backoff doubles, from 5 s, to 1 h).
    pub max_attempts: u32,
    /// Sent (and given up) messages are deleted after this many days.
    pub retention_days: u64,
    /// A PEM file of certificates to trust for the SMTP server's TLS besides
    /// the public roots (a private CA); empty: the public roots only.
    pub ca_file: String,
}

impl std::fmt::Debug for EmailSettings {
    // The URL may hold the SMTP password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_url", &crate::db::redacted_url(&self.smtp_url))
            .field("from", &self.from)
            .field(
                "poll_interval_milliseconds",
                &self.poll_interval_milliseconds,
            )
            .field("max_attempts", &self.max_attempts)
            .field("retention_days", &self.retention_days)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl EmailSettings {
    /// The SMTP server, if one is configured.
    pub fn smtp(&self) -> Option<&str> {
        Some(self.smtp_url.trim()).filter(|u| !u.is_empty())
    }

    pub fn ca_file(&self) -> Option<&str> {
        Some(self.ca_file.trim()).filter(|f| !f.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

/// `audience = "a"`, `audience = ["a", "b"]` and `TESSERA__TOKENS__AUDIENCE=a,b`
/// all mean the same kind of thing.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(|a| a.trim().to_owned()).collect(),
        OneOrMany::Many(v) => v,
    })
}

impl Settings {
    /// Loads and validates the settings: defaults, then `file`, then the
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("TESSERA")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.validated()
    }

    fn validated(mut self) -> Result<Settings, ConfigError> {
        self.issuer = validate_issuer(&self.issuer)?;
        if self.server.bind.to_socket_addrs().is_err() {
            return Err(invalid(
                "server.bind",
                format!("{:?} is not a host:port address", self.server.bind),
            ));
        }
        if self.server.tls.cert.is_some() != self.server.tls.key.is_some() {
            return Err(invalid(
                "server.tls",
                "set both cert and key (PEM files), or neither",
            ));
        }
        if self.server.shutdown_drain_seconds > 300 {
            return Err(invalid(
                "server.shutdown_drain_seconds",
                "must be at most 300",
            ));
        }
        if !(1..=300).contains(&self.server.request_head_timeout_seconds) {
            return Err(invalid(
                "server.request_head_timeout_seconds",
                "must be between 1 and 300",
            ));
        }
        if self.server.keep_alive_seconds > 3600 || self.server.max_connections_per_worker == 0 {
            return Err(invalid(
                "server.keep_alive_seconds",
                "keep-alive must be at most 3600 s and max_connections_per_worker at least 1",
            ));
        }
        if !(1024..=131_072).contains(&self.server.max_request_head_bytes) {
            return Err(invalid(
                "server.max_request_head_bytes",
                "must be between 1024 and 131072 (the HTTP server reads no larger head)",
            ));
        }
        if self.server.json_body_limit_bytes < 1024 {
            return Err(invalid(
                "server.json_body_limit_bytes",
                "must be at least 1024",
            ));
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if self.database.connect_timeout_seconds == 0 {
            return Err(invalid(
                "database.connect_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.keys.jwks_max_age_seconds > 86_400 {
            return Err(invalid(
                "keys.jwks_max_age_seconds",
                "must be at most 86400",
            ));
        }
        if self.keys.rescan_interval_seconds == 0 || self.keys.rescan_interval_seconds > 3600 {
            return Err(invalid(
                "keys.rescan_interval_seconds",
                "must be between 1 and 3600",
            ));
        }
        let cached = u64::from(self.keys.jwks_max_age_seconds) + self.keys.rescan_interval_seconds;
        if self.keys.prepublication_delay_seconds <= cached {
            return Err(invalid(
                "keys.prepublication_delay_seconds",
                format!(
                    "must be longer than keys.jwks_max_age_seconds + keys.rescan_interval_seconds ({cached}): a verifier's cached JWKS would not know a new key when it starts signing"
                ),
            ));
        }
        if !(2048..=8192).contains(&self.keys.bits) {
            return Err(invalid("keys.bits", "must be between 2048 and 8192"));
        }
        if !(10..=86_400).contains(&self.tokens.access_ttl_seconds) {
            return Err(invalid(
                "tokens.access_ttl_seconds",
                "must be between 10 and 86400 (a day)",
            ));
        }
        if self.tokens.leeway_seconds > 300 {
            return Err(invalid("tokens.leeway_seconds", "must be at most 300"));
        }
        self.tokens.audience.retain(|a| !a.is_empty());
        if self.tokens.audience.is_empty() {
            return Err(invalid("tokens.audience", "needs at least one audience"));
        }
        if self.login.client_id.trim().is_empty() {
            return Err(invalid("login.client_id", "must not be empty"));
        }
        let sessions = &self.sessions;
        if sessions.idle_timeout_seconds == 0 || sessions.absolute_lifetime_seconds == 0 {
            return Err(invalid(
                "sessions",
                "idle timeout and absolute lifetime must be at least 1 second",
            ));
        }
        if sessions.refresh_reuse_grace_seconds > 60 {
            return Err(invalid(
                "sessions.refresh_reuse_grace_seconds",
                "must be at most 60",
            ));
        }
        if sessions.refresh_retry_window_seconds > 600
            || sessions.refresh_retry_window_seconds < sessions.refresh_reuse_grace_seconds
        {
            return Err(invalid(
                "sessions.refresh_retry_window_seconds",
                "must be at most 600 and at least sessions.refresh_reuse_grace_seconds",
            ));
        }
        let sso = &self.sso;
        if sso.idle_timeout_seconds == 0 || sso.absolute_lifetime_seconds == 0 {
            return Err(invalid(
                "sso.idle_timeout_seconds",
                "SSO session lifetimes must be positive",
            ));
        }
        // RFC 6749 §4.1.2 recommends at most ten minutes; OpenID and
        // RFC 9700 practice is far shorter.
        if !(1..=60).contains(&sso.code_ttl_seconds) {
            return Err(invalid(
                "sso.code_ttl_seconds",
                "must be between 1 and 60 seconds",
            ));
        }
        if !(30..=86_400).contains(&sso.login_timeout_seconds) {
            return Err(invalid(
                "sso.login_timeout_seconds",
                "must be between 30 seconds and one day",
            ));
        }
        if sessions.cleanup_interval_seconds == 0 {
            return Err(invalid(
                "sessions.cleanup_interval_seconds",
                "must be at least 1",
            ));
        }
        let t = &self.throttle;
        if t.credentials_burst == 0
            || t.credentials_per_minute == 0
            || t.token_burst == 0
            || t.token_per_minute == 0
        {
            return Err(invalid(
                "throttle",
                "bursts and rates must be at least 1 (set throttle.enabled = false to turn limits off)",
            ));
        }
        if t.lockout_threshold > 0
            && (t.lockout_base_seconds == 0 || t.lockout_max_seconds < t.lockout_base_seconds)
        {
            return Err(invalid(
                "throttle.lockout_base_seconds",
                "must be at least 1 and at most throttle.lockout_max_seconds",
            ));
        }
        self.throttle
            .trusted_proxies
            .retain(|p| !p.trim().is_empty());
        self.cors.allowed_origins.retain(|o| !o.trim().is_empty());
        for origin in &self.cors.allowed_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "https" | "http")
                    && u.origin().ascii_serialization() == *origin
            });
            if !ok {
                return Err(invalid(
                    "cors.allowed_origins",
                    format!(
                        "{origin:?} is not an origin like https://app.example.com (no path, no trailing slash)"
                    ),
                ));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be \"text\" or \"json\""));
        }
        let p = &self.passwords;
        if let Err(e) = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None) {
            return Err(invalid(
                "passwords",
                format!("invalid argon2 parameters: {e}"),
            ));
        }
        if p.memory_kib < 8 * 1024 {
            return Err(invalid("passwords.memory_kib", "must be at least 8192"));
        }
        self.validate_email()?;
        Ok(self)
    }

    fn validate_email(&self) -> Result<(), ConfigError> {
        let e = &self.email;
        if let Some(smtp) = e.smtp() {
            let url = url::Url::parse(smtp).map_err(|_| {
                // Never the URL itself: it may hold the SMTP password.
                invalid("email.smtp_url", "is not a URL")
            })?;
            if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
                return Err(invalid(
                    "email.smtp_url",
                    "must be smtp://HOST[:PORT] or smtps://HOST[:PORT]",
                ));
            }
        }
        if e.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "email.from",
                format!("{:?} is not an address (Name <user@host>)", e.from),
            ));
        }
        if e.retention_days == 0 || e.retention_days > 3650 {
            return Err(invalid("email.retention_days", "must be 1 to 3650"));
        }
        if e.max_attempts == 0 || e.poll_interval_milliseconds == 0 {
            return Err(invalid(
                "email",
                "max_attempts and poll_interval_milliseconds must be positive",
            ));
        }
        let a = &self.accounts;
        if a.password_reset_minutes == 0 || a.password_reset_minutes > 24 * 60 {
            return Err(invalid(
                "accounts.password_reset_minutes",
                "must be 1 to 1440",
            ));
        }
        if a.invitation_hours == 0 || a.invitation_hours > 24 * 90 {
            return Err(invalid("accounts.invitation_hours", "must be 1 to 2160"));
        }
        Ok(())
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    pub fn pool_checkout_timeout(&self) -> Duration {
        Duration::from_secs(self.database.connect_timeout_seconds)
    }
}

/// The issuer must be an absolute http(s) URL without query or fragment;
/// it is kept without a trailing slash so endpoint URLs join cleanly.
fn validate_issuer(raw: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(raw)
        .map_err(|e| invalid("issuer", format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            "issuer",
            format!("{raw:?} must be an http or https URL"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "issuer",
            format!("{raw:?} must not have a query or fragment"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("issuer", "must not carry credentials"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_second_counts_are_capped_not_a_panic() {
        assert_eq!(duration_seconds(90), chrono::Duration::seconds(90));
        assert_eq!(
            duration_seconds(u64::MAX),
            chrono::Duration::seconds(i64::MAX / 1000)
        );
    }

    #[test]
    fn issuer_must_be_http_url() {
        assert!(validate_issuer("http://127.0.0.1:8080/").is_ok());
        assert_eq!(
            validate_issuer("https://auth.example.com/").unwrap(),
            "https://auth.example.com"
        );
        assert!(validate_issuer("not a url").is_err());
        assert!(validate_issuer("ftp://example.com").is_err());
        assert!(validate_issuer("https://example.com/?a=b").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load(None).expect("compiled-in defaults load");
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.tokens.access_ttl_seconds, 900);
        assert_eq!(s.tokens.audience, vec!["tessera".to_owned()]);
    }
}

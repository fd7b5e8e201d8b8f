//! Operations that span domains: what a request asks for, decided with the
//! rules of the domains it touches — signing in (`login`, `browser`), the
//! account operations that end sessions (`account`), the OAuth grants
//! (`grants`). HTTP handlers parse, call one function here (or one domain
//! function), and render its result; nothing here knows about HTTP.

pub mod account;
pub mod browser;
pub mod grants;
pub mod invitation;
pub mod login;
pub mod profile;
pub mod recovery;
pub mod requests;
pub mod verification;

use crate::accounts::PasswordHasher;
use crate::configuration::{AccountSettings, LoginSettings};
use crate::db::Db;
use crate::oauth::Issuance;
use crate::sessions::SessionPolicy;
use crate::sso::SsoPolicy;
use crate::throttle::lockout::LockoutPolicy;
use crate::tokens::{OwnAudiences, TokenIssuer, TokenVerifier};

/// The services the operations use, built once at start.
pub struct Services {
    /// The database, and the clock every row is stamped with.
    pub db: Db,
    pub hasher: PasswordHasher,
    pub issuer: TokenIssuer,
    pub verifier: TokenVerifier,
    /// Tessera's own API and userinfo endpoint as audiences.
    pub own_audiences: OwnAudiences,
    pub sessions: SessionPolicy,
    pub sso: SsoPolicy,
    pub lockout: LockoutPolicy,
    /// The built-in first-party client and what its logins get.
    pub login: LoginSettings,
    /// The issuer URL (`iss`), which also names us in redirects (RFC 9207)
    /// and is the base of every link sent by e-mail.
    pub issuer_url: String,
    /// The SMTP server mail goes to; None when none is configured.
    pub mailer: Option<crate::email::sender::Mailer>,
    pub reset: recovery::ResetPolicy,
    /// Who may register, whether addresses must be verified.
    pub accounts: AccountSettings,
    pub invitations: invitation::Invitations,
}

impl Services {
    /// How tokens for first-party and OAuth grants are issued.
    pub fn issuance(&self) -> Issuance<'_> {
        Issuance {
            issuer: &self.issuer,
            own: &self.own_audiences,
            login_client_id: &self.login.client_id,
        }
    }

    /// Refuses what would send mail when no SMTP server is configured:
    /// nothing pretends to have sent.
    pub fn can_mail(&self) -> Result<(), recovery::RecoveryError> {
        match self.mailer {
            Some(_) => Ok(()),
            None => Err(recovery::RecoveryError::EmailUnavailable),
        }
    }
}

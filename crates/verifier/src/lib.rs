//! # tessera-verifier
//!
//! Verify [Tessera](https://github.com/) access tokens in your own service,
//! locally, with Tessera's public keys alone: no call to Tessera per request.
//!
//! - Discovers `jwks_uri` from `{issuer}/.well-known/openid-configuration`,
//!   fetches the JWKS and caches it as its `Cache-Control: max-age` says
//!   (within bounds), refreshing in the background before it goes stale.
//! - A token signed with a key not yet cached triggers one refetch
//!   (rate-limited, concurrent misses coalesced) before it is refused.
//! - While Tessera is unreachable, the last good keys keep working.
//! - Validation: RS256 only; `typ` must be `at+jwt`; `iss`, `aud`, `exp` and
//!   `nbf` (with leeway) are checked; `jku`, `x5u`, embedded keys and `crit`
//!   are refused, never followed.
//!
//! ## Example: an actix-web service
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web, Responder};
//! use tessera_verifier::Verifier;
//! use tessera_verifier::actix::{Admin, AuthenticatedUser, HasRole};
//!
//! async fn profile(user: AuthenticatedUser) -> impl Responder {
//!     format!("hello {} with roles {:?}", user.0.sub, user.0.roles)
//! }
//!
//! async fn admin_only(admin: HasRole<Admin>) -> impl Responder {
//!     format!("hello admin {}", admin.0.sub)
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier = Verifier::builder("https://auth.example.com")
//!         .audience("orders-api")
//!         .discover()
//!         .await?;
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(verifier.clone())
//!             .route("/profile", web::get().to(profile))
//!             .route("/admin", web::get().to(admin_only))
//!     })
//!     .bind("127.0.0.1:9000")?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! Without actix (default features off):
//!
//! ```no_run
//! # async fn run(token: &str) -> Result<(), tessera_verifier::Error> {
//! let verifier = tessera_verifier::Verifier::builder("https://auth.example.com")
//!     .audience("orders-api")
//!     .discover()
//!     .await?;
//! let claims = verifier.verify(token).await?;
//! println!("{} may {}", claims.sub, claims.scope);
//! let tenant: Option<String> = claims.get("tenant"); // a custom claim
//! # Ok(()) }
//! ```
//!
//! Tokens stay valid until `exp` even after the user logs out of Tessera:
//! offline verification can't know of a logout. Keep access tokens short-lived.

#[cfg(feature = "actix")]
pub mod actix;
mod claims;
pub mod validate;
mod verifier;

pub use claims::Claims;
pub use validate::KeySet;
pub use verifier::{Verifier, VerifierBuilder};

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The token is not valid; the text is safe to show the caller.
    #[error("{0}")]
    Invalid(&'static str),
    #[error("issuer unreachable: {0}")]
    Unreachable(String),
    #[error("discovery: {0}")]
    Discovery(String),
    #[error("JWKS: {0}")]
    Jwks(String),
    #[error("configuration: {0}")]
    Config(String),
}

//! Tessera: an authentication service. Passwords are checked with argon2id,
//! access tokens are RS256 JWTs, and the public keys are published as a JWKS
//! so other services verify tokens on their own.
//!
//! Where a request goes: [`http`] routes it to a handler, which calls one
//! domain module — [`accounts`], [`sessions`], [`sso`] (browser sign-in),
//! [`oauth`], [`clients`], [`tokens`], [`keys`] — over
//! [`db`]. [`startup`] wires them together from [`configuration`].

pub mod accounts;
pub mod app;
pub mod audit;
pub mod clients;
pub mod clock;
pub mod configuration;
pub mod db;
pub mod email;
pub mod http;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod secrets;
pub mod sessions;
pub mod sso;
pub mod startup;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod tokens;

//! Builds the application from settings: database (migrated), keys, password
//! hasher, token issuer and verifier, and the HTTP server on its listener.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer, web};

use crate::accounts::{HashError, PasswordHasher};
use crate::configuration::Settings;
use crate::db::{Db, DbError};
use crate::http::{self, AppState};
use crate::keys::{KeyError, KeyStore};
use crate::sessions::SessionPolicy;
use crate::sso::SsoPolicy;
use crate::tokens::{TokenIssuer, TokenVerifier};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("passwords: {0}")]
    Hashing(#[from] HashError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
}

/// Connects to the database and brings its schema up to date.
pub fn connect_database(settings: &Settings) -> Result<Db, DbError> {
    let db = Db::connect(
        &settings.database.url,
        settings.database.pool_size,
        settings.pool_checkout_timeout(),
    )?;
    migrate(db)
}

/// [`connect_database`] for one-off commands (the CLI).
pub fn connect_database_oneshot(settings: &Settings) -> Result<Db, DbError> {
    migrate(Db::connect_oneshot(
        &settings.database.url,
        settings.pool_checkout_timeout(),
    )?)
}

fn migrate(db: Db) -> Result<Db, DbError> {
    let applied = db.migrate()?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(db)
}

/// Everything the handlers share, and the session clean-up task. Must be
/// called inside a tokio runtime.
pub fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    let db = connect_database(&settings)?;
    let keys = Arc::new(KeyStore::load_or_create(
        &settings.keys.dir,
        settings.keys.bits,
    )?);
    let hasher = PasswordHasher::new(&settings.passwords)?;
    let issuer = TokenIssuer::new(
        settings.issuer.clone(),
        settings.tokens.access_ttl_seconds,
        keys.clone(),
    );
    let verifier = TokenVerifier::new(
        &settings.issuer,
        &settings.tokens.audience,
        settings.tokens.leeway_seconds,
        keys.clone(),
    );
    let sessions = SessionPolicy::from(&settings.sessions);
    let sso = SsoPolicy::from(&settings.sso);
    spawn_cleanup(
        db.clone(),
        sessions,
        sso,
        std::time::Duration::from_secs(settings.sessions.cleanup_interval_seconds),
    );
    Ok(AppState {
        settings,
        db,
        hasher,
        keys,
        issuer,
        verifier,
        sessions,
        sso,
    })
}

/// Deletes ended and expired sessions, SSO sessions, stale sign-ins and old
/// codes every `interval`, off the request path.
fn spawn_cleanup(db: Db, sessions: SessionPolicy, sso: SsoPolicy, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let deleted = match crate::sessions::delete_expired(&db, sessions).await {
                Ok(n) => crate::sso::delete_expired(&db, sso).await.map(|m| n + m),
                Err(e) => Err(e),
            };
            match deleted {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "session clean-up failed; will retry"),
            }
        }
    });
}

impl Application {
    /// Binds `server.bind` and builds the application on it;
    /// `run_until_stopped` serves. Must be called inside a tokio runtime.
    pub fn build(settings: Settings) -> Result<Application, StartupError> {
        let bind = settings.server.bind.clone();
        let listener =
            TcpListener::bind(&bind).map_err(|source| StartupError::Bind { bind, source })?;
        Self::build_with_listener(settings, listener)
    }

    /// Builds the application on a listener bound beforehand (so a caller
    /// can learn the port, e.g. to make it part of the issuer URL).
    pub fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Application, StartupError> {
        let bind = settings.server.bind.clone();
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let state = build_state(settings)?;
        let s = &state.settings;
        tracing::info!(
            issuer = %s.issuer,
            jwks_uri = %s.jwks_uri(),
            database = %format!("{} ({})", state.db.backend_name(), crate::db::redacted_url(&s.database.url)),
            signing_kid = state.keys.active().map(|k| k.kid()).unwrap_or("none"),
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or(bind.clone()),
            "tessera started",
        );
        let workers = match s.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shutdown_timeout = s.server.shutdown_timeout_seconds;
        let json_limit = s.server.json_body_limit_bytes;
        let state = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(http::json_config(json_limit))
                .app_data(http::form_config(json_limit))
                .app_data(http::query_config())
                .configure(http::routes)
                .default_service(web::to(http::not_found))
                .wrap_fn(|req, srv| {
                    // Method, path and status only: queries and headers can
                    // carry secrets.
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    let started = Instant::now();
                    let response = srv.call(req);
                    async move {
                        let response = response.await?;
                        tracing::info!(
                            target: "tessera::access",
                            %method,
                            %path,
                            status = response.status().as_u16(),
                            micros = started.elapsed().as_micros() as u64,
                        );
                        Ok(response)
                    }
                })
        })
        .workers(workers)
        .shutdown_timeout(shutdown_timeout)
        .listen(listener)
        .map_err(|source| StartupError::Bind { bind, source })?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests, embedding programs).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

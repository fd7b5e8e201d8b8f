//! Builds the application from settings: database (migrated), keys, password
//! hasher, token issuer and verifier, and the HTTP server on its listener.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::accounts::{HashError, PasswordHasher};
use crate::app::recovery::ResetPolicy;
use crate::configuration::Settings;
use crate::db::{Db, DbError};
use crate::email::sender::{Mailer, SenderPolicy};
use crate::http::client_ip::TrustedProxies;
use crate::http::throttle::RateLimiter;
use crate::http::{self, AppState};
use crate::keys::{Clock, KeyError, KeyPolicy, KeyRing, system_clock};
use crate::metrics::Metrics;
use crate::sessions::SessionPolicy;
use crate::sso::SsoPolicy;
use crate::telemetry::{RequestId, RequestSpan};
use crate::throttle::lockout::LockoutPolicy;
use crate::tokens::{OwnAudiences, TokenIssuer, TokenVerifier};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("passwords: {0}")]
    Hashing(#[from] HashError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// `throttle.trusted_proxies` (parsed where it is used, so the settings
    /// don't reach into the throttle).
    #[error("throttle.trusted_proxies: {0}")]
    TrustedProxies(String),
    /// `email.smtp_url` or `email.from` that lettre won't take.
    #[error("{0}")]
    Email(String),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    keys: Arc<KeyRing>,
    shutdown: Shutdown,
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

/// The migration after which stored addresses are in their normal form
/// (NFKC, IDNA): applying it rewrites the older ones.
const ADDRESSES_NORMALISED: &str = "20261202000006";

fn migrate(db: Db) -> Result<Db, DbError> {
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(applied = applied.len(), "database migrations applied");
    }
    if applied.iter().any(|v| v == ADDRESSES_NORMALISED) {
        let done = db.run_blocking(crate::accounts::normalise_stored_addresses)?;
        tracing::info!(
            rewritten = done.rewritten,
            left = done.left,
            "stored email addresses brought to their normal form"
        );
    }
    Ok(db)
}

/// How long new keys wait before signing and old ones stay published.
pub fn key_policy(settings: &Settings) -> KeyPolicy {
    let seconds = crate::configuration::duration_seconds;
    KeyPolicy {
        prepublication: seconds(settings.keys.prepublication_delay_seconds),
        // The longest a token signed just before the switch lives: access
        // tokens and ID tokens share this lifetime, plus the leeway.
        retention: seconds(settings.tokens.access_ttl_seconds + settings.tokens.leeway_seconds),
    }
}

/// Everything the handlers share, and the background tasks (session
/// clean-up, key rescans). Must be called inside a tokio runtime.
pub fn build_state(settings: Settings, clock: Clock) -> Result<AppState, StartupError> {
    // Before anything is created: a bad list stops the start.
    let trusted_proxies = TrustedProxies::parse(&settings.throttle.trusted_proxies)
        .map_err(StartupError::TrustedProxies)?;
    // One clock for the rows written, the tokens signed and the key schedule.
    let db = connect_database(&settings)?.with_clock(clock.clone());
    let keys = Arc::new(KeyRing::load_or_create(
        &settings.keys.dir,
        settings.keys.bits,
        key_policy(&settings),
        clock,
    )?);
    spawn_key_rescan(
        keys.clone(),
        std::time::Duration::from_secs(settings.keys.rescan_interval_seconds),
    );
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
    let settings_throttle = settings.throttle.clone();
    let rate_limiter = Arc::new(RateLimiter::new(&settings_throttle));
    spawn_cleanup(
        db.clone(),
        sessions,
        sso,
        rate_limiter.clone(),
        std::time::Duration::from_secs(settings.sessions.cleanup_interval_seconds),
    );
    let reset = ResetPolicy::from_settings(&settings.accounts);
    let mailer = Mailer::from_settings(&settings.email).map_err(StartupError::Email)?;
    match &mailer {
        Some(mailer) => spawn_email_sender(
            db.clone(),
            mailer.clone(),
            SenderPolicy::from_settings(&settings.email),
            (settings.issuer.clone(), reset),
        ),
        None => tracing::warn!(
            "no email.smtp_url: no e-mail is sent, and password reset answers 503 email_unavailable"
        ),
    }
    if mailer.is_none() && settings.accounts.require_verified_email {
        tracing::warn!(
            "accounts.require_verified_email is set but no e-mail is sent: registration answers 503 email_unavailable, and only accounts verified before can sign in"
        );
    }
    let invitations = crate::app::invitation::Invitations::from_settings(&settings);
    let app = crate::app::Services {
        mailer,
        reset,
        invitations,
        accounts: settings.accounts.clone(),
        own_audiences: OwnAudiences::new(&settings.issuer, &settings.tokens.audience),
        db,
        hasher,
        issuer,
        verifier,
        sessions,
        sso,
        lockout: LockoutPolicy::from(&settings_throttle),
        login: settings.login.clone(),
        issuer_url: settings.issuer.clone(),
    };
    Ok(AppState {
        app,
        settings,
        keys,
        metrics: Arc::new(Metrics::new(http::ROUTES)),
        rate_limiter,
        trusted_proxies,
        shutting_down: http::ShuttingDown::default(),
    })
}

/// Reads the keys folder again every `interval` and on SIGHUP, so new and
/// revoked keys take effect without a restart.
fn spawn_key_rescan(keys: Arc<KeyRing>, interval: std::time::Duration) {
    let rescan = |keys: Arc<KeyRing>| async move {
        match tokio::task::spawn_blocking(move || keys.reload()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the keys folder; keeping the keys loaded")
            }
            // The next rescan tries again: a bad key file may be fixed by then.
            Err(e) => tracing::error!(
                panic = %join_failure(e),
                "reading the keys folder panicked; keeping the keys loaded"
            ),
        }
    };
    let periodic = keys.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            rescan(periodic.clone()).await;
        }
    });
    // Registered now, not in the task: a SIGHUP right after start must not
    // meet the default action (ending the process).
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; keys are read every rescan interval only");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the keys folder");
            rescan(keys.clone()).await;
        }
    });
}

/// What ended a blocking task that did not return: its panic message, or
/// that it was cancelled.
fn join_failure(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(error) => error.to_string(),
    }
}

/// Deletes ended and expired sessions, SSO sessions, stale sign-ins and old
/// codes every `interval`, off the request path, and forgets the rate
/// limiter's idle clients.
async fn delete_expired_links(db: &Db) -> Result<usize, DbError> {
    let now = db.now();
    db.run(move |conn| crate::accounts::links::delete_expired_with(conn, now))
        .await
}

fn spawn_cleanup(
    db: Db,
    sessions: SessionPolicy,
    sso: SsoPolicy,
    rate_limiter: Arc<RateLimiter>,
    interval: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            rate_limiter.forget_idle();
            let deleted = match crate::sessions::delete_expired(&db, sessions).await {
                Ok(n) => match crate::sso::delete_expired(&db, sso).await {
                    Ok(m) => match crate::oauth::authorization::delete_expired_codes(&db).await {
                        Ok(k) => match crate::throttle::lockout::delete_stale(&db).await {
                            Ok(l) => delete_expired_links(&db).await.map(|t| n + m + k + l + t),
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
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

/// Every poll interval: prepares the queued reset requests into messages,
/// then sends the outbox's due mail; at start and then hourly, prunes what
/// was sent (or given up) longer ago than the retention.
fn spawn_email_sender(
    db: Db,
    mailer: Mailer,
    policy: SenderPolicy,
    (issuer, reset): (String, ResetPolicy),
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(policy.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<std::time::Instant> = None;
        loop {
            ticks.tick().await;
            // Every request waiting, so a flood of them (dropped, mostly)
            // can't hold a real message back for long; bounded per tick.
            for _ in 0..200 {
                match crate::app::requests::prepare_requested(&db, &issuer, reset).await {
                    Ok(taken) if taken as i64 == crate::app::requests::PREPARE_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "reset requests not prepared; will retry");
                        break;
                    }
                }
            }
            if let Err(e) = crate::email::sender::deliver_due(&db, &mailer, policy).await {
                tracing::warn!(error = %e, "email outbox unreadable; will retry");
            }
            if last_prune.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(3600)) {
                last_prune = Some(std::time::Instant::now());
                match crate::email::sender::prune(&db, policy).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old outbox messages deleted"),
                    Err(e) => tracing::warn!(error = %e, "outbox clean-up failed; will retry"),
                }
            }
        }
    });
}

/// The application the server runs, routes, shared state and middleware:
/// one per worker. Public so a harness can serve the very same application
/// in-process (`actix_web::test::init_service`), e.g. the fuzzers.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let s = &state.settings;
    let json_limit = s.server.json_body_limit_bytes;
    let https = s.issuer.starts_with("https://");
    let head_limit = s.server.max_request_head_bytes;
    let cors_origins = s.cors.allowed_origins.clone();
    let metrics = state.metrics.clone();
    let shutting_down = state.shutting_down.clone();
    App::new()
        .app_data(state)
        .app_data(http::json_config(json_limit))
        .app_data(http::form_config(json_limit))
        .app_data(http::query_config())
        .configure(http::routes)
        .default_service(web::to(http::not_found))
        // A head over the limit: 431 before any handler.
        .wrap_fn(move |req, srv| {
            use futures_util::future::{Either, ready};
            match http::head_limit::refusal(&req, head_limit) {
                Some(refusal) => Either::Left(ready(Ok(req.into_response(refusal)))),
                None => Either::Right(srv.call(req)),
            }
        })
        // Control characters in the path or query: refused before
        // any handler, so none can pass one to the database.
        .wrap_fn(|req, srv| {
            use futures_util::future::{Either, ready};
            match http::text::refuse_in_target(req.request()) {
                Some(refusal) => Either::Left(ready(Ok(req.into_response(refusal)))),
                None => Either::Right(srv.call(req)),
            }
        })
        .wrap(http::cors::ApiCors::new(&cors_origins))
        .wrap_fn({
            let metrics = metrics.clone();
            move |req, srv| {
                // Method, path and status only: queries and headers can
                // carry secrets.
                let method = req.method().clone();
                let path = req.path().to_owned();
                let started = Instant::now();
                let request_id = RequestId::of(req.request())
                    .map_or_else(|| uuid::Uuid::now_v7().to_string(), |id| id.0);
                let response = srv.call(req);
                let metrics = metrics.clone();
                async move {
                    let mut response = response.await?;
                    http::security_headers(&path, https, response.headers_mut());
                    let pattern = response.request().match_pattern();
                    let route = metrics.route_label(pattern.as_deref());
                    metrics.observe_request(
                        pattern.as_deref(),
                        method.as_str(),
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&request_id) {
                        response.headers_mut().insert(
                            actix_web::http::header::HeaderName::from_static("x-request-id"),
                            value,
                        );
                    }
                    tracing::info!(
                        target: "tessera::access",
                        %request_id,
                        %method,
                        %route,
                        %path,
                        status = response.status().as_u16(),
                        micros = started.elapsed().as_micros() as u64,
                    );
                    Ok(response)
                }
            }
        })
        // Every request in a span with its request id, so every
        // line logged while handling it (domain code and error
        // mapping included) carries the id.
        .wrap(TracingLogger::<RequestSpan>::new())
        .wrap_fn({
            let shutting_down = shutting_down.clone();
            move |req, srv| {
                // While draining, each answer closes its connection,
                // so kept-alive clients reconnect (to an instance the
                // load balancer still routes to) before this one
                // stops listening.
                let response = srv.call(req);
                let shutting_down = shutting_down.clone();
                async move {
                    let mut response = response.await?;
                    if shutting_down.is_set() {
                        response
                            .response_mut()
                            .head_mut()
                            .set_connection_type(actix_web::http::ConnectionType::Close);
                    }
                    Ok(response)
                }
            }
        })
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
        Self::build_with_clock(settings, listener, system_clock())
    }

    /// As [`Self::build_with_listener`], with the clock that decides which
    /// key signs (tests move it to drive key rotations).
    pub fn build_with_clock(
        settings: Settings,
        listener: TcpListener,
        clock: Clock,
    ) -> Result<Application, StartupError> {
        // TLS files first: a bad one stops the start before anything else.
        let tls = match (&settings.server.tls.cert, &settings.server.tls.key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
            _ => None,
        };
        let bind = settings.server.bind.clone();
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let state = build_state(settings, clock)?;
        let keys = state.keys.clone();
        let shutting_down_flag = state.shutting_down.clone();
        let drain = std::time::Duration::from_secs(state.settings.server.shutdown_drain_seconds);
        let s = &state.settings;
        tracing::info!(
            issuer = %s.issuer,
            jwks_uri = %s.jwks_uri(),
            database = %format!("{} ({})", state.app.db.backend_name(), crate::db::redacted_url(&s.database.url)),
            signing_kid = state.keys.view().active().map(|k| k.kid().to_owned()).unwrap_or("none".into()),
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or(bind.clone()),
            "tessera started",
        );
        let workers = match s.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shutdown_timeout = s.server.shutdown_timeout_seconds;
        let head_timeout = std::time::Duration::from_secs(s.server.request_head_timeout_seconds);
        let keep_alive = std::time::Duration::from_secs(s.server.keep_alive_seconds);
        let max_connections = s.server.max_connections_per_worker;
        let state = web::Data::new(state);
        let server = HttpServer::new(move || app(state.clone()))
            .workers(workers)
            .shutdown_timeout(shutdown_timeout)
            // Slowloris: a connection that dribbles its request head, or idles,
            // is closed; each worker takes a bounded number of connections.
            .client_request_timeout(head_timeout)
            .keep_alive(keep_alive)
            .max_connections(max_connections);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(|source| StartupError::Bind { bind, source })?
        // SIGTERM and SIGINT drain first (`Shutdown`): actix's own handling
        // would stop accepting at once.
        .disable_signals()
        .run();
        let shutdown = Shutdown::new(server.handle(), shutting_down_flag, drain);
        shutdown.on_signals();
        Ok(Application {
            port,
            server,
            keys,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The signing keys (tests reload them without waiting for a rescan).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.clone()
    }

    /// Stops the server from elsewhere (tests, embedding programs).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Starts the same shutdown as SIGTERM (tests, embedding programs).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until stopped: after SIGTERM/SIGINT (or [`Shutdown::begin`]),
    /// a drain, then the requests accepted finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut now = self.shutdown.now.subscribe();
        let result = tokio::select! {
            result = self.server => result,
            // Dropping the server closes every connection at once.
            _ = now.wait_for(|now| *now) => Ok(()),
        };
        tracing::info!("server stopped");
        result
    }
}

/// How a running server stops, as rolling deploys need. The first request
/// (SIGTERM, SIGINT or [`Shutdown::begin`]) makes `/readyz` answer 503 at
/// once while the server goes on accepting and serving for
/// `server.shutdown_drain_seconds`, so load balancers stop sending to it
/// before it stops listening; then it stops accepting and lets what it
/// accepted finish (`server.shutdown_timeout_seconds`). A second request
/// stops at once.
#[derive(Clone)]
pub struct Shutdown {
    server: actix_web::dev::ServerHandle,
    shutting_down: http::ShuttingDown,
    drain: std::time::Duration,
    /// Set by a second request: stop without waiting.
    now: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Between pausing the acceptor and stopping the workers: a worker told to
/// stop drops the connections the acceptor has handed it but it has not
/// started on yet (actix-server), so it is given time to start on them.
const HANDOVER: std::time::Duration = std::time::Duration::from_millis(200);

impl Shutdown {
    fn new(
        server: actix_web::dev::ServerHandle,
        shutting_down: http::ShuttingDown,
        drain: std::time::Duration,
    ) -> Shutdown {
        Shutdown {
            server,
            shutting_down,
            drain,
            now: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Begins the shutdown; a second call stops at once. Must be called
    /// inside a tokio runtime.
    pub fn begin(&self) {
        if self.shutting_down.begin() {
            tokio::spawn(self.clone().drain_then_stop());
        } else if !*self.now.borrow() {
            tracing::info!("second stop request: stopping at once");
            self.now.send_replace(true);
        }
    }

    async fn drain_then_stop(self) {
        tracing::info!(
            drain_seconds = self.drain.as_secs(),
            "shutting down: /readyz answers 503; serving on until the drain ends"
        );
        let mut now = self.now.subscribe();
        tokio::select! {
            () = tokio::time::sleep(self.drain) => {}
            _ = now.wait_for(|now| *now) => return,
        }
        tracing::info!("drain over: no longer accepting; finishing the requests accepted");
        self.server.pause().await;
        tokio::time::sleep(HANDOVER).await;
        self.server.stop(true).await;
    }

    /// SIGTERM and SIGINT begin the shutdown. Registered before returning:
    /// a signal right after start must not meet the default action (ending
    /// the process without a drain).
    fn on_signals(&self) {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terms), Ok(mut ints)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!(
                "cannot listen for SIGTERM and SIGINT; they will end the process without a drain"
            );
            return;
        };
        let shutdown = self.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = terms.recv() => "SIGTERM",
                    Some(()) = ints.recv() => "SIGINT",
                    else => return,
                };
                tracing::info!(signal = name, "stop requested");
                shutdown.begin();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_panicking_task_is_reported_with_its_message() {
        let panicked = tokio::task::spawn_blocking(|| panic!("key file {} broke", 7))
            .await
            .unwrap_err();
        assert_eq!(super::join_failure(panicked), "key file 7 broke");
        let panicked = tokio::task::spawn_blocking(|| std::panic::panic_any(42_u8))
            .await
            .unwrap_err();
        assert_eq!(super::join_failure(panicked), "a panic without a message");
    }
}

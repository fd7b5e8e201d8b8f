//! A database outage: requests get 503 `database_unavailable` within the
//! pool's checkout timeout, and the service recovers by itself once the
//! database is back. The outage is real: the app reaches PostgreSQL through
//! a TCP relay that the test cuts and restores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem};

/// Relays TCP connections to `target` while up; cutting it drops every
/// relayed connection and refuses new ones.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let target = target.clone();
                let mut cuts = cuts.clone();
                // Only cuts from now on end this connection.
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay { port, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The app on PostgreSQL reached through a relay the test can cut, with a
/// one-second pool checkout timeout; None when PostgreSQL isn't there.
/// The database is dropped with the returned `TestDatabase`.
async fn behind_a_relay() -> Option<(TestApp, Relay, crate::helpers::TestDatabase)> {
    let probe = crate::helpers::TestDatabase::create()?;
    let db_url = url::Url::parse(&probe.url).unwrap();
    let target = format!(
        "{}:{}",
        db_url.host_str().unwrap(),
        db_url.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    let mut relayed = db_url.clone();
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.port)).unwrap();
    let relayed = relayed.to_string();
    let app = TestApp::spawn_with(Backend::Postgres, |s| {
        s.database.url = relayed;
        s.database.connect_timeout_seconds = 1;
    })
    .await?;
    Some((app, relay, probe))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_503_and_recovers() {
    // Only PostgreSQL can go away under a running service; an embedded
    // SQLite file has no outage to simulate.
    let Some((app, relay, _probe)) = behind_a_relay().await else {
        return;
    };
    // The app's own fresh database is unused; it works in the probe's.
    let token = app.access_token("outage@example.com").await;

    relay.cut();
    let started = Instant::now();
    let response = app.get_with_token("/v1/me", &token).await;
    assert_problem(response, 503, "database_unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "503 within the checkout timeout"
    );
    let response = app.login("outage@example.com", PASSWORD).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "database_unavailable").await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "the process is still up"
    );

    relay.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if app.get_with_token("/v1/me", &token).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the service recovers without a restart");
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        app.login("outage@example.com", PASSWORD).await.status(),
        200
    );
}

/// Under load, PostgreSQL goes away and comes back: requests during the
/// outage get 503 quickly (none hangs), `/readyz` says so, the service
/// recovers by itself, and no data is lost — every registration that was
/// answered 201 exists afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_load_loses_no_acknowledged_registration() {
    let Some((app, relay, _probe)) = behind_a_relay().await else {
        return;
    };
    let app = Arc::new(app);

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (app, stop) = (app.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut acknowledged, mut unavailable, mut slowest) = (Vec::new(), 0, Duration::ZERO);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let email = format!("load-{writer}-{n}@example.com");
                let started = Instant::now();
                let response = app
                    .post_json(
                        "/v1/auth/register",
                        &serde_json::json!({"email": email, "password": PASSWORD}),
                    )
                    .await;
                slowest = slowest.max(started.elapsed());
                match response.status().as_u16() {
                    201 => acknowledged.push(email),
                    503 => unavailable += 1,
                    other => panic!("{email}: unexpected {other}"),
                }
            }
            (acknowledged, unavailable, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    relay.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.get("/readyz").await.status(),
        503,
        "readyz reports the outage"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.restore();
    let outage_over = Instant::now();
    let mut recovered = None;
    while outage_over.elapsed() < Duration::from_secs(20) {
        if app.get("/readyz").await.status() == 200 {
            recovered = Some(outage_over.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the service recovers without a restart");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);

    let (mut acknowledged, mut unavailable, mut slowest) = (Vec::new(), 0, Duration::ZERO);
    for writer in writers {
        let (a, u, s) = writer.await.unwrap();
        acknowledged.extend(a);
        unavailable += u;
        slowest = slowest.max(s);
    }
    assert!(unavailable > 0, "the outage was felt");
    assert!(
        slowest < Duration::from_secs(10),
        "no request hung ({slowest:?})"
    );
    eprintln!(
        "outage: {} registrations acknowledged, {unavailable} answered 503, slowest {slowest:?}, ready again {recovered:?} after the database came back",
        acknowledged.len()
    );
    // Every acknowledged registration is there.
    let db = app.db();
    let stored: Vec<String> = db
        .run(|conn| {
            use diesel::prelude::*;
            use tessera::db::schema::users;
            Ok(users::table.select(users::email).load(conn)?)
        })
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|e| !stored.contains(*e))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(!acknowledged.is_empty());
}

//! The load driver: N client tasks send one request over and over, each
//! waiting for its response before the next (closed loop), until a deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Method, Url};

/// The request every task repeats.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub url: Url,
    pub bearer_token: Option<String>,
    pub json_body: Option<Vec<u8>>,
}

impl RequestSpec {
    pub fn get(url: Url) -> RequestSpec {
        RequestSpec {
            method: Method::GET,
            url,
            bearer_token: None,
            json_body: None,
        }
    }

    pub fn post_json(url: Url, body: &serde_json::Value) -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            url,
            bearer_token: None,
            json_body: Some(body.to_string().into_bytes()),
        }
    }

    pub fn with_bearer(mut self, token: String) -> RequestSpec {
        self.bearer_token = Some(token);
        self
    }

    fn build(&self, client: &Client) -> reqwest::RequestBuilder {
        let mut request = client.request(self.method.clone(), self.url.clone());
        if let Some(token) = &self.bearer_token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = &self.json_body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        request
    }
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// From the first request sent to the last response received.
    pub elapsed: Duration,
    /// Latency of each 2xx response, in microseconds.
    pub ok_latencies_us: Vec<u32>,
    /// Failed requests by kind ("HTTP 503", "transport").
    pub errors: BTreeMap<String, u64>,
    /// The first failure, with its status and body or transport error.
    pub first_error: Option<String>,
}

impl LoadOutcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn request_count(&self) -> u64 {
        self.ok_latencies_us.len() as u64 + self.error_count()
    }

    fn merge(&mut self, other: LoadOutcome) {
        self.ok_latencies_us.extend(other.ok_latencies_us);
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs `concurrency` tasks repeating `spec` for `duration`. Tasks start no
/// request after the deadline, and the client's own timeout bounds the
/// ones in flight, so this returns shortly after `duration`.
pub async fn run(
    client: &Client,
    spec: &RequestSpec,
    concurrency: u32,
    duration: Duration,
) -> LoadOutcome {
    let spec = Arc::new(spec.clone());
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(client_loop(client.clone(), spec.clone(), deadline)))
        .collect();
    let mut outcome = LoadOutcome::default();
    for task in tasks {
        outcome.merge(task.await.expect("load tasks do not panic"));
    }
    outcome.elapsed = started.elapsed();
    outcome
}

async fn client_loop(client: Client, spec: Arc<RequestSpec>, deadline: Instant) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        match send_once(&client, &spec).await {
            Ok(()) => {
                let micros = sent.elapsed().as_micros();
                outcome
                    .ok_latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(failure) => {
                *outcome.errors.entry(failure.kind).or_default() += 1;
                outcome.first_error.get_or_insert(failure.detail);
                if failure.is_transport {
                    // A refused or reset connection fails in microseconds;
                    // don't spin on a server that is gone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    outcome
}

struct Failure {
    kind: String,
    detail: String,
    is_transport: bool,
}

impl Failure {
    fn transport(e: &reqwest::Error) -> Failure {
        Failure {
            kind: "transport".to_owned(),
            detail: format!("transport error: {}", error_chain(e)),
            is_transport: true,
        }
    }
}

async fn send_once(client: &Client, spec: &RequestSpec) -> Result<(), Failure> {
    let response = spec
        .build(client)
        .send()
        .await
        .map_err(|e| Failure::transport(&e))?;
    let status = response.status();
    // Read the whole body: it is part of the latency, and a connection goes
    // back to the pool only once its response has been consumed.
    let body = response.bytes().await.map_err(|e| Failure::transport(&e))?;
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body);
    Err(Failure {
        kind: format!("HTTP {}", status.as_u16()),
        detail: format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        ),
        is_transport: false,
    })
}

/// An error and its causes on one line (reqwest's own message omits them).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

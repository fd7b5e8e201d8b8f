//! The load driver: N client tasks, each sending its request over and over
//! and waiting for the response before the next (closed loop), until a
//! deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Method, Url};

/// One HTTP request, ready to send again and again.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub url: Url,
    /// The whole `Authorization` value, built once.
    authorization: Option<String>,
    /// Content type and bytes.
    body: Option<(&'static str, Vec<u8>)>,
}

impl RequestSpec {
    pub fn get(url: Url) -> RequestSpec {
        RequestSpec {
            method: Method::GET,
            url,
            authorization: None,
            body: None,
        }
    }

    pub fn post_json(url: Url, body: &serde_json::Value) -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            url,
            authorization: None,
            body: Some(("application/json", body.to_string().into_bytes())),
        }
    }

    /// A POST of `application/x-www-form-urlencoded` fields, as `/oauth2/*`
    /// takes them.
    pub fn post_form(url: Url, fields: &[(&str, &str)]) -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            url,
            authorization: None,
            body: Some((
                "application/x-www-form-urlencoded",
                form_body(fields).into_bytes(),
            )),
        }
    }

    pub fn with_bearer(mut self, token: String) -> RequestSpec {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    /// `client_secret_basic` (RFC 6749 §2.3.1): id and secret are
    /// form-urlencoded before they go into the Basic value.
    pub fn with_client_basic(mut self, client_id: &str, client_secret: &str) -> RequestSpec {
        self.authorization = Some(client_basic_authorization(client_id, client_secret));
        self
    }

    pub fn build(&self, client: &Client) -> reqwest::RequestBuilder {
        let mut request = client.request(self.method.clone(), self.url.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some((content_type, body)) = &self.body {
            request = request
                .header(CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        request
    }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn client_basic_authorization(client_id: &str, client_secret: &str) -> String {
    let escape = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", escape(client_id), escape(client_secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// What one client task sends, and what it makes of each answer. A plain
/// [`RequestSpec`] repeats itself and takes any 2xx; a refresh chain
/// sends a different token every time, and an introspection is only a
/// success if the token is still active.
pub trait Exchange: Send + 'static {
    /// The request to send next.
    fn next_request(&self) -> &RequestSpec;

    /// Checks the body of a 2xx answer and takes from it what the next
    /// request needs; `Err` counts the request as failed.
    fn check(&mut self, _body: &[u8]) -> Result<(), Mismatch> {
        Ok(())
    }

    /// The server answered with an error status.
    fn rejected(&mut self) {}

    /// True once nothing this task could send would succeed: the task
    /// stops, rather than fail thousands of times.
    fn is_spent(&self) -> bool {
        false
    }
}

impl Exchange for RequestSpec {
    fn next_request(&self) -> &RequestSpec {
        self
    }
}

/// A 2xx answer that is not what the scenario expects.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Counted by kind, like "HTTP 401".
    pub kind: &'static str,
    pub detail: String,
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

/// Runs one task per exchange for `duration`, and hands the exchanges back
/// (a refresh chain goes on from where it stopped). Tasks start no request
/// after the deadline, and the client's own timeout bounds the ones in
/// flight, so this returns shortly after `duration`.
pub async fn run<E: Exchange>(
    client: &Client,
    exchanges: Vec<E>,
    duration: Duration,
) -> (LoadOutcome, Vec<E>) {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = exchanges
        .into_iter()
        .map(|exchange| tokio::spawn(client_loop(client.clone(), exchange, deadline)))
        .collect();
    let mut outcome = LoadOutcome::default();
    let mut exchanges = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (task_outcome, exchange) = task.await.expect("load tasks do not panic");
        outcome.merge(task_outcome);
        exchanges.push(exchange);
    }
    outcome.elapsed = started.elapsed();
    (outcome, exchanges)
}

async fn client_loop<E: Exchange>(
    client: Client,
    mut exchange: E,
    deadline: Instant,
) -> (LoadOutcome, E) {
    let mut outcome = LoadOutcome::default();
    while Instant::now() < deadline && !exchange.is_spent() {
        let sent = Instant::now();
        match send_once(&client, &mut exchange).await {
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
    (outcome, exchange)
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

async fn send_once<E: Exchange>(client: &Client, exchange: &mut E) -> Result<(), Failure> {
    let response = exchange
        .next_request()
        .build(client)
        .send()
        .await
        .map_err(|e| Failure::transport(&e))?;
    let status = response.status();
    // Read the whole body: it is part of the latency, and a connection goes
    // back to the pool only once its response has been consumed.
    let body = response.bytes().await.map_err(|e| Failure::transport(&e))?;
    if status.is_success() {
        return exchange.check(&body).map_err(|m| Failure {
            kind: m.kind.to_owned(),
            detail: m.detail,
            is_transport: false,
        });
    }
    exchange.rejected();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_urlencoded() {
        assert_eq!(
            form_body(&[("grant_type", "refresh_token"), ("refresh_token", "a+b/c=")]),
            "grant_type=refresh_token&refresh_token=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn client_basic_urlencodes_id_and_secret() {
        // base64("id:s3cret")
        assert_eq!(
            client_basic_authorization("id", "s3cret"),
            "Basic aWQ6czNjcmV0"
        );
        // "a:b" and "c d" become "a%3Ab" and "c+d": base64("a%3Ab:c+d")
        assert_eq!(
            client_basic_authorization("a:b", "c d"),
            "Basic YSUzQWI6Yytk"
        );
    }
}

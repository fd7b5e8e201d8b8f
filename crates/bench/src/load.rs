//! The load driver: N client tasks, each sending its request over and over
//! and waiting for the response before the next (closed loop), until a
//! deadline. An iteration is usually one request; an [`Exchange`] can make
//! it several (a sign-in: the authorize redirect, then the code's
//! redemption), measured as one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap};
use reqwest::{Client, Method, StatusCode, Url};

/// One HTTP request, ready to send again and again.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub url: Url,
    /// The whole `Authorization` value, built once.
    authorization: Option<String>,
    /// The whole `Cookie` value: the bench keeps a browser's cookies itself,
    /// per task, rather than in a jar shared by every task.
    cookie: Option<String>,
    /// Content type and bytes.
    body: Option<(&'static str, Vec<u8>)>,
}

impl RequestSpec {
    pub fn get(url: Url) -> RequestSpec {
        RequestSpec {
            method: Method::GET,
            url,
            authorization: None,
            cookie: None,
            body: None,
        }
    }

    pub fn post_json(url: Url, body: &serde_json::Value) -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            url,
            authorization: None,
            cookie: None,
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
            cookie: None,
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

    /// Adds a cookie to the `Cookie` header (RFC 6265 §5.4: `a=1; b=2`).
    pub fn with_cookie(mut self, name: &str, value: &str) -> RequestSpec {
        let pair = format!("{name}={value}");
        self.cookie = Some(match self.cookie.take() {
            Some(cookies) => format!("{cookies}; {pair}"),
            None => pair,
        });
        self
    }

    /// "GET /path", for reports and set-up errors.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }

    pub fn build(&self, client: &Client) -> reqwest::RequestBuilder {
        let mut request = client.request(self.method.clone(), self.url.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
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
/// success if the token is still active. An iteration can span several
/// requests ([`Exchange::iteration_continues`]): its latency runs from its
/// first request to its last answer, and it counts once, as one success or
/// one failure.
pub trait Exchange: Send + 'static {
    /// The request to send next.
    fn next_request(&self) -> &RequestSpec;

    /// Whether `status` is an answer for [`Exchange::check`]; anything else
    /// fails the request as "HTTP <status>". Any 2xx by default; a step
    /// that expects a redirect says so.
    fn expects(&self, status: StatusCode) -> bool {
        status.is_success()
    }

    /// Checks an expected answer and takes from it what the next request
    /// needs; `Err` counts the request (and its iteration) as failed.
    fn check(&mut self, _answer: &Answer<'_>) -> Result<(), Mismatch> {
        Ok(())
    }

    /// The server answered with a status the exchange does not expect.
    fn rejected(&mut self) {}

    /// True when the answer just checked was not the iteration's last: the
    /// next request belongs to the same iteration (it is sent even past
    /// the deadline, so that no iteration is cut in half).
    fn iteration_continues(&self) -> bool {
        false
    }

    /// The iteration failed, at whichever request and for whatever reason
    /// (transport too): the next request starts a new one.
    fn restart(&mut self) {}

    /// True once nothing this task could send would succeed: the task
    /// stops, rather than fail thousands of times.
    fn is_spent(&self) -> bool {
        false
    }

    /// The requests of one iteration, for the report: "GET /path".
    fn describe(&self) -> String {
        self.next_request().describe()
    }

    /// What the report calls one iteration when it is more than one
    /// request ("sign-in"); `None` when it is one request.
    fn iteration_noun(&self) -> Option<&'static str> {
        None
    }
}

impl Exchange for RequestSpec {
    fn next_request(&self) -> &RequestSpec {
        self
    }
}

/// An answer the exchange expected, with what a scenario may need from it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl<'a> Answer<'a> {
    /// The value of header `name`, if present and readable as text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A 200 with `body` and no headers, for tests of `check`.
    #[cfg(test)]
    pub fn ok(body: &'a [u8]) -> Answer<'a> {
        static NO_HEADERS: std::sync::LazyLock<HeaderMap> =
            std::sync::LazyLock::new(HeaderMap::new);
        Answer {
            status: StatusCode::OK,
            headers: &NO_HEADERS,
            body,
        }
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
    /// Latency of each successful iteration, in microseconds: one request's
    /// for most scenarios.
    pub ok_latencies_us: Vec<u32>,
    /// Failed iterations by kind of failure ("HTTP 503 server_busy",
    /// "transport").
    pub errors: BTreeMap<String, u64>,
    /// The longest a failed iteration took, in microseconds (a refusal
    /// should come back fast; a timeout takes the client's whole timeout).
    pub slowest_error_us: u32,
    /// The first failure, with its status and body or transport error.
    pub first_error: Option<String>,
    /// HTTP requests sent, whatever became of them.
    pub http_requests: u64,
    /// For iterations of several requests: each step's latencies, in the
    /// order the steps are sent (empty for one-request iterations).
    pub steps: Vec<StepLatencies>,
}

/// The successful answers to one step of multi-request iterations.
#[derive(Debug, Default)]
pub struct StepLatencies {
    /// "POST /path", as the step was first sent.
    pub request: String,
    pub ok_latencies_us: Vec<u32>,
}

impl LoadOutcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Iterations finished, successful or not (requests, for one-request
    /// iterations).
    pub fn iteration_count(&self) -> u64 {
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
        self.slowest_error_us = self.slowest_error_us.max(other.slowest_error_us);
        self.http_requests += other.http_requests;
        for (index, step) in other.steps.into_iter().enumerate() {
            match self.steps.get_mut(index) {
                Some(mine) => mine.ok_latencies_us.extend(step.ok_latencies_us),
                None => self.steps.push(step),
            }
        }
    }

    /// A successful answer at step `index` of an iteration; `name` names
    /// the step the first time it is seen.
    fn record_step(&mut self, index: usize, name: Option<String>, latency: Duration) {
        if self.steps.len() <= index {
            self.steps.resize_with(index + 1, StepLatencies::default);
            self.steps[index].request = name.unwrap_or_default();
        }
        self.steps[index].ok_latencies_us.push(micros(latency));
    }
}

fn micros(latency: Duration) -> u32 {
    u32::try_from(latency.as_micros()).unwrap_or(u32::MAX)
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
        let started = Instant::now();
        match iterate(&client, &mut exchange, &mut outcome).await {
            Ok(()) => outcome.ok_latencies_us.push(micros(started.elapsed())),
            Err(failure) => {
                outcome.slowest_error_us = outcome.slowest_error_us.max(micros(started.elapsed()));
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

/// Runs one iteration outside any load run, for set-up: a broken contract
/// fails here with its reason instead of as thousands of errors.
pub async fn iterate_once<E: Exchange>(client: &Client, exchange: &mut E) -> Result<(), String> {
    iterate(client, exchange, &mut LoadOutcome::default())
        .await
        .map_err(|failure| failure.detail)
}

/// Sends the requests of one iteration, until the exchange says it is
/// over or one of them fails (the exchange is then told to restart).
async fn iterate<E: Exchange>(
    client: &Client,
    exchange: &mut E,
    outcome: &mut LoadOutcome,
) -> Result<(), Failure> {
    let multi_step = exchange.iteration_noun().is_some();
    let mut step = 0;
    loop {
        // A step is named once, by the first request sent at it.
        let name =
            (multi_step && outcome.steps.len() <= step).then(|| exchange.next_request().describe());
        let sent = Instant::now();
        outcome.http_requests += 1;
        if let Err(failure) = send_once(client, exchange).await {
            exchange.restart();
            return Err(failure);
        }
        if multi_step {
            outcome.record_step(step, name, sent.elapsed());
        }
        if !exchange.iteration_continues() {
            return Ok(());
        }
        step += 1;
    }
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
    let mut response = exchange
        .next_request()
        .build(client)
        .send()
        .await
        .map_err(|e| Failure::transport(&e))?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    // Read the whole body: it is part of the latency, and a connection goes
    // back to the pool only once its response has been consumed.
    let body = response.bytes().await.map_err(|e| Failure::transport(&e))?;
    if exchange.expects(status) {
        let answer = Answer {
            status,
            headers: &headers,
            body: &body,
        };
        return exchange.check(&answer).map_err(|m| Failure {
            kind: m.kind.to_owned(),
            detail: m.detail,
            is_transport: false,
        });
    }
    let request = exchange.next_request().describe();
    exchange.rejected();
    let text = String::from_utf8_lossy(&body);
    Err(Failure {
        kind: error_kind(status, &body),
        detail: format!(
            "HTTP {status} to {request}: {}",
            text.chars().take(300).collect::<String>()
        ),
        is_transport: false,
    })
}

/// "HTTP 503", and the answer's error code when it gives one — the `code`
/// of a problem+json body, or OAuth's `error` — so that different refusals
/// with one status are counted apart: "HTTP 503 server_busy".
fn error_kind(status: StatusCode, body: &[u8]) -> String {
    let kind = format!("HTTP {}", status.as_u16());
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return kind;
    };
    let code = ["code", "error"]
        .iter()
        .find_map(|name| fields.get(*name)?.as_str())
        // A code, not a message: short, and one word.
        .filter(|code| {
            !code.is_empty()
                && code.len() <= 40
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    match code {
        Some(code) => format!("{kind} {code}"),
        None => kind,
    }
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

    #[test]
    fn cookies_join_into_one_header() {
        let spec = RequestSpec::get("http://127.0.0.1:1/".parse().unwrap())
            .with_cookie("a", "1")
            .with_cookie("b", "2");
        let request = spec.build(&Client::new()).build().unwrap();
        assert_eq!(request.headers()[COOKIE], "a=1; b=2");
        assert_eq!(spec.describe(), "GET /");
    }

    #[test]
    fn error_kinds_carry_the_answers_code() {
        let busy = br#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"too many sign-ins in progress; retry shortly","code":"server_busy"}"#;
        assert_eq!(
            error_kind(StatusCode::SERVICE_UNAVAILABLE, busy),
            "HTTP 503 server_busy"
        );
        let oauth = br#"{"error":"invalid_grant","error_description":"spent"}"#;
        assert_eq!(
            error_kind(StatusCode::BAD_REQUEST, oauth),
            "HTTP 400 invalid_grant"
        );
        // No JSON, no code, or a code that is a sentence: the status alone.
        assert_eq!(error_kind(StatusCode::BAD_GATEWAY, b"<html>"), "HTTP 502");
        assert_eq!(
            error_kind(StatusCode::NOT_FOUND, br#"{"code":3}"#),
            "HTTP 404"
        );
        assert_eq!(
            error_kind(StatusCode::CONFLICT, br#"{"code":"not a code"}"#),
            "HTTP 409"
        );
    }

    #[test]
    fn merge_keeps_the_slowest_failure() {
        let mut all = LoadOutcome::default();
        for slowest_error_us in [300, 9_000, 40] {
            all.merge(LoadOutcome {
                slowest_error_us,
                ..LoadOutcome::default()
            });
        }
        assert_eq!(all.slowest_error_us, 9_000);
    }

    #[test]
    fn steps_are_named_once_and_merged_in_order() {
        let mut task = LoadOutcome::default();
        let ms = Duration::from_millis;
        task.record_step(0, Some("GET /a".to_owned()), ms(1));
        task.record_step(1, Some("POST /b".to_owned()), ms(2));
        task.record_step(0, None, ms(3));
        task.http_requests = 3;
        let mut other = LoadOutcome::default();
        other.record_step(0, Some("GET /a".to_owned()), ms(4));
        other.http_requests = 1;

        let mut all = LoadOutcome::default();
        all.merge(task);
        all.merge(other);
        assert_eq!(all.http_requests, 4);
        let steps: Vec<(&str, &[u32])> = all
            .steps
            .iter()
            .map(|s| (s.request.as_str(), s.ok_latencies_us.as_slice()))
            .collect();
        assert_eq!(
            steps,
            [
                ("GET /a", &[1000, 3000, 4000][..]),
                ("POST /b", &[2000][..])
            ]
        );
    }
}

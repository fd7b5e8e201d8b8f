//! `timing`: does a login for an unknown address take as long as one with
//! a wrong password? It should — the server checks an unknown address's
//! password against a dummy argon2 hash — or the answer's timing tells an
//! attacker which addresses have accounts. The test suite asserts it:
//! `tests/api/timing.rs` (`login_timing`, on both backends) takes 150
//! interleaved pairs from a debug build with the release argon2 parameters
//! and fails if the KS test or the pairs' sign test tells the two apart at
//! α = 0.001 (forgiving a constant difference of up to 3 % of a login).
//! This scenario measures the same against a release server, with as many
//! samples as asked, and reports the figures.
//!
//! One account is registered. Then `--timing-samples` logins of each kind
//! go out one at a time, interleaved — wrong password, unknown address,
//! unknown address, wrong password, … — so that a drift in the machine's
//! speed hits both alike. Every password is fresh and every unknown address
//! has the registered one's length, so the requests differ only in whether
//! the address exists. The two latency samples are compared by their
//! medians and by a two-sample Kolmogorov–Smirnov test, which gives the
//! verdict; the pairs' sign test is printed beside it. Every answer must be
//! 401, and the bodies byte-identical.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde_json::json;
use tessera_latency_stats::{KsTest, SignTest, ks, mean, median, percentile, sorted};
use tessera_test_support::{PER_ANSWER_HEADERS, header_signature};

use super::Target;
use super::account::{self, Account};
use crate::load::RequestSpec;
use crate::report::row;

/// The significance level of the verdict.
const ALPHA: f64 = 0.01;
/// Unmeasured pairs first: the connection opened, the hashing threads'
/// memory touched, the database's pages cached.
const WARMUP_PAIRS: u32 = 10;

pub async fn run(target: &Target, samples: u32) -> Result<()> {
    let account = account::register_fresh(target).await?;
    let url = target.url("/v1/auth/login")?;
    let login = Logins {
        target,
        url: &url,
        account: &account,
    };
    // One of each first: a throttled or broken server fails here, with the
    // reason.
    let reference = login.send(Group::WrongPassword).await?;
    reference.expect_401(Group::WrongPassword)?;
    let mut answers = SameAnswer::new(&reference);
    for pair in 0..WARMUP_PAIRS {
        for group in order(pair) {
            let answer = login.send(group).await?;
            answer.expect_401(group)?;
            answers.check(group, &answer);
        }
    }
    let mut wrong = Vec::with_capacity(samples as usize);
    let mut unknown = Vec::with_capacity(samples as usize);
    let started = Instant::now();
    for pair in 0..samples {
        for group in order(pair) {
            let answer = login.send(group).await?;
            answer.expect_401(group)?;
            answers.check(group, &answer);
            let latency = u32::try_from(answer.latency.as_micros()).unwrap_or(u32::MAX);
            match group {
                Group::WrongPassword => wrong.push(latency),
                Group::UnknownEmail => unknown.push(latency),
            }
        }
    }
    let elapsed = started.elapsed();

    println!(
        "== timing: POST /v1/auth/login, wrong password vs unknown email — {samples} of each, \
         interleaved, one at a time, {:.1} s measured",
        elapsed.as_secs_f64()
    );
    let Some(comparison) = Comparison::of(&wrong, &unknown) else {
        bail!("timing: no samples");
    };
    comparison.print();
    answers.print(2 * (WARMUP_PAIRS + samples) + 1);
    Ok(())
}

/// The two kinds of failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// The registered account's address, a wrong password.
    WrongPassword,
    /// An address no account has.
    UnknownEmail,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Group::WrongPassword => "wrong password",
            Group::UnknownEmail => "unknown email",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The order within pair `pair`: alternately one kind first, then the
/// other, so neither always follows the other.
fn order(pair: u32) -> [Group; 2] {
    if pair.is_multiple_of(2) {
        [Group::WrongPassword, Group::UnknownEmail]
    } else {
        [Group::UnknownEmail, Group::WrongPassword]
    }
}

/// Sends the failed logins.
struct Logins<'a> {
    target: &'a Target,
    url: &'a Url,
    account: &'a Account,
}

/// One answer and how long it took, from sending the request to the last
/// byte of the body.
struct Probe {
    latency: Duration,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Logins<'_> {
    async fn send(&self, group: Group) -> Result<Probe> {
        let email = match group {
            Group::WrongPassword => self.account.email.clone(),
            Group::UnknownEmail => account::random_email(),
        };
        let credentials = json!({ "email": email, "password": account::random_password() });
        // Built before the clock starts.
        let request = RequestSpec::post_json(self.url.clone(), &credentials)
            .build(self.target.client())
            .build()?;
        let started = Instant::now();
        let mut response = self.target.client().execute(request).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = response.bytes().await?;
        let latency = started.elapsed();
        Ok(Probe {
            latency,
            status,
            headers,
            body: body.to_vec(),
        })
    }
}

impl Probe {
    /// Anything but 401 voids the comparison: a throttled (429) or busy
    /// (503) answer comes back without an argon2 verification.
    fn expect_401(&self, group: Group) -> Result<()> {
        if self.status == StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        let hint = if self.status == StatusCode::TOO_MANY_REQUESTS {
            " (is the server throttling logins? start it with TESSERA__THROTTLE__ENABLED=false)"
        } else {
            ""
        };
        bail!(
            "timing: a login with a {} answered {}{hint}: {}",
            group.name(),
            self.status,
            String::from_utf8_lossy(&self.body)
                .chars()
                .take(300)
                .collect::<String>()
        )
    }
}

/// Every answer compared with the first: an unknown address must not be
/// told apart by its answer's body or headers either.
struct SameAnswer {
    body: Vec<u8>,
    headers: String,
    /// Per group: answers whose body differs from the first.
    bodies_differing: [u32; 2],
    /// Per group: answers whose headers (but for the date and request id)
    /// differ from the first's.
    headers_differing: [u32; 2],
    first_difference: Option<String>,
}

impl SameAnswer {
    fn new(reference: &Probe) -> SameAnswer {
        SameAnswer {
            body: reference.body.clone(),
            headers: header_signature(&reference.headers),
            bodies_differing: [0; 2],
            headers_differing: [0; 2],
            first_difference: None,
        }
    }

    fn check(&mut self, group: Group, answer: &Probe) {
        if answer.body != self.body {
            self.bodies_differing[group.index()] += 1;
            self.first_difference.get_or_insert_with(|| {
                format!(
                    "{} body: {}",
                    group.name(),
                    String::from_utf8_lossy(&answer.body)
                )
            });
        }
        let headers = header_signature(&answer.headers);
        if headers != self.headers {
            self.headers_differing[group.index()] += 1;
            self.first_difference
                .get_or_insert_with(|| format!("{} headers: {headers:?}", group.name()));
        }
    }

    fn is_identical(&self) -> bool {
        self.bodies_differing == [0, 0] && self.headers_differing == [0, 0]
    }

    /// `answers`: how many were compared, warm-up included.
    fn print(&self, answers: u32) {
        let body = String::from_utf8_lossy(&self.body);
        if self.is_identical() {
            row(
                "answers",
                format!(
                    "all {answers} HTTP 401 with one byte-identical body ({} bytes): {body}",
                    self.body.len()
                ),
            );
            row(
                "headers",
                format!(
                    "identical but for {} in all {answers}",
                    PER_ANSWER_HEADERS.join(" and ")
                ),
            );
            return;
        }
        row(
            "answers",
            format!(
                "all {answers} HTTP 401, but NOT identical: bodies differing from the first \
                 (wrong password's): {} wrong password, {} unknown email; headers \
                 differing: {} wrong password, {} unknown email",
                self.bodies_differing[0],
                self.bodies_differing[1],
                self.headers_differing[0],
                self.headers_differing[1]
            ),
        );
        row("first answer", format!("{body} / {:?}", self.headers));
        if let Some(first) = &self.first_difference {
            row("first differing", first.clone());
        }
    }
}

/// One sample's figures, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    /// The middle value, or the mean of the two middle ones.
    median_us: f64,
    /// Nearest-rank, as the load scenarios' percentiles.
    p10_us: u32,
    p90_us: u32,
    mean_us: f64,
}

impl Summary {
    fn of(latencies_us: &[u32]) -> Option<Summary> {
        let sorted = sorted(latencies_us);
        Some(Summary {
            median_us: median(&sorted)?,
            p10_us: percentile(&sorted, 10.0)?,
            p90_us: percentile(&sorted, 90.0)?,
            mean_us: mean(&sorted)?,
        })
    }

    fn line(&self) -> String {
        format!(
            "median {}  p10 {}  p90 {}  mean {}",
            millis(self.median_us),
            millis(f64::from(self.p10_us)),
            millis(f64::from(self.p90_us)),
            millis(self.mean_us)
        )
    }
}

/// The two samples side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Comparison {
    wrong: Summary,
    unknown: Summary,
    n_wrong: usize,
    n_unknown: usize,
    ks: KsTest,
    /// The pairs' sign test: wrong[i] and unknown[i] were measured one
    /// after the other.
    sign: SignTest,
    /// The smallest constant shift this test tells apart (see
    /// [`ks::detectable_shift`]).
    detectable_shift_us: Option<u32>,
}

impl Comparison {
    fn of(wrong: &[u32], unknown: &[u32]) -> Option<Comparison> {
        Some(Comparison {
            wrong: Summary::of(wrong)?,
            unknown: Summary::of(unknown)?,
            n_wrong: wrong.len(),
            n_unknown: unknown.len(),
            ks: KsTest::two_sample(wrong, unknown)?,
            sign: SignTest::paired(wrong, unknown)?,
            detectable_shift_us: ks::detectable_shift(wrong, ALPHA),
        })
    }

    /// Unknown email's median minus wrong password's, in microseconds.
    fn median_difference_us(&self) -> f64 {
        self.unknown.median_us - self.wrong.median_us
    }

    /// The same, in percent of the wrong password's median.
    fn median_difference_percent(&self) -> f64 {
        100.0 * self.median_difference_us() / self.wrong.median_us
    }

    fn indistinguishable(&self) -> bool {
        self.ks.p_value >= ALPHA
    }

    fn verdict(&self) -> String {
        if self.indistinguishable() {
            format!("indistinguishable at α = {ALPHA}")
        } else {
            format!(
                "DISTINGUISHABLE at α = {ALPHA}: the latencies tell unknown addresses from \
                 known ones"
            )
        }
    }

    fn print(&self) {
        row(Group::WrongPassword.name(), self.wrong.line());
        row(Group::UnknownEmail.name(), self.unknown.line());
        row(
            "Δ median",
            format!(
                "unknown − wrong = {:+.0} µs ({:+.2} % of the wrong-password median)",
                self.median_difference_us(),
                self.median_difference_percent()
            ),
        );
        row(
            "Kolmogorov–Smirnov",
            format!(
                "D = {:.4}, p ≈ {:.3} (n = {}, m = {}; p < {ALPHA} needs D > {:.4})",
                self.ks.d,
                self.ks.p_value,
                self.n_wrong,
                self.n_unknown,
                ks::critical_d(ALPHA, self.n_wrong, self.n_unknown)
            ),
        );
        row(
            "sign test",
            format!(
                "wrong password the slower in {} pairs, unknown email in {} ({} ties): \
                 p ≈ {:.3} (paired, exact)",
                self.sign.first_larger, self.sign.second_larger, self.sign.ties, self.sign.p_value
            ),
        );
        row(
            "resolution",
            match self.detectable_shift_us {
                Some(us) => format!(
                    "a constant difference of {us} µs or more would have been flagged \
                     (the wrong-password sample against itself moved by that much)"
                ),
                None => "too few samples to flag any difference".to_owned(),
            },
        );
        row("verdict", self.verdict());
    }
}

fn millis(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn probe(body: &[u8], request_id: &str) -> Probe {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "date",
            HeaderValue::from_static("Mon, 23 Nov 2026 10:00:00 GMT"),
        );
        headers.insert("x-request-id", HeaderValue::from_str(request_id).unwrap());
        Probe {
            latency: Duration::from_millis(20),
            status: StatusCode::UNAUTHORIZED,
            headers,
            body: body.to_vec(),
        }
    }

    #[test]
    fn pairs_alternate_which_kind_goes_first() {
        use Group::*;
        assert_eq!(order(0), [WrongPassword, UnknownEmail]);
        assert_eq!(order(1), [UnknownEmail, WrongPassword]);
        assert_eq!(order(2), order(0));
    }

    #[test]
    fn summary_of_odd_and_even_samples() {
        let odd = Summary::of(&[30, 10, 20, 50, 40]).unwrap();
        assert_eq!(odd.median_us, 30.0);
        assert_eq!(odd.mean_us, 30.0);
        assert_eq!((odd.p10_us, odd.p90_us), (10, 50));
        let even = Summary::of(&(1..=10).rev().collect::<Vec<u32>>()).unwrap();
        assert_eq!(even.median_us, 5.5);
        assert_eq!((even.p10_us, even.p90_us), (1, 9));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn comparison_reports_the_difference_of_medians() {
        let wrong = [20_000, 20_100, 20_200];
        let unknown = [20_050, 20_150, 20_250];
        let comparison = Comparison::of(&wrong, &unknown).unwrap();
        assert_eq!(comparison.median_difference_us(), 50.0);
        assert!((comparison.median_difference_percent() - 0.2488).abs() < 1e-3);
        assert!((comparison.ks.d - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn verdict_follows_the_p_value() {
        let same: Vec<u32> = (0..300).map(|i| 20_000 + i * 7 % 500).collect();
        let comparison = Comparison::of(&same, &same).unwrap();
        assert!(comparison.indistinguishable());
        assert_eq!(comparison.verdict(), "indistinguishable at α = 0.01");

        // Unknown addresses 300 µs faster: a leak.
        let faster: Vec<u32> = same.iter().map(|v| v - 300).collect();
        let comparison = Comparison::of(&same, &faster).unwrap();
        assert!(!comparison.indistinguishable());
        assert!(comparison.verdict().starts_with("DISTINGUISHABLE"));
    }

    #[test]
    fn answers_must_match_but_for_date_and_request_id() {
        let body = br#"{"code":"invalid_credentials"}"#;
        let mut answers = SameAnswer::new(&probe(body, "a"));
        answers.check(Group::UnknownEmail, &probe(body, "b"));
        assert!(answers.is_identical());

        answers.check(Group::UnknownEmail, &probe(br#"{"code":"other"}"#, "c"));
        let mut extra = probe(body, "d");
        extra
            .headers
            .insert("retry-after", HeaderValue::from_static("1"));
        answers.check(Group::WrongPassword, &extra);
        assert!(!answers.is_identical());
        assert_eq!(answers.bodies_differing, [0, 1]);
        assert_eq!(answers.headers_differing, [1, 0]);
        assert_eq!(
            answers.first_difference.as_deref(),
            Some(r#"unknown email body: {"code":"other"}"#)
        );
    }

    #[test]
    fn header_signature_leaves_out_per_answer_headers() {
        let signature = header_signature(&probe(b"", "x").headers);
        assert_eq!(signature, "content-type: application/json");
    }

    #[test]
    fn anything_but_401_voids_the_run() {
        let mut throttled = probe(b"{}", "a");
        throttled.status = StatusCode::TOO_MANY_REQUESTS;
        let error = throttled
            .expect_401(Group::WrongPassword)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("TESSERA__THROTTLE__ENABLED=false"),
            "{error}"
        );
        assert!(probe(b"{}", "b").expect_401(Group::UnknownEmail).is_ok());
    }
}

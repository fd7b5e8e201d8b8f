//! The scenarios, and what the HTTP ones share: the target server and how a
//! load run is measured.

mod account;
pub mod client_credentials;
pub mod introspect;
pub mod jwks;
pub mod login;
pub mod me;
pub mod password_reset;
pub mod refresh;
pub mod register;
pub mod sign;
pub mod sso;
pub mod timing;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::{Client, Url};

use crate::cli::Args;
use crate::load::{self, Exchange, RequestSpec};
use crate::proc_stats::{self, Process, ProcessSample};
use crate::report::{HttpResult, ServerUsage};

/// The server under test and the shape of every load run against it.
pub struct Target {
    client: Client,
    base_url: Url,
    concurrency: u32,
    duration: Duration,
    warmup: Duration,
    server_pid: Option<u32>,
    database_pid: Option<u32>,
}

impl Target {
    pub fn new(args: &Args) -> Result<Target> {
        let client = Client::builder()
            // Every task keeps its connection between requests.
            .pool_max_idle_per_host(args.concurrency as usize)
            // Bounds a request in flight at the deadline.
            .timeout(Duration::from_secs(30))
            // A redirect is an answer to measure, not to follow: load goes
            // to --url and nowhere else (`sso` reads the code from it).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Target {
            client,
            base_url: args.url.clone(),
            concurrency: args.concurrency,
            duration: Duration::from_secs(args.duration),
            warmup: Duration::from_secs(args.warmup),
            server_pid: args.server_pid,
            database_pid: args.database_pid,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self, path: &str) -> Result<Url> {
        self.base_url
            .join(path)
            .with_context(|| format!("cannot join {path} to {}", self.base_url))
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.server_pid
    }

    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Fails early, with the reason, when nothing answers at the URL.
    pub async fn check_server_is_up(&self) -> Result<()> {
        let url = self.url("/healthz")?;
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {}", load::error_chain(&e)))?;
        if !response.status().is_success() {
            bail!("{url} answered {}", response.status());
        }
        Ok(())
    }

    /// Sends `spec` once and returns its JSON answer; anything but 200 fails
    /// set-up with the status and body, rather than as thousands of errors.
    pub async fn expect_ok_json(&self, spec: &RequestSpec) -> Result<serde_json::Value> {
        let response = spec.build(&self.client).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if status != reqwest::StatusCode::OK {
            bail!(
                "set-up: {} {} answered {status}: {body}",
                spec.method,
                spec.url.path()
            );
        }
        serde_json::from_str(&body)
            .with_context(|| format!("set-up: {} answered with no JSON: {body}", spec.url.path()))
    }

    /// Runs one iteration of `exchange` before the load, so a broken
    /// contract fails set-up with the reason rather than as thousands of
    /// errors.
    pub async fn expect_iteration<E: Exchange>(&self, exchange: &mut E) -> Result<()> {
        load::iterate_once(&self.client, exchange)
            .await
            .map_err(|detail| anyhow::anyhow!("set-up: {}: {detail}", exchange.describe()))
    }

    /// Warms up, then runs `spec` on every task for the measured duration.
    pub async fn measure(&self, scenario: &'static str, spec: &RequestSpec) -> Result<HttpResult> {
        let exchanges = vec![spec.clone(); self.concurrency as usize];
        Ok(self.measure_exchanges(scenario, exchanges).await?.0)
    }

    /// Warms up, then runs one task per exchange for the measured duration,
    /// reading the server's and the bench's counters just around the
    /// measured run. The exchanges come back as the run left them.
    pub async fn measure_exchanges<E: Exchange>(
        &self,
        scenario: &'static str,
        exchanges: Vec<E>,
    ) -> Result<(HttpResult, Vec<E>)> {
        let (request, iteration) = match exchanges.first() {
            Some(first) => (first.describe(), first.iteration_noun()),
            None => bail!("{scenario}: no client task to run"),
        };
        let concurrency = exchanges.len() as u32;
        let mut exchanges = exchanges;
        if !self.warmup.is_zero() {
            exchanges = load::run(&self.client, exchanges, self.warmup).await.1;
        }
        let server_before = self.sample_server()?;
        let database_before = self.sample_database()?;
        let bench_before = proc_stats::sample(Process::Myself)?;
        let (outcome, exchanges) = load::run(&self.client, exchanges, self.duration).await;
        let bench_after = proc_stats::sample(Process::Myself)?;
        let database_after = self.sample_database()?;
        let server_after = self.sample_server()?;
        let database_cpu_seconds = database_before
            .zip(database_after)
            .map(|(before, after)| proc_stats::cpu_seconds_between(&before, &after));
        let server = server_before
            .zip(server_after)
            .map(|(before, after)| ServerUsage {
                cpu_seconds: after.cpu_seconds() - before.cpu_seconds(),
                system_seconds: after.system_seconds - before.system_seconds,
                rss_before_kib: before.rss_kib,
                peak_rss_kib: after.peak_rss_kib,
                database_cpu_seconds,
            });
        let result = HttpResult {
            scenario,
            request,
            iteration,
            concurrency,
            outcome,
            server,
            bench_cpu_seconds: bench_after.cpu_seconds() - bench_before.cpu_seconds(),
        };
        Ok((result, exchanges))
    }

    /// CPU seconds so far of the database server's processes, by PID.
    fn sample_database(&self) -> Result<Option<proc_stats::TreeCpu>> {
        self.database_pid.map(proc_stats::tree_cpu).transpose()
    }

    pub fn sample_server(&self) -> Result<Option<ProcessSample>> {
        self.server_pid
            .map(|pid| proc_stats::sample(Process::Pid(pid)))
            .transpose()
    }
}

/// Refuses any target but this machine: load is only ever sent to loopback.
pub fn ensure_loopback(url: &Url) -> Result<()> {
    if url.scheme() != "http" {
        bail!("--url must be plain http:// (the bench has no TLS): {url}");
    }
    let host = url.host_str().unwrap_or_default();
    // IPv6 hosts come bracketed: "[::1]".
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    if !loopback {
        bail!("--url must be a loopback address (127.0.0.0/8, [::1] or localhost): {url}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3/",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(ensure_loopback(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1",
            "http://example.com",
            "https://127.0.0.1",
            "http://[::2]",
        ] {
            assert!(
                ensure_loopback(&refused.parse().unwrap()).is_err(),
                "{refused}"
            );
        }
    }
}

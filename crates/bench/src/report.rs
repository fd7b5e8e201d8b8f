//! Figures from a run, and how they are printed.

use tessera_latency_stats::percentile;

use crate::load::LoadOutcome;

/// Latency percentiles of successful requests, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub p50_us: u32,
    pub p90_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
}

impl LatencySummary {
    pub fn from_micros(mut latencies_us: Vec<u32>) -> Option<LatencySummary> {
        latencies_us.sort_unstable();
        Some(LatencySummary {
            p50_us: percentile(&latencies_us, 50.0)?,
            p90_us: percentile(&latencies_us, 90.0)?,
            p99_us: percentile(&latencies_us, 99.0)?,
            max_us: *latencies_us.last()?,
        })
    }
}

/// The server's resources over a measured run.
#[derive(Debug, Clone, Copy)]
pub struct ServerUsage {
    pub cpu_seconds: f64,
    /// The kernel's share of `cpu_seconds` (page faults, system calls).
    pub system_seconds: f64,
    pub rss_before_kib: u64,
    /// VmHWM after the run: the peak since the server started, so it covers
    /// every earlier scenario too.
    pub peak_rss_kib: u64,
    /// CPU of the database server's processes over the same run, when its
    /// PID was given (PostgreSQL; SQLite runs inside the server).
    pub database_cpu_seconds: Option<f64>,
}

/// One HTTP scenario's measured run.
#[derive(Debug)]
pub struct HttpResult {
    pub scenario: &'static str,
    /// The request(s) of one iteration.
    pub request: String,
    /// What one iteration is called when it is several requests
    /// ("sign-in"); `None`: one request, and the figures are per request.
    pub iteration: Option<&'static str>,
    pub concurrency: u32,
    pub outcome: LoadOutcome,
    pub server: Option<ServerUsage>,
    /// CPU the load generator itself used: on a shared machine it competes
    /// with the server.
    pub bench_cpu_seconds: f64,
}

impl HttpResult {
    /// Successful iterations (requests, unless an iteration is several).
    pub fn ok_count(&self) -> u64 {
        self.outcome.ok_latencies_us.len() as u64
    }

    pub fn ok_per_second(&self) -> f64 {
        self.ok_count() as f64 / self.outcome.elapsed.as_secs_f64()
    }

    /// Successful requests per second of server CPU time.
    pub fn ok_per_server_cpu_second(&self) -> Option<f64> {
        let cpu = self.server?.cpu_seconds;
        (cpu > 0.0).then(|| self.ok_count() as f64 / cpu)
    }

    /// Successful requests per CPU-second of the server and its database
    /// together.
    pub fn ok_per_server_and_database_cpu_second(&self) -> Option<f64> {
        let server = self.server?;
        let cpu = server.cpu_seconds + server.database_cpu_seconds?;
        (cpu > 0.0).then(|| self.ok_count() as f64 / cpu)
    }

    pub fn print(&self) {
        let outcome = &self.outcome;
        // Counted per request, or per iteration of several requests:
        // "requests" and "req/s", or "sign-ins" and "sign-ins/s".
        let (counted, per) = match self.iteration {
            None => ("requests".to_owned(), "req".to_owned()),
            Some(noun) => (format!("{noun}s"), format!("{noun}s")),
        };
        println!(
            "== {}: {} — {} concurrent, {:.1} s measured",
            self.scenario,
            self.request,
            self.concurrency,
            outcome.elapsed.as_secs_f64()
        );
        let mut counts = format!(
            "{} ({} ok, {} errors)",
            outcome.iteration_count(),
            self.ok_count(),
            outcome.error_count()
        );
        let mut throughput = format!("{:.1} {per}/s", self.ok_per_second());
        if self.iteration.is_some() {
            counts.push_str(&format!(", {} HTTP requests", outcome.http_requests));
            throughput.push_str(&format!(
                " ({:.1} HTTP req/s)",
                outcome.http_requests as f64 / outcome.elapsed.as_secs_f64()
            ));
        } else {
            throughput.push_str(" (2xx)");
        }
        row(&counted, counts);
        row("throughput", throughput);
        let latency_label = match self.iteration {
            None => "latency (2xx)".to_owned(),
            Some(noun) => format!("latency/{noun}"),
        };
        row(&latency_label, latency_line(&outcome.ok_latencies_us));
        for step in &outcome.steps {
            row(
                "  of which",
                format!("{}: {}", step.request, latency_line(&step.ok_latencies_us)),
            );
        }
        if let Some(server) = self.server {
            let per_cpu = self
                .ok_per_server_cpu_second()
                .map_or("n/a".to_owned(), |r| format!("{r:.1}"));
            row(
                "server CPU",
                format!(
                    "{:.2} s ({:.2} s of it system) → {per_cpu} {per} per server CPU-second",
                    server.cpu_seconds, server.system_seconds
                ),
            );
            if let Some(noun) = self.iteration
                && self.ok_count() > 0
            {
                row(
                    "server CPU/each",
                    format!(
                        "{:.2} ms per {noun}",
                        server.cpu_seconds * 1000.0 / self.ok_count() as f64
                    ),
                );
            }
            if let (Some(database), Some(rate)) = (
                server.database_cpu_seconds,
                self.ok_per_server_and_database_cpu_second(),
            ) {
                row(
                    "database CPU",
                    format!("{database:.2} s → {rate:.1} {per} per (server + database) CPU-second"),
                );
            }
            row(
                "server RSS",
                format!(
                    "{} before, {} peak (VmHWM since start)",
                    mebibytes(server.rss_before_kib),
                    mebibytes(server.peak_rss_kib)
                ),
            );
        }
        row("bench CPU", format!("{:.2} s", self.bench_cpu_seconds));
        if !outcome.errors.is_empty() {
            row(
                "errors by kind",
                errors_by_kind(outcome, self.iteration.unwrap_or("request")),
            );
            row("slowest error", millis(outcome.slowest_error_us));
        }
        if let Some(first) = &outcome.first_error {
            row("first error", first.clone());
        }
    }
}

/// "HTTP 503 server_busy: 120 (4.1 % of requests), transport: 1 (0.0 %)".
fn errors_by_kind(outcome: &LoadOutcome, noun: &str) -> String {
    let total = outcome.iteration_count().max(1) as f64;
    let kinds: Vec<String> = outcome
        .errors
        .iter()
        .enumerate()
        .map(|(i, (kind, count))| {
            let share = 100.0 * *count as f64 / total;
            if i == 0 {
                format!("{kind}: {count} ({share:.1} % of {noun}s)")
            } else {
                format!("{kind}: {count} ({share:.1} %)")
            }
        })
        .collect();
    kinds.join(", ")
}

/// "p50 …  p90 …  p99 …  max …" of successful latencies.
fn latency_line(latencies_us: &[u32]) -> String {
    match LatencySummary::from_micros(latencies_us.to_vec()) {
        Some(l) => format!(
            "p50 {}  p90 {}  p99 {}  max {}",
            millis(l.p50_us),
            millis(l.p90_us),
            millis(l.p99_us),
            millis(l.max_us)
        ),
        None => "no successful request".to_owned(),
    }
}

/// One `label  value` line, aligned.
pub fn row(label: &str, value: String) {
    println!("  {label:<16} {value}");
}

pub fn millis(us: u32) -> String {
    format!("{:.2} ms", f64::from(us) / 1000.0)
}

pub fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_shares_of_all_iterations() {
        let outcome = LoadOutcome {
            ok_latencies_us: vec![1_000; 195],
            errors: [
                ("HTTP 503 server_busy".to_owned(), 4),
                ("transport".to_owned(), 1),
            ]
            .into(),
            ..LoadOutcome::default()
        };
        assert_eq!(
            errors_by_kind(&outcome, "request"),
            "HTTP 503 server_busy: 4 (2.0 % of requests), transport: 1 (0.5 %)"
        );
    }

    #[test]
    fn summary_sorts_its_input() {
        let summary = LatencySummary::from_micros(vec![30, 10, 20, 40]).unwrap();
        assert_eq!(
            summary,
            LatencySummary {
                p50_us: 20,
                p90_us: 40,
                p99_us: 40,
                max_us: 40
            }
        );
        assert_eq!(LatencySummary::from_micros(Vec::new()), None);
    }
}

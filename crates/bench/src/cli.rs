//! Command-line options.

use clap::{Parser, ValueEnum};

/// Drives a running Tessera server over HTTP (loopback only) and reports
/// throughput, latency, and — given its PID — the server's CPU time and
/// memory; the `sign` scenario is an in-process micro-benchmark.
#[derive(Debug, Parser)]
#[command(name = "tessera-bench", version)]
pub struct Args {
    /// Base URL of the server; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: reqwest::Url,

    /// Requests in flight at once (concurrent client tasks).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,

    /// Measured seconds per HTTP scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,

    /// Unmeasured seconds of load before each HTTP scenario (connections
    /// opened, caches and allocator warm).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,

    /// The server's process id: adds its CPU time per request and its
    /// memory (read from /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Scenarios to run, in order, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "login,me,jwks,sign")]
    pub scenario: Vec<Scenario>,

    /// argon2id memory in KiB for the argon2 bound; match the server's
    /// `passwords.memory_kib`.
    #[arg(long, default_value_t = 19456)]
    pub argon2_m: u32,

    /// argon2id iterations (`passwords.iterations`).
    #[arg(long, default_value_t = 2)]
    pub argon2_t: u32,

    /// argon2id lanes (`passwords.parallelism`).
    #[arg(long, default_value_t = 1)]
    pub argon2_p: u32,

    /// Signatures timed per signer in the `sign` scenario.
    #[arg(long, default_value_t = 300)]
    pub sign_iterations: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// POST /v1/auth/login with one registered account.
    Login,
    /// GET /v1/me with a bearer token.
    Me,
    /// GET /.well-known/jwks.json.
    Jwks,
    /// In-process: Tessera's parse-once signer vs jsonwebtoken::encode.
    Sign,
}

impl Scenario {
    pub fn needs_server(self) -> bool {
        self != Scenario::Sign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_list_is_comma_separated() {
        let args = Args::parse_from(["tessera-bench", "--scenario", "jwks,sign"]);
        assert_eq!(args.scenario, [Scenario::Jwks, Scenario::Sign]);
        let all = Args::parse_from(["tessera-bench"]);
        assert_eq!(all.scenario.len(), 4);
    }
}

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

    /// The PostgreSQL server's PID (the postmaster, e.g. from
    /// `postmaster.pid`): adds the CPU time of it and its backends, which do
    /// the database's share of each request outside the server's process.
    #[arg(long, value_name = "PID")]
    pub database_pid: Option<u32>,

    /// A confidential client allowed `client_credentials`, for the
    /// `client_credentials` and `introspect` scenarios (create it with
    /// `tessera clients create`).
    #[arg(long, env = "TESSERA_BENCH_CLIENT_ID")]
    pub client_id: Option<String>,

    /// That client's secret.
    #[arg(long, env = "TESSERA_BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// A public, first-party client allowed `authorization_code`, for the
    /// `sso` scenario (create it with `tessera clients create ... --public
    /// --first-party`).
    #[arg(long, env = "TESSERA_BENCH_SSO_CLIENT_ID")]
    pub sso_client_id: Option<String>,

    /// One of that client's redirect URIs, exactly as registered.
    #[arg(long, env = "TESSERA_BENCH_SSO_REDIRECT_URI")]
    pub sso_redirect_uri: Option<String>,

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

    /// Logins of each kind in the `timing` scenario (wrong password,
    /// unknown address), sent one at a time, interleaved.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(2..))]
    pub timing_samples: u32,

    /// Signatures timed per signer in the `sign` scenario; for the signing
    /// bound of `client_credentials`, signatures timed before the load and
    /// again after it.
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
    /// POST /oauth2/token grant_type=refresh_token: one rotating refresh
    /// chain per concurrent task.
    Refresh,
    /// POST /oauth2/token grant_type=client_credentials, against the RS256
    /// signing bound; needs --client-id and --client-secret.
    #[value(name = "client_credentials", alias = "client-credentials")]
    ClientCredentials,
    /// POST /oauth2/introspect of a user's access token; needs --client-id
    /// and --client-secret.
    Introspect,
    /// One single sign-on of a browser that holds an SSO session: GET
    /// /oauth2/authorize (303 with a code, not followed) then POST
    /// /oauth2/token grant_type=authorization_code with PKCE; one session
    /// per concurrent task. Needs --sso-client-id and --sso-redirect-uri.
    Sso,
    /// POST /v1/auth/login, one at a time: wrong-password logins for one
    /// account interleaved with logins for unknown addresses, their
    /// latencies compared (medians, Kolmogorov–Smirnov). Ignores
    /// --concurrency, --duration and --warmup; see --timing-samples.
    Timing,
    /// POST /v1/auth/password-reset for one account (202): the user read
    /// and the outbox write; the server needs email.smtp_url.
    #[value(name = "password-reset", alias = "password_reset")]
    PasswordReset,
    /// POST /v1/auth/register of one address again (202, a taken address
    /// costing what a new one does) against the argon2 bound; the server
    /// needs accounts.require_verified_email and email.smtp_url.
    Register,
    /// In-process: Tessera's parse-once signer vs jsonwebtoken::encode.
    Sign,
}

impl Scenario {
    pub fn needs_server(self) -> bool {
        self != Scenario::Sign
    }

    /// A closed-loop load run, shaped by --concurrency, --duration and
    /// --warmup.
    pub fn is_load(self) -> bool {
        self.needs_server() && self != Scenario::Timing
    }

    pub fn needs_client(self) -> bool {
        matches!(self, Scenario::ClientCredentials | Scenario::Introspect)
    }
}

/// A public, first-party client for the `sso` scenario.
#[derive(Debug, Clone)]
pub struct SsoClient {
    pub client_id: String,
    pub redirect_uri: String,
}

/// A confidential client's id and secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

impl Args {
    /// The client credentials, if any scenario to run needs them.
    pub fn client_credentials(&self) -> Result<Option<ClientCredentials>, String> {
        if !self.scenario.iter().any(|s| s.needs_client()) {
            return Ok(None);
        }
        match (&self.client_id, &self.client_secret) {
            (Some(id), Some(secret)) => Ok(Some(ClientCredentials {
                id: id.clone(),
                secret: secret.clone(),
            })),
            _ => Err(
                "the client_credentials and introspect scenarios need --client-id and \
                 --client-secret of a confidential client allowed client_credentials \
                 (tessera clients create --name bench --grant client_credentials ...)"
                    .to_owned(),
            ),
        }
    }

    /// The `sso` scenario's client, if it is to run.
    pub fn sso_client(&self) -> Result<Option<SsoClient>, String> {
        if !self.scenario.contains(&Scenario::Sso) {
            return Ok(None);
        }
        match (&self.sso_client_id, &self.sso_redirect_uri) {
            (Some(client_id), Some(redirect_uri)) => Ok(Some(SsoClient {
                client_id: client_id.clone(),
                redirect_uri: redirect_uri.clone(),
            })),
            _ => Err(
                "the sso scenario needs --sso-client-id and --sso-redirect-uri of a public, \
                 first-party client allowed authorization_code with the openid, email and \
                 profile scopes (tessera clients create --name bench-sso --grant \
                 authorization_code --scope openid --scope email --scope profile \
                 --redirect-uri com.example.bench:/cb --public --first-party)"
                    .to_owned(),
            ),
        }
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
        let oauth = Args::parse_from([
            "tessera-bench",
            "--scenario",
            "refresh,client_credentials,client-credentials,introspect,sso,timing",
        ]);
        assert_eq!(
            oauth.scenario,
            [
                Scenario::Refresh,
                Scenario::ClientCredentials,
                Scenario::ClientCredentials,
                Scenario::Introspect,
                Scenario::Sso,
                Scenario::Timing
            ]
        );
        assert!(Scenario::Timing.needs_server() && !Scenario::Timing.is_load());
        assert!(Scenario::Login.is_load() && !Scenario::Sign.is_load());
    }

    #[test]
    fn timing_samples_default_to_300() {
        let args = Args::parse_from(["tessera-bench", "--scenario", "timing"]);
        assert_eq!(args.timing_samples, 300);
        let args = Args::parse_from(["tessera-bench", "--timing-samples", "50"]);
        assert_eq!(args.timing_samples, 50);
        assert!(Args::try_parse_from(["tessera-bench", "--timing-samples", "1"]).is_err());
    }

    #[test]
    fn client_scenarios_need_both_credentials() {
        let no_secret = Args::parse_from([
            "tessera-bench",
            "--scenario",
            "introspect",
            "--client-id",
            "x",
        ]);
        assert!(no_secret.client_credentials().is_err());
        let both = Args::parse_from([
            "tessera-bench",
            "--scenario",
            "client_credentials",
            "--client-id",
            "x",
            "--client-secret",
            "y",
        ]);
        let credentials = both.client_credentials().unwrap().unwrap();
        assert_eq!(
            (credentials.id.as_str(), credentials.secret.as_str()),
            ("x", "y")
        );
        let not_needed = Args::parse_from(["tessera-bench", "--scenario", "jwks"]);
        assert!(not_needed.client_credentials().unwrap().is_none());
    }

    #[test]
    fn sso_needs_its_client_and_redirect_uri() {
        let missing =
            Args::parse_from(["tessera-bench", "--scenario", "sso", "--sso-client-id", "x"]);
        let error = missing.sso_client().unwrap_err();
        assert!(error.contains("--sso-redirect-uri"), "{error}");
        assert!(error.contains("--public --first-party"), "{error}");
        let both = Args::parse_from([
            "tessera-bench",
            "--scenario",
            "me,sso",
            "--sso-client-id",
            "x",
            "--sso-redirect-uri",
            "com.example.bench:/cb",
        ]);
        let client = both.sso_client().unwrap().unwrap();
        assert_eq!(
            (client.client_id.as_str(), client.redirect_uri.as_str()),
            ("x", "com.example.bench:/cb")
        );
        let not_needed = Args::parse_from(["tessera-bench", "--scenario", "refresh"]);
        assert!(not_needed.sso_client().unwrap().is_none());
    }
}

//! The signing bound: every token Tessera issues costs one RS256 signature
//! (2048-bit key), so 1 ÷ (time of one signature) is the most tokens one
//! CPU-second can issue. Timed here, in the bench process, with Tessera's own
//! signer (`SigningKey::sign_jws`, the private key parsed once).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, Header};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;
use tessera::keys::SigningKey;

use crate::report::row;

/// Untimed signatures first (caches, lazy initialisation).
const WARMUP_SIGNATURES: u32 = 20;
/// Timed batches per measurement; the median batch's time per call counts,
/// so a moment of contention on a shared core does not.
pub const ROUNDS: u32 = 10;

/// A fresh 2048-bit key and a token like the ones Tessera issues.
pub struct SigningFixture {
    pub signing_key: SigningKey,
    /// The same key as PKCS#8 PEM, for signers that parse it themselves.
    pub pem: String,
    pub header: Header,
    pub claims: serde_json::Value,
}

impl SigningFixture {
    pub fn new() -> Result<SigningFixture> {
        let private_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .context("RSA key generation failed")?;
        let pem = private_key
            .to_pkcs8_pem(LineEnding::LF)
            .context("cannot encode the key as PKCS#8 PEM")?
            .to_string();
        let signing_key =
            SigningKey::from_pem(&pem, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(signing_key.kid().to_owned());
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": "http://127.0.0.1:8080",
            "sub": "0190f3a4-bench-user",
            "aud": "tessera",
            "exp": now + 900,
            "iat": now,
            "nbf": now,
            "jti": "0190f3a4-bench-token",
            "client_id": "tessera",
            "scope": "profile email",
            "roles": [],
        });
        Ok(SigningFixture {
            signing_key,
            pem,
            header,
            claims,
        })
    }

    /// One token with Tessera's signer.
    pub fn sign(&self) -> Result<String> {
        Ok(self.signing_key.sign_jws(&self.header, &self.claims)?)
    }
}

/// Timed signatures: one measurement, or several joined.
#[derive(Debug, Clone)]
pub struct SigningBound {
    /// Time per signature of each timed batch.
    batch_times: Vec<Duration>,
}

impl SigningBound {
    /// One bound from measurements taken before and after a load run, as
    /// for the argon2 bound: the machine's speed drifts.
    pub fn joined(mut self, other: SigningBound) -> SigningBound {
        self.batch_times.extend(other.batch_times);
        self
    }

    pub fn median_signature_time(&self) -> Duration {
        median(self.batch_times.clone())
    }

    pub fn tokens_per_cpu_second(&self) -> f64 {
        1.0 / self.median_signature_time().as_secs_f64()
    }

    /// Prints the bound and, given the measured grants per server
    /// CPU-second, how close the server came to it.
    pub fn print(&self, grants_per_server_cpu_second: Option<f64>) {
        row(
            "RS256 signature",
            format!(
                "{:.0} µs, median of {} batches before and after the load \
                 (SigningKey::sign_jws, 2048-bit key, one thread, in the bench)",
                self.median_signature_time().as_secs_f64() * 1e6,
                self.batch_times.len()
            ),
        );
        row(
            "signing bound",
            format!(
                "1/t = {:.0} tokens per CPU-second",
                self.tokens_per_cpu_second()
            ),
        );
        if let Some(rate) = grants_per_server_cpu_second {
            row(
                "grants vs bound",
                format!(
                    "{rate:.0} grants per server CPU-second = {:.1} % of the signing bound",
                    self.percent_of_bound(rate)
                ),
            );
        }
    }

    pub fn percent_of_bound(&self, per_cpu_second: f64) -> f64 {
        100.0 * per_cpu_second / self.tokens_per_cpu_second()
    }
}

/// Times `signatures` signatures (at least one per batch) with the fixture's
/// parse-once signer: CPU-bound, so call it off the async workers and while
/// the server is idle.
pub fn measure(fixture: &SigningFixture, signatures: u32) -> Result<SigningBound> {
    for _ in 0..WARMUP_SIGNATURES {
        fixture.sign()?;
    }
    let batch = (signatures / ROUNDS).max(1);
    let batch_times = (0..ROUNDS)
        .map(|_| time_per_call(batch, || fixture.sign().map(drop)))
        .collect::<Result<Vec<_>>>()?;
    Ok(SigningBound { batch_times })
}

/// Mean time of one call of `sign` over `calls` calls.
pub fn time_per_call<E>(
    calls: u32,
    mut sign: impl FnMut() -> Result<(), E>,
) -> Result<Duration, E> {
    let started = Instant::now();
    for _ in 0..calls {
        sign()?;
    }
    Ok(started.elapsed() / calls)
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_bound_takes_the_median_of_all_batches() {
        let us = |v: &[u64]| v.iter().map(|&u| Duration::from_micros(u)).collect();
        let before = SigningBound {
            batch_times: us(&[700, 900, 800]),
        };
        let after = SigningBound {
            batch_times: us(&[1000, 1000]),
        };
        let joined = before.joined(after);
        assert_eq!(joined.median_signature_time(), Duration::from_micros(900));
        let bound = joined.tokens_per_cpu_second();
        assert!((bound - 1111.1).abs() < 0.1, "{bound}");
        assert!((joined.percent_of_bound(1000.0) - 90.0).abs() < 1e-9);
    }
}

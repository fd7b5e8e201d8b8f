//! `sign`: in process, no server. Tessera's `SigningKey` parses the private
//! key once; stock `jsonwebtoken::encode` re-parses it on every call (even
//! with a reused `EncodingKey`). Same header, claims and key, so PKCS#1 v1.5
//! (deterministic) must give byte-identical tokens.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;
use tessera::keys::SigningKey;

use crate::report::row;

/// Untimed signatures per signer first (caches, lazy initialisation).
const WARMUP_SIGNATURES: u32 = 20;
/// Timed batches per signer; the median batch's time per call is reported.
const ROUNDS: u32 = 10;

pub fn run(iterations: u32) -> Result<()> {
    let private_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .context("RSA key generation failed")?;
    let pem = private_key
        .to_pkcs8_pem(LineEnding::LF)
        .context("cannot encode the key as PKCS#8 PEM")?;
    let signing_key = SigningKey::from_pem(&pem, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
    // Built once, outside the timing: what encode does with it is measured.
    let stock_key = EncodingKey::from_rsa_pem(pem.as_bytes())?;

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

    let ours = signing_key.sign_jws(&header, &claims)?;
    let stock = jsonwebtoken::encode(&header, &claims, &stock_key)?;
    let identical = ours == stock;

    let mut parse_once = Vec::new();
    let mut reparse = Vec::new();
    let batch = (iterations / ROUNDS).max(1);
    for _ in 0..WARMUP_SIGNATURES {
        signing_key.sign_jws(&header, &claims)?;
        jsonwebtoken::encode(&header, &claims, &stock_key)?;
    }
    // Alternating batches, so a change in the machine's speed (shared
    // cores, frequency) hits both signers alike.
    for _ in 0..ROUNDS {
        parse_once.push(time_per_call(batch, || {
            signing_key.sign_jws(&header, &claims).map(drop)
        })?);
        reparse.push(time_per_call(batch, || {
            jsonwebtoken::encode(&header, &claims, &stock_key).map(drop)
        })?);
    }
    let parse_once = median(parse_once);
    let reparse = median(reparse);
    let iterations = batch * ROUNDS;

    println!("== sign: RS256, 2048-bit key, in process — {iterations} signatures each");
    row(
        "parse once",
        format!(
            "{:.0} µs per token, median of {ROUNDS} batches (tessera::keys::SigningKey::sign_jws)",
            micros(parse_once)
        ),
    );
    row(
        "stock encode",
        format!(
            "{:.0} µs per token, median of {ROUNDS} batches (jsonwebtoken::encode, key re-parsed per call)",
            micros(reparse)
        ),
    );
    row(
        "ratio",
        format!(
            "stock takes {:.2}× as long",
            reparse.as_secs_f64() / parse_once.as_secs_f64()
        ),
    );
    row(
        "byte-identical",
        if identical { "yes" } else { "NO" }.to_owned(),
    );
    ensure!(
        identical,
        "SigningKey::sign_jws and jsonwebtoken::encode gave different tokens:\n  {ours}\n  {stock}"
    );
    Ok(())
}

/// Mean time of one call of `sign` over `calls` calls.
fn time_per_call<E>(calls: u32, mut sign: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    let started = Instant::now();
    for _ in 0..calls {
        sign()?;
    }
    Ok(started.elapsed() / calls)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

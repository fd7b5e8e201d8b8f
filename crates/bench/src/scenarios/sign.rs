//! `sign`: in process, no server. Tessera's `SigningKey` parses the private
//! key once; stock `jsonwebtoken::encode` re-parses it on every call (even
//! with a reused `EncodingKey`). Same header, claims and key, so PKCS#1 v1.5
//! (deterministic) must give byte-identical tokens.

use std::time::Duration;

use anyhow::{Result, ensure};
use jsonwebtoken::EncodingKey;

use crate::report::row;
use crate::signing_bound::{ROUNDS, SigningFixture, median, time_per_call};

/// Untimed signatures per signer first (caches, lazy initialisation).
const WARMUP_SIGNATURES: u32 = 20;

pub fn run(iterations: u32) -> Result<()> {
    let fixture = SigningFixture::new()?;
    let (header, claims) = (&fixture.header, &fixture.claims);
    // Built once, outside the timing: what encode does with it is measured.
    let stock_key = EncodingKey::from_rsa_pem(fixture.pem.as_bytes())?;

    let ours = fixture.sign()?;
    let stock = jsonwebtoken::encode(header, claims, &stock_key)?;
    let identical = ours == stock;

    let mut parse_once = Vec::new();
    let mut reparse = Vec::new();
    let batch = (iterations / ROUNDS).max(1);
    for _ in 0..WARMUP_SIGNATURES {
        fixture.sign()?;
        jsonwebtoken::encode(header, claims, &stock_key)?;
    }
    // Alternating batches, so a change in the machine's speed (shared
    // cores, frequency) hits both signers alike.
    for _ in 0..ROUNDS {
        parse_once.push(time_per_call(batch, || fixture.sign().map(drop))?);
        reparse.push(time_per_call(batch, || {
            jsonwebtoken::encode(header, claims, &stock_key).map(drop)
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

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

//! `register`: POST /v1/auth/register of one address again and again, on
//! a server with `accounts.require_verified_email` (and `email.smtp_url`):
//! after the first, each request registers a taken address, which answers
//! 202 like a new one and costs what a new one does (the API tests'
//! registration timing test compares the two) — one argon2 hash and one
//! transaction — against the argon2 bound.

use anyhow::{Result, bail};
use reqwest::StatusCode;

use super::{Target, account};
use crate::argon2_bound::{self, Argon2Bound, Argon2Params};
use crate::load::RequestSpec;

pub async fn run(target: &Target, argon2_params: Argon2Params) -> Result<()> {
    let account = account::Account {
        email: account::random_email(),
        password: account::random_password(),
    };
    let url = target.url("/v1/auth/register")?;
    let first = target
        .client()
        .post(url.clone())
        .json(&account.credentials_json())
        .send()
        .await?;
    if first.status() != StatusCode::ACCEPTED {
        bail!(
            "set-up: POST {} answered {} (the server needs accounts.require_verified_email = true and email.smtp_url): {}",
            url.path(),
            first.status(),
            first.text().await.unwrap_or_default()
        );
    }
    let before = measure_bound(argon2_params).await?;
    let spec = RequestSpec::post_json(url, &account.credentials_json());
    let result = target.measure("register", &spec).await?;
    let bound = before.joined(measure_bound(argon2_params).await?);
    result.print();
    bound.print(result.ok_per_server_cpu_second());
    Ok(())
}

/// CPU-bound: off the async workers.
async fn measure_bound(params: Argon2Params) -> Result<Argon2Bound> {
    tokio::task::spawn_blocking(move || argon2_bound::measure(params)).await?
}

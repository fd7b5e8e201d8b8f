//! `client_credentials`: a service's token grant — client authentication
//! (one indexed lookup and a SHA-256 of the secret) and one RS256 signature,
//! with no user, session or password. The signature is the floor of its cost,
//! so the result is set against the signing bound.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::Target;
use crate::cli::ClientCredentials;
use crate::load::RequestSpec;
use crate::signing_bound::{self, SigningBound, SigningFixture};

pub async fn run(target: &Target, client: &ClientCredentials, signatures: u32) -> Result<()> {
    let spec = RequestSpec::post_form(
        target.url("/oauth2/token")?,
        &[("grant_type", "client_credentials")],
    )
    .with_client_basic(&client.id, &client.secret);
    // One grant first, so wrong credentials fail here with the reason.
    let answer = target.expect_ok_json(&spec).await?;
    if answer
        .get("access_token")
        .and_then(|t| t.as_str())
        .is_none()
    {
        bail!("set-up: the client_credentials answer has no access_token: {answer}");
    }
    let fixture = Arc::new(tokio::task::spawn_blocking(SigningFixture::new).await??);
    // Measured while the server is idle, before and after the load: the
    // machine's speed can drift during the run.
    let before = measure_bound(fixture.clone(), signatures).await?;
    let result = target.measure("client_credentials", &spec).await?;
    let bound = before.joined(measure_bound(fixture, signatures).await?);
    result.print();
    bound.print(result.ok_per_server_cpu_second());
    Ok(())
}

/// CPU-bound: off the async workers.
async fn measure_bound(fixture: Arc<SigningFixture>, signatures: u32) -> Result<SigningBound> {
    tokio::task::spawn_blocking(move || signing_bound::measure(&fixture, signatures)).await?
}

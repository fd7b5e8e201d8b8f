//! `login`: password logins for one account, against the argon2 bound.

use anyhow::Result;

use super::{Target, account};
use crate::argon2_bound::{self, Argon2Bound, Argon2Params};
use crate::load::RequestSpec;

pub async fn run(target: &Target, argon2_params: Argon2Params) -> Result<()> {
    let account = account::register_fresh(target).await?;
    // One login first, so a broken contract fails here with the reason
    // rather than as thousands of errors.
    account::log_in(target, &account).await?;
    // The bound is measured while the server is idle, before and after the
    // load: the machine's speed can drift during the run.
    let before = measure_bound(argon2_params).await?;
    let spec = RequestSpec::post_json(target.url("/v1/auth/login")?, &account.credentials_json());
    let result = target.measure("login", &spec).await?;
    let bound = before.joined(measure_bound(argon2_params).await?);
    result.print();
    bound.print(result.ok_per_server_cpu_second());
    Ok(())
}

/// CPU-bound: off the async workers.
async fn measure_bound(params: Argon2Params) -> Result<Argon2Bound> {
    tokio::task::spawn_blocking(move || argon2_bound::measure(params)).await?
}

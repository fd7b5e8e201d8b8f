//! `me`: an authenticated read — token verification plus one user lookup.

use anyhow::Result;

use super::{Target, account};
use crate::load::RequestSpec;

pub async fn run(target: &Target) -> Result<()> {
    let account = account::register_fresh(target).await?;
    let token = account::log_in(target, &account).await?.access_token;
    let spec = RequestSpec::get(target.url("/v1/me")?).with_bearer(token);
    target.measure("me", &spec).await?.print();
    Ok(())
}

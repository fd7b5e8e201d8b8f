//! `jwks`: the public key set every sibling service fetches.

use anyhow::Result;

use super::Target;
use crate::load::RequestSpec;

pub async fn run(target: &Target) -> Result<()> {
    let spec = RequestSpec::get(target.url("/.well-known/jwks.json")?);
    target.measure("jwks", &spec).await?.print();
    Ok(())
}

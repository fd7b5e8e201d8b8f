//! `password-reset`: POST /v1/auth/password-reset for one registered
//! account. The server needs `email.smtp_url` set (any listening SMTP
//! server); each request reads the user and writes one outbox row in one
//! transaction — the same work for known and unknown addresses — while
//! mail leaves in the background (one per address per interval).

use anyhow::Result;
use serde_json::json;

use super::{Target, account};
use crate::load::RequestSpec;

pub async fn run(target: &Target) -> Result<()> {
    let account = account::register_fresh(target).await?;
    let spec = RequestSpec::post_json(
        target.url("/v1/auth/password-reset")?,
        &json!({ "email": account.email }),
    );
    target.measure("password-reset", &spec).await?.print();
    Ok(())
}

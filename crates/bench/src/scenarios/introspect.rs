//! `introspect`: RFC 7662 introspection of a user's access token by an
//! authenticated client — client lookup, signature verification and the
//! session check, no signing. Only `"active": true` counts as a success.

use anyhow::{Result, bail};

use super::{Target, account};
use crate::cli::ClientCredentials;
use crate::load::{Answer, Exchange, Mismatch, RequestSpec};

pub async fn run(target: &Target, client: &ClientCredentials) -> Result<()> {
    let account = account::register_fresh(target).await?;
    let access_token = account::log_in(target, &account).await?.access_token;
    let spec = RequestSpec::post_form(
        target.url("/oauth2/introspect")?,
        &[("token", &access_token)],
    )
    .with_client_basic(&client.id, &client.secret);
    // One introspection first, so a broken contract fails here with the
    // reason rather than as thousands of errors.
    let answer = target.expect_ok_json(&spec).await?;
    if let Err(mismatch) = active(answer.to_string().as_bytes()) {
        bail!("set-up: {}", mismatch.detail);
    }
    let tasks = vec![ActiveToken(spec); target.concurrency() as usize];
    target
        .measure_exchanges("introspect", tasks)
        .await?
        .0
        .print();
    Ok(())
}

/// An introspection whose answer must say the token is active.
#[derive(Clone)]
struct ActiveToken(RequestSpec);

impl Exchange for ActiveToken {
    fn next_request(&self) -> &RequestSpec {
        &self.0
    }

    fn check(&mut self, answer: &Answer<'_>) -> Result<(), Mismatch> {
        active(answer.body)
    }
}

fn active(body: &[u8]) -> Result<(), Mismatch> {
    let answer: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match answer.as_ref().and_then(|a| a.get("active")) {
        Some(serde_json::Value::Bool(true)) => Ok(()),
        Some(serde_json::Value::Bool(false)) => Err(Mismatch {
            kind: "active: false",
            detail: "introspection answered {\"active\": false} for a live token".to_owned(),
        }),
        _ => Err(Mismatch {
            kind: "no `active` in the answer",
            detail: format!(
                "introspection answer without a boolean `active`: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_true_is_a_success() {
        assert_eq!(
            active(br#"{"active":true,"sub":"u","token_type":"Bearer"}"#),
            Ok(())
        );
        assert_eq!(
            active(br#"{"active":false}"#).unwrap_err().kind,
            "active: false"
        );
        for bad in [&br#"{"active":"true"}"#[..], b"{}", b"<html>"] {
            assert_eq!(active(bad).unwrap_err().kind, "no `active` in the answer");
        }
    }
}

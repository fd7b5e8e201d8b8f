//! `refresh`: refresh-token rotation (`grant_type=refresh_token`). Every
//! task owns a session and its refresh chain: each answer's new refresh
//! token replaces the one just spent, which is never sent again — a spent
//! token presented again (outside the short grace) revokes the session.

use anyhow::Result;
use reqwest::Url;

use super::{Target, account};
use crate::load::{Answer, Exchange, Mismatch, RequestSpec};
use crate::report::row;

pub async fn run(target: &Target) -> Result<()> {
    let account = account::register_fresh(target).await?;
    let url = target.url("/oauth2/token")?;
    // One session per task. Each login costs the server an argon2 hash, so
    // they go one at a time: a burst would only queue for hashing slots.
    let mut chains = Vec::with_capacity(target.concurrency() as usize);
    for _ in 0..target.concurrency() {
        let tokens = account::log_in(target, &account).await?;
        chains.push(RefreshChain::new(url.clone(), &tokens.refresh_token));
    }
    // One refresh first, so a broken contract fails here with the reason.
    let first = chains.remove(0);
    let answer = target.expect_ok_json(first.next_request()).await?;
    let body = answer.to_string();
    chains.insert(
        0,
        RefreshChain::new(url, &next_refresh_token(body.as_bytes())?),
    );

    let (result, chains) = target.measure_exchanges("refresh", chains).await?;
    result.print();
    let broken = chains.iter().filter(|c| c.is_spent()).count();
    row(
        "refresh chains",
        format!(
            "{} of {} still live after the run (a refused refresh ends its chain)",
            chains.len() - broken,
            chains.len()
        ),
    );
    Ok(())
}

/// One session's refresh chain: the request carries the current refresh
/// token, and every successful answer moves it on.
struct RefreshChain {
    url: Url,
    request: RequestSpec,
    /// Refused once: every later refresh of this session would be refused
    /// too, so the task stops.
    spent: bool,
}

impl RefreshChain {
    fn new(url: Url, refresh_token: &str) -> RefreshChain {
        RefreshChain {
            request: refresh_request(url.clone(), refresh_token),
            url,
            spent: false,
        }
    }
}

fn refresh_request(url: Url, refresh_token: &str) -> RequestSpec {
    RequestSpec::post_form(
        url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
}

impl Exchange for RefreshChain {
    fn next_request(&self) -> &RequestSpec {
        &self.request
    }

    fn check(&mut self, answer: &Answer<'_>) -> Result<(), Mismatch> {
        match next_refresh_token(answer.body) {
            Ok(token) => {
                self.request = refresh_request(self.url.clone(), &token);
                Ok(())
            }
            Err(e) => {
                // Without the new token the chain cannot go on: the old
                // one is spent.
                self.spent = true;
                Err(Mismatch {
                    kind: "no new refresh_token",
                    detail: e.to_string(),
                })
            }
        }
    }

    fn rejected(&mut self) {
        self.spent = true;
    }

    fn is_spent(&self) -> bool {
        self.spent
    }
}

/// The new refresh token of a token response, which must also carry an
/// access token.
fn next_refresh_token(body: &[u8]) -> Result<String> {
    let answer: serde_json::Value = serde_json::from_slice(body)?;
    let text = |field: &str| answer.get(field).and_then(|v| v.as_str());
    match (text("access_token"), text("refresh_token")) {
        (Some(_), Some(refresh_token)) => Ok(refresh_token.to_owned()),
        _ => anyhow::bail!(
            "the token response lacks access_token or refresh_token: {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(300)
                .collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> RefreshChain {
        RefreshChain::new("http://127.0.0.1:1/oauth2/token".parse().unwrap(), "first")
    }

    #[test]
    fn each_answer_moves_the_chain_on() {
        let mut chain = chain();
        let answer = br#"{"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"second","scope":"profile email"}"#;
        assert_eq!(chain.check(&Answer::ok(answer)), Ok(()));
        assert!(!chain.is_spent());
        let again = chain
            .next_request()
            .build(&reqwest::Client::new())
            .build()
            .unwrap();
        let body = again.body().and_then(|b| b.as_bytes()).unwrap();
        assert_eq!(body, b"grant_type=refresh_token&refresh_token=second");
    }

    #[test]
    fn a_refusal_or_an_answer_without_a_token_ends_the_chain() {
        let mut refused = chain();
        refused.rejected();
        assert!(refused.is_spent());

        let mut no_token = chain();
        let mismatch = no_token
            .check(&Answer::ok(br#"{"access_token":"a"}"#))
            .unwrap_err();
        assert_eq!(mismatch.kind, "no new refresh_token");
        assert!(no_token.is_spent());
        assert!(chain().check(&Answer::ok(b"not json")).is_err());
    }
}

//! A throwaway account for the scenarios that need one.

use anyhow::{Result, bail};
use rand::Rng;
use rand::distributions::Alphanumeric;
use reqwest::StatusCode;
use serde_json::json;

use super::Target;

pub struct Account {
    pub email: String,
    pub password: String,
}

impl Account {
    pub fn credentials_json(&self) -> serde_json::Value {
        json!({ "email": self.email, "password": self.password })
    }
}

fn random_text(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Registers a new user with a random email and password (201 expected).
pub async fn register_fresh(target: &Target) -> Result<Account> {
    let account = Account {
        email: format!("bench-{}@example.com", random_text(12).to_lowercase()),
        password: random_text(20),
    };
    let url = target.url("/v1/auth/register")?;
    let response = target
        .client()
        .post(url.clone())
        .json(&account.credentials_json())
        .send()
        .await?;
    let status = response.status();
    if status != StatusCode::CREATED {
        bail!(
            "set-up: POST {} answered {status}: {}",
            url.path(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(account)
}

/// Logs in once and returns the access token, checking that the response
/// has the contract's fields.
pub async fn log_in(target: &Target, account: &Account) -> Result<String> {
    let url = target.url("/v1/auth/login")?;
    let response = target
        .client()
        .post(url.clone())
        .json(&account.credentials_json())
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if status != StatusCode::OK {
        bail!("set-up: POST {} answered {status}: {body}", url.path());
    }
    let token_response: serde_json::Value = serde_json::from_str(&body)?;
    for field in ["access_token", "token_type", "expires_in", "scope"] {
        if token_response.get(field).is_none() {
            bail!("set-up: the login response has no `{field}`: {body}");
        }
    }
    match token_response["access_token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => bail!("set-up: access_token is not a string: {body}"),
    }
}

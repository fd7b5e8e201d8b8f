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

/// A random address in the bench's shape, `bench-<12 characters>@example.com`:
/// every one the same length.
pub fn random_email() -> String {
    format!("bench-{}@example.com", random_text(12).to_lowercase())
}

/// A random password of 20 letters and digits.
pub fn random_password() -> String {
    random_text(20)
}

/// Registers a new user with a random email and password (201 expected).
pub async fn register_fresh(target: &Target) -> Result<Account> {
    let account = Account {
        email: random_email(),
        password: random_password(),
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

/// The tokens a login answers with.
pub struct LoginTokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// Logs in once and returns the tokens, checking that the response has the
/// contract's fields.
pub async fn log_in(target: &Target, account: &Account) -> Result<LoginTokens> {
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
    let text = |field: &str| match token_response[field].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => bail!("set-up: {field} is not a string: {body}"),
    };
    Ok(LoginTokens {
        access_token: text("access_token")?,
        refresh_token: text("refresh_token")?,
    })
}

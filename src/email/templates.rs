//! The messages, from templates (askama, as the pages): a text part and an
//! HTML part, auto-escaped. Links are built by the caller from the
//! configured issuer only, never from a request's Host.

use askama::Template;

use super::Message;
use crate::db::DbError;

/// A message that failed to render is a write that failed (as a value
/// that won't serialise is, `db::json_text`); only a failing Display could.
fn rendered(r: askama::Result<String>) -> Result<String, DbError> {
    r.map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))
}

#[derive(Template)]
#[template(path = "email/password_reset.txt")]
struct PasswordResetText<'a> {
    email: &'a str,
    link: &'a str,
    minutes: u64,
}

#[derive(Template)]
#[template(path = "email/password_reset.htm")]
struct PasswordResetHtml<'a> {
    email: &'a str,
    link: &'a str,
    minutes: u64,
}

/// The password reset message for `email`, linking to `link`.
pub fn password_reset(email: &str, link: &str, minutes: u64) -> Result<Message, DbError> {
    Ok(Message {
        kind: PASSWORD_RESET,
        to: email.to_owned(),
        subject: "Reset your password".to_owned(),
        text: rendered(
            PasswordResetText {
                email,
                link,
                minutes,
            }
            .render(),
        )?,
        html: rendered(
            PasswordResetHtml {
                email,
                link,
                minutes,
            }
            .render(),
        )?,
    })
}

#[derive(Template)]
#[template(path = "email/verify_email.txt")]
struct VerifyEmailText<'a> {
    email: &'a str,
    link: &'a str,
    hours: u64,
}

#[derive(Template)]
#[template(path = "email/verify_email.htm")]
struct VerifyEmailHtml<'a> {
    email: &'a str,
    link: &'a str,
    hours: u64,
}

/// The message asking `email`'s owner to confirm it, linking to `link`.
pub fn verify_email(email: &str, link: &str, hours: u64) -> Result<Message, DbError> {
    Ok(Message {
        kind: EMAIL_VERIFICATION,
        to: email.to_owned(),
        subject: "Confirm your e-mail address".to_owned(),
        text: rendered(VerifyEmailText { email, link, hours }.render())?,
        html: rendered(VerifyEmailHtml { email, link, hours }.render())?,
    })
}

/// The outbox kind of an address verification message.
pub const EMAIL_VERIFICATION: &str = "email_verification";
/// The outbox kind of a password reset message.
pub const PASSWORD_RESET: &str = "password_reset";
/// The outbox kind of a reset asked for an address with no account.
pub const PASSWORD_RESET_NO_ACCOUNT: &str = "password_reset_no_account";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_part_escapes_what_it_is_given() {
        let m = password_reset(
            "a<b>@example.com",
            "https://id.example/account/reset?token=x&y",
            30,
        )
        .unwrap();
        assert!(!m.html.contains("<b>"), "{}", m.html);
        assert!(m.html.contains("a&#60;b&#62;@example.com"), "{}", m.html);
        assert!(!m.html.contains("token=x&y"), "{}", m.html);
        assert!(
            m.text
                .contains("https://id.example/account/reset?token=x&y"),
            "{}",
            m.text
        );
        assert!(m.text.contains("30 minutes"));
    }
}

//! The messages, from templates (askama, as the pages): a text part and an
//! HTML part, auto-escaped. Links are built by the caller from the
//! configured issuer only, never from a request's Host.

use askama::Template;

use super::Message;

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
pub fn password_reset(email: &str, link: &str, minutes: u64) -> Result<Message, askama::Error> {
    Ok(Message {
        kind: PASSWORD_RESET,
        to: email.to_owned(),
        subject: "Reset your password".to_owned(),
        text: PasswordResetText {
            email,
            link,
            minutes,
        }
        .render()?,
        html: PasswordResetHtml {
            email,
            link,
            minutes,
        }
        .render()?,
    })
}

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
        assert!(m.html.contains("a&lt;b&gt;@example.com"), "{}", m.html);
        assert!(m.html.contains("token=x&amp;y"), "{}", m.html);
        assert!(
            m.text
                .contains("https://id.example/account/reset?token=x&y"),
            "{}",
            m.text
        );
        assert!(m.text.contains("30 minutes"));
    }
}

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
        expires_at: None,
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
        expires_at: None,
        html: rendered(VerifyEmailHtml { email, link, hours }.render())?,
    })
}

#[derive(Template)]
#[template(path = "email/notice.txt")]
struct NoticeText<'a> {
    paragraphs: &'a [String],
    link: Option<&'a str>,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/notice.htm")]
struct NoticeHtml<'a> {
    paragraphs: &'a [String],
    link: Option<&'a str>,
    link_text: &'a str,
    footer: &'a str,
}

/// A message of a few paragraphs and at most one link (a button in HTML).
struct Notice<'a> {
    kind: &'static str,
    to: &'a str,
    subject: &'a str,
    paragraphs: Vec<String>,
    link: Option<(&'a str, &'a str)>,
    footer: &'a str,
}

impl Notice<'_> {
    fn render(self) -> Result<Message, DbError> {
        let link = self.link.map(|(url, _)| url);
        let link_text = self.link.map_or("", |(_, text)| text);
        Ok(Message {
            kind: self.kind,
            to: self.to.to_owned(),
            subject: self.subject.to_owned(),
            text: rendered(
                NoticeText {
                    paragraphs: &self.paragraphs,
                    link,
                    footer: self.footer,
                }
                .render(),
            )?,
            expires_at: None,
            html: rendered(
                NoticeHtml {
                    paragraphs: &self.paragraphs,
                    link,
                    link_text,
                    footer: self.footer,
                }
                .render(),
            )?,
        })
    }
}

/// An invitation to `email`: a link to choose the first password.
pub fn invitation(email: &str, link: &str, hours: u64) -> Result<Message, DbError> {
    Notice {
        kind: INVITATION,
        to: email,
        subject: "You are invited",
        paragraphs: vec![format!(
            "An administrator made an account for {email}. Choose its password by opening this link within {hours} hours:"
        )],
        link: Some((link, "Choose my password")),
        footer: "If you did not expect this, ignore this message.",
    }
    .render()
}

/// To the owner of `email`, when someone registers it again: no new
/// account is made, and the registration answered as for a new one.
pub fn already_registered(email: &str, reset_link: &str) -> Result<Message, DbError> {
    Notice {
        kind: ALREADY_REGISTERED,
        to: email,
        subject: "You already have an account",
        paragraphs: vec![
            format!("Someone asked to register {email}, which already has an account here; no new account was made."),
            "If it was you, sign in with your password, or choose a new one here:".to_owned(),
        ],
        link: Some((reset_link, "Reset my password")),
        footer: "If it was not you, ignore this message: nothing has changed.",
    }
    .render()
}

/// The link that confirms a change of address, sent to the new address:
/// it names the account that would move there, so nobody confirms a
/// stranger's account onto their address unawares.
pub fn confirm_new_email(
    new_email: &str,
    old_email: &str,
    link: &str,
    hours: u64,
) -> Result<Message, DbError> {
    Notice {
        kind: EMAIL_CHANGE,
        to: new_email,
        subject: "Confirm your new e-mail address",
        paragraphs: vec![format!(
            "The account {old_email} asked to move to {new_email}. If that account is yours, confirm by opening this link within {hours} hours; it moves only then:"
        )],
        link: Some((link, "Move my account to this address")),
        footer: "If the account is not yours, do not open the link: ignore this message and nothing changes.",
    }
    .render()
}

/// To an address that has an account, when another account asked to move
/// to it: nothing changes.
pub fn address_in_use(email: &str) -> Result<Message, DbError> {
    Notice {
        kind: ADDRESS_IN_USE,
        to: email,
        subject: "Your e-mail address was asked for",
        paragraphs: vec![format!(
            "Another account asked to move to {email}, which already has an account here. Nothing changed."
        )],
        link: None,
        footer: "You need do nothing.",
    }
    .render()
}

/// To the old address, when a change of address is asked for.
pub fn email_change_notice(old_email: &str, new_email: &str) -> Result<Message, DbError> {
    Notice {
        kind: EMAIL_CHANGE_NOTICE,
        to: old_email,
        subject: "Your e-mail address is being changed",
        paragraphs: vec![format!(
            "Someone signed in as {old_email} asked to move the account to {new_email}. It moves once that address is confirmed."
        )],
        link: None,
        footer: "If it was not you, change your password now: whoever asked knows it.",
    }
    .render()
}

/// The outbox kind of an invitation.
pub const INVITATION: &str = "invitation";
/// The outbox kind of the notice to an address registered again.
pub const ALREADY_REGISTERED: &str = "already_registered";
/// The outbox kind of a new address's confirmation link.
pub const EMAIL_CHANGE: &str = "email_change";
/// The outbox kind of the notice to an address another account asked for.
pub const ADDRESS_IN_USE: &str = "address_in_use";
/// The outbox kind of the notice to the old address.
pub const EMAIL_CHANGE_NOTICE: &str = "email_change_notice";
/// The outbox kind of an address verification message.
pub const EMAIL_VERIFICATION: &str = "email_verification";
/// The outbox kind of a password reset message.
pub const PASSWORD_RESET: &str = "password_reset";
/// The outbox kind of a request that sends nothing (an address with no
/// enabled account, a link sent a moment ago, an address verified).
pub const REQUEST_DROPPED: &str = "request_dropped";

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

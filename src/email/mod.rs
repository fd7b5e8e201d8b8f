//! Outgoing mail. A message is written to the outbox (`email_outbox`) in
//! the transaction of the change that sends it, so it is sent if and only
//! if the change happened; [`sender`] delivers what is due over SMTP in the
//! background, with retries, so no request waits on the SMTP server and an
//! outage or a restart loses nothing.

pub mod sender;
pub mod templates;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::email_outbox;
use crate::db::{AnyConnection, DbError};

/// A message ready to be queued: who it is for and its two parts.
pub struct Message {
    /// What it is (`password_reset`, ...): for the logs and the clean-up.
    pub kind: &'static str,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Queues `message` inside the caller's transaction; it is sent once that
/// transaction commits (and not at all if it rolls back).
pub fn enqueue_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    message: &Message,
) -> Result<(), DbError> {
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::id.eq(uuid::Uuid::now_v7().to_string()),
            email_outbox::kind.eq(message.kind),
            email_outbox::recipient.eq(Some(&message.to)),
            email_outbox::subject.eq(&message.subject),
            email_outbox::text_body.eq(&message.text),
            email_outbox::html_body.eq(&message.html),
            email_outbox::created_at.eq(now),
            email_outbox::next_attempt_at.eq(now),
            email_outbox::attempts.eq(0),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a request that sends nothing (a reset asked for an address with
/// no account), as a row that is already done: the request writes what a
/// real one writes, so its answer takes the same time and tells nothing.
pub fn record_unsent_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    kind: &'static str,
) -> Result<(), DbError> {
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::id.eq(uuid::Uuid::now_v7().to_string()),
            email_outbox::kind.eq(kind),
            email_outbox::recipient.eq(None::<String>),
            email_outbox::subject.eq(""),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::created_at.eq(now),
            email_outbox::next_attempt_at.eq(now),
            email_outbox::attempts.eq(0),
            email_outbox::sent_at.eq(Some(now)),
        ))
        .execute(conn)?;
    Ok(())
}

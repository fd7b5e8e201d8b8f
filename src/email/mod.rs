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
    /// When the link it carries dies: an unsent message is not sent after.
    pub expires_at: Option<NaiveDateTime>,
}

impl Message {
    /// The message, not to be sent after `at` (its link's expiry).
    pub fn until(mut self, at: NaiveDateTime) -> Message {
        self.expires_at = Some(at);
        self
    }
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
            email_outbox::expires_at.eq(message.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The outbox kind of a queued request whose message is still to be
/// made: a password reset asked for an address.
pub const REQUEST: &str = "password_reset_request";
/// The same, for a registration of an address that has an account: its
/// owner gets a notice with a reset link.
pub const REGISTERED_AGAIN_REQUEST: &str = "registered_again_request";
/// The same, for a new account: a verification link to its address.
pub const VERIFICATION_REQUEST: &str = "verification_request";
/// Every kind of request the sender prepares before it sends.
pub const REQUEST_KINDS: [&str; 3] = [REQUEST, REGISTERED_AGAIN_REQUEST, VERIFICATION_REQUEST];

/// Queues a request of `kind` (one of [`REQUEST_KINDS`]) for `address`
/// (one insert, whatever the address), for [`take_requests_with`] to turn
/// into a message or drop in the background.
pub fn enqueue_request_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    kind: &'static str,
    address: &str,
    ip: Option<&str>,
) -> Result<(), DbError> {
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::id.eq(uuid::Uuid::now_v7().to_string()),
            email_outbox::kind.eq(kind),
            email_outbox::recipient.eq(Some(address)),
            email_outbox::subject.eq(""),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::created_at.eq(now),
            email_outbox::next_attempt_at.eq(now),
            email_outbox::request_ip.eq(ip),
            // Spent, to a sender that knows no requests (an older version
            // beside this one during an upgrade): it never claims the row
            // as a message. Filling it in resets the count.
            email_outbox::attempts.eq(i32::MAX),
        ))
        .execute(conn)?;
    Ok(())
}

/// A queued request: its row, what it asks, the address and where it
/// came from.
pub struct Request {
    pub id: String,
    pub kind: String,
    pub address: String,
    pub ip: Option<String>,
}

/// Deletes what is queued for `recipient` and not sent yet, inside the
/// caller's transaction (the account at that address is deleted).
pub fn forget_unsent_to_with(conn: &mut AnyConnection, recipient: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(email_outbox::table)
        .filter(email_outbox::recipient.eq(recipient))
        .filter(email_outbox::sent_at.is_null())
        .execute(conn)?)
}

/// Whether a message of `kind` was queued for `recipient` since `since`.
pub fn queued_since_with(
    conn: &mut AnyConnection,
    kind: &'static str,
    recipient: &str,
    since: NaiveDateTime,
) -> Result<bool, DbError> {
    let queued: i64 = email_outbox::table
        .filter(email_outbox::kind.eq(kind))
        .filter(email_outbox::recipient.eq(recipient))
        .filter(email_outbox::created_at.gt(since))
        .count()
        .get_result(conn)?;
    Ok(queued > 0)
}

/// Up to `limit` requests waiting to be prepared, oldest first.
pub fn take_requests_with(conn: &mut AnyConnection, limit: i64) -> Result<Vec<Request>, DbError> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = email_outbox::table
        .filter(email_outbox::kind.eq_any(REQUEST_KINDS))
        .filter(email_outbox::sent_at.is_null())
        .order(email_outbox::created_at.asc())
        .select((
            email_outbox::id,
            email_outbox::kind,
            email_outbox::recipient,
            email_outbox::request_ip,
        ))
        .limit(limit)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, address, ip)| Request {
            id,
            kind,
            address: address.unwrap_or_default(),
            ip,
        })
        .collect())
}

/// Turns a request into `message`, to be sent, inside the caller's
/// transaction; false if another sender prepared it first.
pub fn fill_request_with(
    conn: &mut AnyConnection,
    id: &str,
    message: &Message,
) -> Result<bool, DbError> {
    let filled = diesel::update(email_outbox::table.find(id))
        .filter(email_outbox::kind.eq_any(REQUEST_KINDS))
        .set((
            email_outbox::kind.eq(message.kind),
            email_outbox::recipient.eq(Some(&message.to)),
            email_outbox::subject.eq(&message.subject),
            email_outbox::text_body.eq(&message.text),
            email_outbox::html_body.eq(&message.html),
            email_outbox::expires_at.eq(message.expires_at),
            email_outbox::attempts.eq(0),
        ))
        .execute(conn)?;
    Ok(filled == 1)
}

/// Closes a request that sends nothing (no such account, or a link sent a
/// moment ago), forgetting the address; false if another sender did first.
pub fn drop_request_with(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    id: &str,
    kind: &'static str,
) -> Result<bool, DbError> {
    let dropped = diesel::update(email_outbox::table.find(id))
        .filter(email_outbox::kind.eq_any(REQUEST_KINDS))
        .set((
            email_outbox::kind.eq(kind),
            email_outbox::recipient.eq(None::<String>),
            email_outbox::sent_at.eq(Some(now)),
        ))
        .execute(conn)?;
    Ok(dropped == 1)
}

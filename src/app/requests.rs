//! The e-mail sender's first step: requests queued by a request that must
//! not take longer, or answer otherwise, for one address than another (a
//! password reset, a registration) are turned here, in the background,
//! into the message they call for — or dropped, forgetting the address.

use diesel::Connection;

use super::recovery::{self, ResetPolicy};
use super::verification;
use crate::audit::{self, Event};
use crate::db::{AnyConnection, Db, DbError};
use crate::email::{self, templates};

/// Requests taken per transaction batch.
pub const PREPARE_BATCH: i64 = 50;

/// Prepares up to [`PREPARE_BATCH`] queued requests, each in its own
/// transaction: its message and link, or nothing. How many were taken (a
/// full batch means more may wait).
pub async fn prepare_requested(
    db: &Db,
    issuer: &str,
    policy: ResetPolicy,
) -> Result<usize, DbError> {
    let issuer = issuer.to_owned();
    let now = db.now();
    db.run(move |conn| {
        let mut taken = 0;
        for request in email::take_requests_with(conn, PREPARE_BATCH)? {
            taken += 1;
            let filled = conn.transaction(|conn| {
                Db::lock_sqlite_for_write(conn)?;
                prepare_one_with(conn, now, &issuer, policy, &request)
            });
            match filled {
                Ok(_) => {}
                // Another instance took it (or a race to lock): next.
                Err(DbError::Conflict) => {}
                Err(e @ DbError::Unavailable(_)) => return Err(e),
                // This one failed: the others are not held back behind it
                // (it is tried again next time).
                Err(e) => {
                    tracing::error!(id = %request.id, kind = %request.kind, error = %e, "a queued e-mail request could not be prepared");
                }
            }
        }
        Ok(taken)
    })
    .await
}

fn prepare_one_with(
    conn: &mut AnyConnection,
    now: chrono::NaiveDateTime,
    issuer: &str,
    policy: ResetPolicy,
    request: &email::Request,
) -> Result<bool, DbError> {
    let prepared = if request.kind == email::VERIFICATION_REQUEST {
        verification::request_message_with(conn, now, issuer, policy.interval, request)?
    } else {
        recovery::reset_request_message_with(conn, now, issuer, policy, request)?
    };
    let Some((message, action, user)) = prepared else {
        email::drop_request_with(conn, now, &request.id, templates::REQUEST_DROPPED)?;
        return Ok(false);
    };
    if !email::fill_request_with(conn, &request.id, &message)? {
        // Another instance prepared it: this transaction's token goes too.
        return Err(DbError::Conflict);
    }
    audit::record(
        conn,
        now,
        Event {
            action,
            outcome: "success",
            user_id: Some(user.id.as_str()),
            ip: request.ip.as_deref(),
            ..Event::default()
        },
    )?;
    Ok(true)
}

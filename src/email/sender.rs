//! Delivery of the outbox over SMTP (lettre), in the background. A row is
//! claimed before it is sent — its next attempt moved a lease ahead, on the
//! condition that nobody moved it first — so two instances sharing the
//! database never send one message twice at once; a sender that dies
//! mid-send leaves the row to be retried when the lease runs out.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::configuration::EmailSettings;
use crate::db::schema::email_outbox;
use crate::db::{Db, DbError};

/// How long a claimed row is left to its sender before another may retry
/// it: more than one send's SMTP timeout.
const LEASE: Duration = Duration::from_secs(120);
/// The first retry's wait; each further one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Rows sent per pass (and due rows looked at per claim).
const BATCH: i64 = 20;

/// The SMTP server and the From address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    // Not the transport: its URL may hold the SMTP password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// The mailer the settings describe; None without an `smtp_url`.
    pub fn from_settings(settings: &EmailSettings) -> Result<Option<Mailer>, String> {
        let Some(url) = settings.smtp() else {
            return Ok(None);
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            // lettre's message names the scheme, never the password.
            .map_err(|e| format!("email.smtp_url: {e}"))?
            .timeout(Some(Duration::from_secs(30)));
        if let Some(ca_file) = settings.ca_file() {
            builder = builder.tls(tls_trusting(url, ca_file)?);
        }
        let transport = builder.build();
        let from = settings
            .from
            .parse()
            .map_err(|e| format!("email.from: {e}"))?;
        Ok(Some(Mailer { transport, from }))
    }

    async fn send(&self, to: &str, row: &Queued) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&row.subject)
            .multipart(MultiPart::alternative_plain_html(
                row.text_body.clone(),
                row.html_body.clone(),
            ))
            .map_err(|e| format!("message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The TLS `url` asks for (as lettre reads it: `smtps://` is TLS from the
/// start, `?tls=required` and `?tls=opportunistic` STARTTLS), trusting the
/// certificates in `ca_file` besides the public roots.
fn tls_trusting(url: &str, ca_file: &str) -> Result<Tls, String> {
    let url = url::Url::parse(url).map_err(|_| "email.smtp_url is not a URL".to_owned())?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let pem = std::fs::read(ca_file).map_err(|e| format!("email.ca_file {ca_file}: {e}"))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!("email.ca_file {ca_file}: no certificate in it"));
    }
    let certificates =
        Certificate::from_pem(&pem).map_err(|e| format!("email.ca_file {ca_file}: {e}"))?;
    let parameters = TlsParameters::builder(host).add_root_certificate(certificates);
    let parameters = parameters
        .build_rustls()
        .map_err(|e| format!("email.ca_file {ca_file}: {e}"))?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    Ok(match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => Tls::Wrapper(parameters),
        (_, Some("required")) => Tls::Required(parameters),
        (_, Some("opportunistic")) => Tls::Opportunistic(parameters),
        _ => {
            return Err(
                "email.ca_file is set but email.smtp_url asks for no TLS (smtps://, or ?tls=required)"
                    .to_owned(),
            );
        }
    })
}

/// How the sender retries and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct SenderPolicy {
    pub max_attempts: i32,
    pub poll_interval: Duration,
    pub retention: chrono::Duration,
}

impl SenderPolicy {
    pub fn from_settings(settings: &EmailSettings) -> SenderPolicy {
        SenderPolicy {
            max_attempts: i32::try_from(settings.max_attempts).unwrap_or(i32::MAX),
            poll_interval: Duration::from_millis(settings.poll_interval_milliseconds),
            retention: crate::configuration::duration_seconds(settings.retention_days * 24 * 3600),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = email_outbox)]
struct Queued {
    id: String,
    kind: String,
    recipient: Option<String>,
    subject: String,
    text_body: String,
    html_body: String,
    attempts: i32,
}

fn later(now: NaiveDateTime, by: Duration) -> NaiveDateTime {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

/// The wait before the retry after `attempts` failed attempts.
fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// Claims the oldest due row for this sender: only if its next attempt is
/// still the one read (nobody claimed it meanwhile). The row and the lease
/// it holds until.
fn claim_one(
    conn: &mut crate::db::AnyConnection,
    now: NaiveDateTime,
    policy: &SenderPolicy,
) -> Result<Option<(Queued, NaiveDateTime)>, DbError> {
    let max = policy.max_attempts;
    let due: Vec<(String, NaiveDateTime)> = email_outbox::table
        .filter(email_outbox::sent_at.is_null())
        .filter(email_outbox::kind.ne_all(super::REQUEST_KINDS))
        .filter(email_outbox::next_attempt_at.le(now))
        .filter(email_outbox::attempts.lt(max))
        // A message whose link is dead would only mislead.
        .filter(
            email_outbox::expires_at
                .is_null()
                .or(email_outbox::expires_at.gt(now)),
        )
        .order(email_outbox::next_attempt_at.asc())
        .select((email_outbox::id, email_outbox::next_attempt_at))
        .limit(BATCH)
        .load(conn)?;
    let lease = later(now, LEASE);
    for (id, read_at) in due {
        let won = diesel::update(email_outbox::table.find(&id))
            .filter(email_outbox::next_attempt_at.eq(read_at))
            .filter(email_outbox::sent_at.is_null())
            .set((
                email_outbox::next_attempt_at.eq(lease),
                email_outbox::attempts.eq(email_outbox::attempts + 1),
            ))
            .execute(conn)?;
        if won == 1 {
            let row = email_outbox::table
                .find(&id)
                .select(Queued::as_select())
                .first(conn)?;
            return Ok(Some((row, lease)));
        }
    }
    Ok(None)
}

/// Records how a claimed row's attempt went — only while this sender
/// still holds its lease (a sender slower than the lease lost the row to
/// another, whose outcome stands).
fn finish(
    conn: &mut crate::db::AnyConnection,
    id: &str,
    lease: NaiveDateTime,
    outcome: Result<NaiveDateTime, (NaiveDateTime, String)>,
    gave_up: bool,
) -> Result<(), DbError> {
    let held = email_outbox::table
        .find(id)
        .filter(email_outbox::next_attempt_at.eq(lease));
    // Done with (sent, or given up): the bodies, whose links are live
    // secrets, are not kept for the retention; the row stays, as the
    // record of what went where.
    let cleared = (
        email_outbox::text_body.eq(""),
        email_outbox::html_body.eq(""),
    );
    match outcome {
        Ok(sent_at) => diesel::update(held)
            .set((
                email_outbox::sent_at.eq(Some(sent_at)),
                email_outbox::last_error.eq(None::<String>),
                cleared,
            ))
            .execute(conn)?,
        Err((retry_at, error)) if gave_up => diesel::update(held)
            .set((
                email_outbox::next_attempt_at.eq(retry_at),
                email_outbox::last_error.eq(Some(error)),
                cleared,
            ))
            .execute(conn)?,
        Err((retry_at, error)) => diesel::update(held)
            .set((
                email_outbox::next_attempt_at.eq(retry_at),
                email_outbox::last_error.eq(Some(error)),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// One pass over the outbox: sends what is due, one row claimed at a time
/// (so no claimed row waits behind others' sending); how many were sent.
pub async fn deliver_due(db: &Db, mailer: &Mailer, policy: SenderPolicy) -> Result<usize, DbError> {
    let mut sent = 0;
    for _ in 0..BATCH {
        let now = db.now();
        let Some((row, lease)) = db.run(move |conn| claim_one(conn, now, &policy)).await? else {
            break;
        };
        let outcome = match &row.recipient {
            Some(to) => mailer.send(to, &row).await,
            None => Ok(()),
        };
        let now = db.now();
        let mut gave_up = false;
        let outcome = match outcome {
            Ok(()) => {
                sent += 1;
                tracing::info!(kind = %row.kind, id = %row.id, "email sent");
                Ok(now)
            }
            Err(error) => {
                gave_up = row.attempts >= policy.max_attempts;
                if gave_up {
                    tracing::error!(kind = %row.kind, id = %row.id, attempts = row.attempts, %error, "email given up");
                } else {
                    tracing::warn!(kind = %row.kind, id = %row.id, attempts = row.attempts, %error, "email not sent; will retry");
                }
                Err((
                    later(now, backoff(row.attempts)),
                    error.chars().take(500).collect(),
                ))
            }
        };
        let id = row.id.clone();
        db.run(move |conn| finish(conn, &id, lease, outcome, gave_up))
            .await?;
    }
    Ok(sent)
}

/// Deletes messages sent, given up, or expired unsent, longer ago than the
/// retention.
pub async fn prune(db: &Db, policy: SenderPolicy) -> Result<usize, DbError> {
    let now = db.now();
    let cutoff = now - policy.retention;
    let max = policy.max_attempts;
    db.run(move |conn| {
        Ok(diesel::delete(email_outbox::table)
            .filter(email_outbox::created_at.lt(cutoff))
            .filter(
                email_outbox::sent_at
                    .is_not_null()
                    .or(email_outbox::attempts.ge(max))
                    .or(email_outbox::expires_at.le(now)),
            )
            .execute(conn)?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, ca_file: &str) -> EmailSettings {
        EmailSettings {
            smtp_url: url.to_owned(),
            from: "Tessera <no-reply@localhost>".to_owned(),
            poll_interval_milliseconds: 1000,
            max_attempts: 12,
            retention_days: 7,
            ca_file: ca_file.to_owned(),
        }
    }

    // In a runtime: the SMTP pool's upkeep starts with the transport.
    #[tokio::test]
    async fn a_ca_file_must_be_there_hold_a_certificate_and_go_with_tls() {
        let missing =
            Mailer::from_settings(&settings("smtps://mail.example:465", "/nonexistent.pem"));
        assert!(
            missing
                .unwrap_err()
                .contains("email.ca_file /nonexistent.pem")
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let empty = empty.display().to_string();
        let refused = Mailer::from_settings(&settings("smtps://mail.example:465", &empty));
        assert!(refused.unwrap_err().contains("no certificate"));
        let cert = dir.path().join("cert.pem");
        let generated = rcgen::generate_simple_self_signed(vec!["mail.example".into()]).unwrap();
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        let cert = cert.display().to_string();
        for url in [
            "smtps://mail.example:465",
            "smtp://mail.example:587?tls=required",
        ] {
            assert!(
                Mailer::from_settings(&settings(url, &cert))
                    .unwrap()
                    .is_some(),
                "{url}"
            );
        }
        // Plain SMTP trusts nothing: the setting would do nothing, so it is refused.
        let plain = Mailer::from_settings(&settings("smtp://mail.example:25", &cert));
        assert!(plain.unwrap_err().contains("asks for no TLS"));
    }

    #[test]
    fn retries_back_off_from_five_seconds_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(30), MAX_BACKOFF);
        assert_eq!(backoff(0), Duration::from_secs(5));
    }
}

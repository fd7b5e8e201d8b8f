//! A real SMTP server for the e-mail tests: Python's aiosmtpd, run as its
//! own process, storing what it receives in a Maildir the test reads.
//! Where aiosmtpd is missing the e-mail tests are skipped with a printed
//! line, unless TESSERA_REQUIRE_SMTP=1 (as `.ci/run` sets) makes that a
//! failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{free_port, wait_until};

pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Option<Child>,
    tls: Option<Tls>,
}

/// How a TLS server offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// From the first byte (`smtps://`, port 465's way).
    Implicit,
    /// After STARTTLS, insisted on by the server too.
    StartTls,
}

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The first link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let start = self
            .text
            .find(prefix)
            .unwrap_or_else(|| panic!("no link starting {prefix} in {:?}", self.text));
        self.text[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

fn aiosmtpd_present() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl SmtpServer {
    /// Starts a server on a free port; None (printed) where aiosmtpd is
    /// missing and not required.
    pub async fn start() -> Option<SmtpServer> {
        if !aiosmtpd_present() {
            assert!(
                std::env::var("TESSERA_REQUIRE_SMTP").as_deref() != Ok("1"),
                "TESSERA_REQUIRE_SMTP=1 but python3 has no aiosmtpd (pip install aiosmtpd)"
            );
            println!("skipped: no SMTP server to test with (pip install aiosmtpd)");
            return None;
        }
        let mut server = SmtpServer {
            port: free_port(),
            maildir: tempfile::tempdir().unwrap(),
            child: None,
            tls: None,
        };
        server.resume().await;
        Some(server)
    }

    /// A server with TLS, its certificate self-signed for 127.0.0.1
    /// ([`Self::certificate`] is the file to trust).
    pub async fn start_tls(tls: Tls) -> Option<SmtpServer> {
        let mut server = SmtpServer::start().await?;
        server.stop();
        let generated =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        std::fs::write(server.certificate(), generated.cert.pem()).unwrap();
        std::fs::write(
            server.maildir.path().join("key.pem"),
            generated.signing_key.serialize_pem(),
        )
        .unwrap();
        server.tls = Some(tls);
        server.resume().await;
        Some(server)
    }

    /// The server's certificate (PEM), for `email.ca_file`.
    pub fn certificate(&self) -> PathBuf {
        self.maildir.path().join("cert.pem")
    }

    pub fn url(&self) -> String {
        match self.tls {
            None => format!("smtp://127.0.0.1:{}", self.port),
            Some(Tls::Implicit) => format!("smtps://127.0.0.1:{}", self.port),
            Some(Tls::StartTls) => format!("smtp://127.0.0.1:{}?tls=required", self.port),
        }
    }

    /// Starts (again) listening on the same port, into the same Maildir.
    pub async fn resume(&mut self) {
        let (cert, key) = (self.certificate(), self.maildir.path().join("key.pem"));
        let tls_args: Vec<std::ffi::OsString> = match self.tls {
            None => Vec::new(),
            Some(Tls::Implicit) => vec![
                "--smtpscert".into(),
                cert.into(),
                "--smtpskey".into(),
                key.into(),
            ],
            Some(Tls::StartTls) => vec![
                "--tlscert".into(),
                cert.into(),
                "--tlskey".into(),
                key.into(),
            ],
        };
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(tls_args)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A path that doesn't exist yet: Maildir creates it with its
            // tmp/new/cur folders (an existing empty folder gets none).
            .arg(self.maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd starts");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            "the SMTP server to listen",
            Duration::from_secs(10),
            async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    fn files(&self) -> Vec<PathBuf> {
        let new = self.maildir.path().join("mail").join("new");
        let mut files: Vec<_> = std::fs::read_dir(new)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        // In the order they arrived: Maildir names don't sort that way.
        files.sort_by_key(|f| {
            (
                std::fs::metadata(f).and_then(|m| m.modified()).ok(),
                f.clone(),
            )
        });
        files
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Mail> {
        self.files()
            .iter()
            .map(|f| parse(&std::fs::read(f).unwrap()))
            .collect()
    }

    /// The messages to `to` received so far.
    pub fn received_by(&self, to: &str) -> Vec<Mail> {
        self.received()
            .into_iter()
            .filter(|m| m.to.contains(to))
            .collect()
    }

    /// The messages to `to` with `subject` received so far.
    pub fn received_about(&self, to: &str, subject: &str) -> Vec<Mail> {
        self.received_by(to)
            .into_iter()
            .filter(|m| m.subject == subject)
            .collect()
    }

    /// Waits for the `n`th message (1-based) to `to` with `subject`.
    pub async fn nth_about(&self, to: &str, subject: &str, n: usize) -> Mail {
        let what = format!("message {n} to {to} about {subject:?}");
        wait_until(&what, Duration::from_secs(20), async || {
            self.received_about(to, subject).len() >= n
        })
        .await;
        self.received_about(to, subject)[n - 1].clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl SmtpServer {
    /// Stops the server (an SMTP outage); the Maildir stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

fn parse(raw: &[u8]) -> Mail {
    let mail = mailparse::parse_mail(raw).expect("a MIME message");
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    let mut text = String::new();
    let mut html = String::new();
    for part in mail.parts() {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = part.get_body().unwrap(),
            "text/html" => html = part.get_body().unwrap(),
            _ => {}
        }
    }
    Mail {
        to: header("To"),
        from: header("From"),
        subject: header("Subject"),
        text,
        html,
    }
}

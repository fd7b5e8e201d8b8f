//! Fuzz harnesses over the real service, for the cargo-fuzz targets in
//! `fuzz/` and their regression replay (`tests/fuzz_regressions.rs`).
//!
//! Not part of the service: the release build of `tessera` never compiles
//! this crate. It serves the very application the server runs
//! ([`tessera::startup::app`]) in-process, over a real SQLite database and a
//! real signing key in a temporary folder, made once per process, with a
//! confidential and a public client, users and a browser's SSO session.
//! Each input becomes real requests to that application; a panic anywhere,
//! or any 5xx answer, is a bug. Each target returns whether the service
//! accepted the input (see each function), so regression inputs can say
//! what they expect.
//!
//! Inputs may name live values the harness fills in before sending (a
//! fuzzer cannot guess a client secret or a fresh authorization code); see
//! [`PLACEHOLDERS`].

mod harness;
mod key_file;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

pub use harness::PLACEHOLDERS;
pub use key_file::key_file;

/// The file names of the targets, for tools and tests.
pub const TARGETS: [&str; 4] = ["bearer_token", "json_bodies", "oauth_forms", "key_file"];

/// The targets served by the in-process application.
#[derive(Debug, Clone, Copy)]
enum Target {
    BearerToken,
    JsonBodies,
    OauthForms,
}

enum Job {
    Run(Target, Vec<u8>),
    AccessToken,
}

enum Reply {
    Accepted(bool),
    Token(String),
}

type Answer = std::thread::Result<Reply>;

/// The one application of the process. It lives on a thread of its own
/// (actix's services are bound to the thread that made them), so callers
/// on any thread — the fuzzer's, or parallel tests — share one app, one
/// database and one key; inputs are served one at a time.
fn service() -> &'static Sender<(Job, Sender<Answer>)> {
    static SERVICE: OnceLock<Sender<(Job, Sender<Answer>)>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let (jobs, queue) = channel::<(Job, Sender<Answer>)>();
        std::thread::Builder::new()
            .name("tessera-fuzzing".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let started = catch_unwind(AssertUnwindSafe(|| system.block_on(harness::start())));
                let mut harness = match started {
                    Ok(harness) => harness,
                    Err(panic) => {
                        // Every caller learns why, with the panic's message.
                        let message = panic_message(&panic);
                        for (_, reply) in queue {
                            let message: Box<dyn std::any::Any + Send> =
                                Box::new(format!("the fuzzing fixture failed: {message}"));
                            let _ = reply.send(Err(message));
                        }
                        return;
                    }
                };
                for (job, reply) in queue {
                    let answer = catch_unwind(AssertUnwindSafe(|| {
                        system.block_on(async {
                            match job {
                                Job::Run(target, data) => {
                                    Reply::Accepted(harness.run(target, &data).await)
                                }
                                Job::AccessToken => Reply::Token(harness.access_token()),
                            }
                        })
                    }));
                    let _ = reply.send(answer);
                }
            })
            .expect("a thread for the application");
        jobs
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Sends `job` to the application's thread and waits for the answer; a
/// panic there is resumed here, so the fuzzer or the test sees it.
fn ask(job: Job) -> Reply {
    let (reply, answer) = channel();
    service()
        .send((job, reply))
        .expect("the application's thread runs");
    match answer.recv() {
        Ok(Ok(reply)) => reply,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("the application's thread stopped"),
    }
}

fn run_served(target: Target, data: &[u8]) -> bool {
    match ask(Job::Run(target, data.to_vec())) {
        Reply::Accepted(accepted) => accepted,
        Reply::Token(_) => unreachable!("a run answers whether it was accepted"),
    }
}

/// Makes the application now (database, key, users, clients, a browser
/// sign-in), so the fuzzer doesn't count that time against the first input.
pub fn init() {
    access_token();
}

/// The access token of the harness's signed-in user (`$ACCESS_TOKEN`).
pub fn access_token() -> String {
    match ask(Job::AccessToken) {
        Reply::Token(token) => token,
        Reply::Accepted(_) => unreachable!("asked for a token"),
    }
}

/// The bearer token target. Input starting with `{` is a claims set the
/// harness signs as is with the service's own key, so the claim checks are
/// reached past the signature: with an `"auth_time"` (an ID token's) it is
/// signed as an ID token and given to `GET /oauth2/logout` as its
/// `id_token_hint` (and must not pass as an access token), else as an
/// access token. Anything else is an `Authorization` header value. The
/// access token or header goes to `GET /v1/me` and `GET|POST
/// /oauth2/userinfo`. True when accepted: `/v1/me` answers 200, or (ID
/// tokens) the sign-out takes the hint.
pub fn bearer_token(data: &[u8]) -> bool {
    run_served(Target::BearerToken, data)
}

/// The JSON bodies target: the input as the body of every JSON request —
/// register, login, logout, password change (each signed in as a user of
/// its own), an administrator's user change and client registration. What
/// a request creates is deleted again, so inputs replay alike. True when
/// at least one answers 2xx.
pub fn json_bodies(data: &[u8]) -> bool {
    run_served(Target::JsonBodies, data)
}

/// The form-encoded OAuth target. An optional first line `authorization:
/// VALUE` is the Authorization header (client authentication); the rest is
/// the body of `POST /oauth2/token`, `/revoke` and `/introspect`, the query
/// of `GET /oauth2/authorize` (no SSO session) and the form of `POST
/// /oauth2/authorize` (an authorization request, or the sign-in and
/// consent forms, with the browser's cookies), the query and form of
/// `/oauth2/logout` (with the SSO session) and the query of the admin
/// lists. True when the token endpoint answers 200, the authorization
/// request shows the sign-in page (200), or the form is answered with a
/// redirect carrying a `code`.
pub fn oauth_forms(data: &[u8]) -> bool {
    run_served(Target::OauthForms, data)
}

/// Runs the named target on `data`; None for an unknown name.
pub fn run(target: &str, data: &[u8]) -> Option<bool> {
    Some(match target {
        "bearer_token" => bearer_token(data),
        "json_bodies" => json_bodies(data),
        "oauth_forms" => oauth_forms(data),
        "key_file" => key_file(data),
        _ => return None,
    })
}

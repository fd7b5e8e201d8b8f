//! `tessera`: the service (`tessera serve`, the default) and its admin CLI,
//! both run with the same settings.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tessera::accounts::administration::{self, UserChange};
use tessera::accounts::{self, ADMIN_ROLE, AccountError, Invitee, NewAccount, PasswordHasher};
use tessera::app::account;
use tessera::app::invitation::{self, Invitations};
use tessera::app::recovery::{self, ResetPolicy};
use tessera::audit::Actor;
use tessera::clients::{self, ClientRegistration, NewClient};
use tessera::configuration::Settings;
use tessera::http::dto;
use tessera::ids::UserId;
use tessera::keys::{self, KeyRing};
use tessera::startup::{self, Application};
use tessera::telemetry;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Authentication service: passwords, RS256 access tokens, JWKS"
)]
struct Cli {
    /// A settings file; its keys override config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage OAuth clients.
    Clients {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage the signing keys in keys.dir.
    Keys {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Add a new key. It is published at once and signs after
    /// keys.prepublication_delay_seconds; running instances pick it up
    /// within keys.rescan_interval_seconds (at once on SIGHUP).
    Rotate {
        /// Sign with the new key at once (after a leak), until a key made
        /// after it activates; a key still waiting never signs. Verifiers
        /// that cached the JWKS before it was published refetch on the
        /// unknown kid.
        #[arg(long)]
        now: bool,
    },
    /// Every key file as JSON: kid, creation time, state (next, active,
    /// previous, expired; invalid, revoked) and when the state next changes.
    List,
    /// Delete expired and revoked key files.
    Prune,
    /// Stop publishing and using a key at once (after a leak): tokens it
    /// signed stop verifying. Rotate with --now first, or nothing signs.
    Revoke {
        /// Kids are base64url and may begin with '-'.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} (the secret
    /// only here, only once).
    Create {
        #[arg(long)]
        name: String,
        /// An allowed grant type (repeat for several): client_credentials,
        /// authorization_code, refresh_token.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where the client may send the browser after signing out
        /// (RP-initiated logout).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// A public client: no secret (browser and native apps).
        #[arg(long)]
        public: bool,
        /// Skips the consent page (your own applications).
        #[arg(long)]
        first_party: bool,
    },
    /// List the clients as JSON.
    List,
    /// Delete a client.
    Delete {
        /// Client ids are base64url and may begin with '-'.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; prints it as JSON.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (it is never an argument,
        /// where other users could see it).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        name: Option<String>,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
        /// Vouch for the address: the account counts as verified (it can
        /// sign in where `accounts.require_verified_email` is set).
        #[arg(long)]
        verified: bool,
    },
    /// List users as a JSON array, oldest first.
    ///
    /// Every user, page by page, unless --limit is given.
    List {
        /// Only users whose email address starts with this.
        #[arg(long, value_name = "PREFIX")]
        email_prefix: Option<String>,
        /// At most this many users (by default every one).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
    },
    /// Invite a user by e-mail; prints the user as JSON.
    ///
    /// Makes an account with no password yet and queues an e-mail with a
    /// link to choose it; a running `tessera serve` delivers it. Refused
    /// when no email.smtp_url is configured.
    Invite {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// A role to give the user (repeat for several).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Mail a user a password reset link.
    ///
    /// The message is queued; a running `tessera serve` delivers it.
    /// Refused when no email.smtp_url is configured.
    ResetPassword {
        /// The user's id (as `users list` shows it).
        user_id: String,
    },
    /// Delete a user and end all their sessions.
    ///
    /// The last enabled administrator can't be deleted.
    Delete {
        /// The user's id (as `users list` shows it).
        user_id: String,
    },
    /// Replace a user's roles (no --role: no roles); prints the user as JSON.
    ///
    /// The last enabled administrator can't lose the admin role.
    SetRoles {
        /// The user's id (as `users list` shows it).
        user_id: String,
        /// A role (repeat for several).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return fail(e),
    };
    telemetry::init(&settings.log.filter, settings.log.format == "json");
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => startup::connect_database_oneshot(&settings)
            .map(|_| eprintln!("migrations are up to date"))
            .map_err(|e| format!("database: {e}")),
        Command::Users { command } => manage_users(settings, command),
        Command::Clients { command } => manage_clients(settings, command),
        Command::Keys { command } => manage_keys(settings, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// One clear line and a non-zero exit, never a backtrace.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("tessera: error: {e}");
    ExitCode::FAILURE
}

fn serve(settings: Settings) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

fn manage_users(settings: Settings, command: UserCommand) -> Result<(), String> {
    if let UserCommand::Create {
        email,
        password_stdin: _,
        name,
        admin,
        verified,
    } = command
    {
        return create_user(settings, &email, name, admin, verified);
    }
    // Nothing is queued that no one could deliver: refused before the
    // database is touched.
    let no_smtp = |what: &str| format!("no email.smtp_url is configured: {what} could not be sent");
    match &command {
        UserCommand::Invite { .. } if settings.email.smtp().is_none() => {
            return Err(no_smtp("an invitation"));
        }
        UserCommand::ResetPassword { .. } if settings.email.smtp().is_none() => {
            return Err(no_smtp("a password reset link"));
        }
        _ => {}
    }
    let db = startup::connect_database_oneshot(&settings).map_err(|e| format!("database: {e}"))?;
    let actor = || Actor::cli();
    // "no such user" alone would not say which.
    let about = |id: &str| {
        let id = id.to_owned();
        move |e: AccountError| match e {
            AccountError::NotFound => format!("no such user: {id}"),
            e => e.to_string(),
        }
    };
    actix_web::rt::System::new().block_on(async move {
        match command {
            UserCommand::Create { .. } => unreachable!("handled above"),
            UserCommand::List {
                email_prefix,
                limit,
            } => {
                let mut users = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let wanted = match limit {
                        Some(limit) => limit - users.len() as i64,
                        None => administration::MAX_PAGE,
                    };
                    let page = administration::list_page(
                        &db,
                        wanted.min(administration::MAX_PAGE),
                        cursor.as_deref(),
                        email_prefix.clone(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    users.extend(page.users.into_iter().map(dto::AdminUser::from));
                    cursor = page.next_cursor;
                    let done = limit.is_some_and(|limit| users.len() as i64 >= limit);
                    if cursor.is_none() || done {
                        break;
                    }
                }
                print_json(&users, true)
            }
            UserCommand::Invite { email, name, roles } => {
                let invitee = Invitee::parse(&email, name, roles).map_err(|e| e.to_string())?;
                let invitations = Invitations::from_settings(&settings);
                let user = invitation::invite(&db, &invitations, invitee, actor())
                    .await
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "tessera: invitation to {} queued; a running `tessera serve` sends it",
                    user.email
                );
                print_json(&dto::AdminUser::from(user), false)
            }
            UserCommand::ResetPassword { user_id } => {
                let policy = ResetPolicy::from_settings(&settings.accounts);
                let id = UserId::new(user_id.clone());
                recovery::send_password_reset(&db, &settings.issuer, policy, id, actor())
                    .await
                    .map_err(about(&user_id))?;
                eprintln!(
                    "tessera: password reset link for {user_id} queued; a running `tessera serve` sends it"
                );
                print_json(&serde_json::json!({ "reset_link_queued_for": user_id }), false)
            }
            UserCommand::Delete { user_id } => {
                account::delete_user(&db, UserId::new(user_id.clone()), actor())
                    .await
                    .map_err(about(&user_id))?;
                print_json(&serde_json::json!({ "deleted": user_id }), false)
            }
            UserCommand::SetRoles { user_id, roles } => {
                let change = UserChange {
                    roles: Some(roles),
                    ..UserChange::default()
                };
                let user = account::update_user(&db, UserId::new(user_id.clone()), change, actor())
                    .await
                    .map_err(about(&user_id))?;
                print_json(&dto::AdminUser::from(user), false)
            }
        }
    })
}

/// `value` as JSON on standard output.
fn print_json(value: &impl serde::Serialize, pretty: bool) -> Result<(), String> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    println!("{}", text.map_err(|e| e.to_string())?);
    Ok(())
}

fn create_user(
    settings: Settings,
    email: &str,
    name: Option<String>,
    admin: bool,
    verified: bool,
) -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    // Only the line ending a shell or `echo` adds, not other whitespace.
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
    let roles = if admin {
        vec![ADMIN_ROLE.to_owned()]
    } else {
        Vec::new()
    };
    let account = NewAccount::parse(email, password, name, roles).map_err(|e| e.to_string())?;
    let db = startup::connect_database_oneshot(&settings).map_err(|e| format!("database: {e}"))?;
    let hasher = PasswordHasher::new(&settings.passwords).map_err(|e| e.to_string())?;
    let user =
        accounts::register_blocking(&db, &hasher, account, verified).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&dto::User::from(user)).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn manage_keys(settings: Settings, command: KeyCommand) -> Result<(), String> {
    let dir = &settings.keys.dir;
    let load = || {
        KeyRing::load(dir, startup::key_policy(&settings), keys::system_clock())
            .map_err(|e| e.to_string())
    };
    let print = |value: serde_json::Value| println!("{value}");
    match command {
        KeyCommand::Rotate { now } => {
            let created = keys::files::create_key(dir, settings.keys.bits, chrono::Utc::now(), now)
                .map_err(|e| e.to_string())?;
            let listed = load()?
                .listing()
                .into_iter()
                .find(|k| k.path == created.path)
                .ok_or("the new key could not be read back")?;
            print(serde_json::json!(dto::KeyListing::from(listed)));
        }
        KeyCommand::List => {
            let listing = load()?.listing().into_iter().map(dto::KeyListing::from);
            print(serde_json::json!(listing.collect::<Vec<_>>()));
        }
        KeyCommand::Prune => {
            let mut removed = Vec::new();
            for key in load()?.listing() {
                if key.retired {
                    std::fs::remove_file(&key.path)
                        .map_err(|e| format!("{}: {e}", key.path.display()))?;
                    removed.push(key.file);
                }
            }
            print(serde_json::json!({ "removed": removed }));
        }
        KeyCommand::Revoke { kid } => {
            let paths = load()?.paths_of(&kid);
            if paths.is_empty() {
                return Err(format!(
                    "no unrevoked key with kid {kid:?} in {}",
                    dir.display()
                ));
            }
            let mut files = Vec::new();
            for path in paths {
                let revoked =
                    keys::files::revoke(&path, chrono::Utc::now()).map_err(|e| e.to_string())?;
                files.push(revoked.display().to_string());
            }
            let signing = load()?.view().active().map(|k| k.kid().to_owned());
            match &signing {
                Some(signer) => eprintln!(
                    "tessera: {kid} revoked; {signer} signs now. Running instances stop using it at their next rescan; send them SIGHUP to make it at once."
                ),
                None => eprintln!(
                    "tessera: warning: {kid} revoked and no key can sign now; run `tessera keys rotate --now`, then SIGHUP the running instances"
                ),
            }
            print(serde_json::json!({ "revoked": kid, "files": files, "signing_kid": signing }));
        }
    }
    Ok(())
}

fn manage_clients(settings: Settings, command: ClientCommand) -> Result<(), String> {
    let db = startup::connect_database_oneshot(&settings).map_err(|e| format!("database: {e}"))?;
    match command {
        ClientCommand::Create {
            name,
            grants,
            redirect_uris,
            post_logout_redirect_uris,
            scopes,
            audiences,
            public,
            first_party,
        } => {
            let new = NewClient::parse(
                ClientRegistration {
                    name,
                    grant_types: grants,
                    scopes,
                    audiences,
                    redirect_uris,
                    post_logout_redirect_uris,
                    public,
                    first_party,
                },
                &tessera::tokens::OwnAudiences::new(&settings.issuer, &settings.tokens.audience),
            )
            .map_err(|e| e.to_string())?;
            let (client, secret) = clients::create_blocking(&db, new).map_err(|e| e.to_string())?;
            let printed = serde_json::json!({
                "client_id": client.client_id,
                "client_secret": secret.as_ref().map(|s| s.expose()),
            });
            println!("{printed}");
        }
        ClientCommand::List => {
            let list = clients::list_blocking(&db).map_err(|e| e.to_string())?;
            let list: Vec<_> = list.into_iter().map(dto::Client::from).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
            );
        }
        ClientCommand::Delete { client_id } => {
            clients::delete_blocking(&db, &client_id).map_err(|e| e.to_string())?;
            eprintln!("client {client_id} deleted");
        }
    }
    Ok(())
}

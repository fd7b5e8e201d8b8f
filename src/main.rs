//! `tessera`: the service (`tessera serve`, the default) and its admin CLI,
//! both run with the same settings.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tessera::accounts::{self, ADMIN_ROLE, NewAccount, PasswordHasher};
use tessera::configuration::Settings;
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return fail(e),
    };
    telemetry::init(&settings.log.filter);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => startup::connect_database(&settings)
            .map(|_| eprintln!("migrations are up to date"))
            .map_err(|e| format!("database: {e}")),
        Command::Users {
            command:
                UserCommand::Create {
                    email,
                    password_stdin: _,
                    name,
                    admin,
                },
        } => create_user(settings, &email, name, admin),
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

fn create_user(
    settings: Settings,
    email: &str,
    name: Option<String>,
    admin: bool,
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
    let db = startup::connect_database(&settings).map_err(|e| format!("database: {e}"))?;
    let hasher = PasswordHasher::new(&settings.passwords).map_err(|e| e.to_string())?;
    let user = accounts::register_blocking(&db, &hasher, account).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&user).expect("a user serialises")
    );
    Ok(())
}

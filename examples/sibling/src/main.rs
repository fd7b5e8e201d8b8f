//! `tessera-sibling`: the example service. Settings from the environment:
//! `TESSERA_ISSUER` (default http://127.0.0.1:8080), `SIBLING_AUDIENCE`
//! (default `tessera`, Tessera's default token audience) and `SIBLING_BIND`
//! (default 127.0.0.1:9090).

use std::net::TcpListener;
use std::process::ExitCode;

use tessera_verifier::Verifier;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let issuer = env_or("TESSERA_ISSUER", "http://127.0.0.1:8080");
    let bind = env_or("SIBLING_BIND", "127.0.0.1:9090");
    let verifier = match Verifier::builder(&issuer)
        .audience(env_or("SIBLING_AUDIENCE", "tessera"))
        .discover()
        .await
    {
        Ok(verifier) => verifier,
        Err(e) => {
            eprintln!("tessera-sibling: error: cannot load keys from {issuer}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = TcpListener::bind(&bind).and_then(|listener| {
        tracing::info!(%issuer, %bind, "tessera-sibling listening");
        tessera_sibling::run(listener, verifier)
    });
    match served {
        Ok(server) => match server.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tessera-sibling: error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("tessera-sibling: error: cannot listen on {bind}: {e}");
            ExitCode::FAILURE
        }
    }
}

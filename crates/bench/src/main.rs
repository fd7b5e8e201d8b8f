//! `tessera-bench`: load against a running Tessera server over loopback
//! HTTP, with the server's CPU time and memory from /proc, plus in-process
//! micro-benchmarks of its password hashing and token signing.

mod argon2_bound;
mod cli;
mod load;
mod proc_stats;
mod report;
mod scenarios;
mod signing_bound;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::argon2_bound::Argon2Params;
use crate::cli::{Args, Scenario};
use crate::report::{mebibytes, row};
use crate::scenarios::Target;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let target = Target::new(&args)?;
    let client = args.client_credentials().map_err(anyhow::Error::msg)?;
    let sso_client = args.sso_client().map_err(anyhow::Error::msg)?;
    if args.scenario.iter().any(|s| s.needs_server()) {
        scenarios::ensure_loopback(&args.url)?;
        target.check_server_is_up().await?;
        print_setup(&args, &target)?;
    }
    for scenario in &args.scenario {
        match scenario {
            Scenario::Login => {
                let params = Argon2Params {
                    memory_kib: args.argon2_m,
                    iterations: args.argon2_t,
                    parallelism: args.argon2_p,
                };
                scenarios::login::run(&target, params).await?;
            }
            Scenario::Register => {
                let params = Argon2Params {
                    memory_kib: args.argon2_m,
                    iterations: args.argon2_t,
                    parallelism: args.argon2_p,
                };
                scenarios::register::run(&target, params).await?;
            }
            Scenario::Me => scenarios::me::run(&target).await?,
            Scenario::PasswordReset => scenarios::password_reset::run(&target).await?,
            Scenario::Jwks => scenarios::jwks::run(&target).await?,
            Scenario::Refresh => scenarios::refresh::run(&target).await?,
            Scenario::ClientCredentials => {
                let client = client.as_ref().context("no client credentials")?;
                scenarios::client_credentials::run(&target, client, args.sign_iterations).await?;
            }
            Scenario::Introspect => {
                let client = client.as_ref().context("no client credentials")?;
                scenarios::introspect::run(&target, client).await?;
            }
            Scenario::Sso => {
                let sso_client = sso_client.as_ref().context("no SSO client")?;
                scenarios::sso::run(&target, sso_client).await?;
            }
            Scenario::Timing => scenarios::timing::run(&target, args.timing_samples).await?,
            Scenario::Sign => {
                let iterations = args.sign_iterations;
                // CPU-bound: off the async workers.
                tokio::task::spawn_blocking(move || scenarios::sign::run(iterations)).await??;
            }
        }
        println!();
    }
    Ok(())
}

fn print_setup(args: &Args, target: &Target) -> Result<()> {
    if args.scenario.iter().any(|s| s.is_load()) {
        println!(
            "tessera-bench: {} — {} concurrent, {} s measured after {} s warm-up per scenario",
            args.url, args.concurrency, args.duration, args.warmup
        );
    } else {
        println!("tessera-bench: {}", args.url);
    }
    if let (Some(pid), Some(sample)) = (target.server_pid(), target.sample_server()?) {
        row(
            "server at start",
            format!(
                "PID {pid}: RSS {}, peak {}, {:.2} s CPU so far",
                mebibytes(sample.rss_kib),
                mebibytes(sample.peak_rss_kib),
                sample.cpu_seconds()
            ),
        );
    }
    println!();
    Ok(())
}

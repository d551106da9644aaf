//! `mesh`: the Widemesh CLI and the processes that run the platform.

mod cli;
mod confirm;
mod failure;
mod kv;
mod output;
mod role;
mod sanitize;
mod settings;
mod target;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    // `mesh shim ...`: the runtime's per-instance monitor, started by the agent from this same
    // binary so one file is all a server needs. It must not start an async runtime first.
    if std::env::args().nth(1).as_deref() == Some(role::SHIM) {
        std::process::exit(match mesh_runtime::shim::main(std::env::args().skip(2)) {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 1,
        });
    }
    // reqwest and the servers use rustls without a built-in provider: install one first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    init_tracing(cli.command.is_role());
    let runtime = if cli.command.is_role() {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let result = match runtime {
        Ok(rt) => rt.block_on(cli::run(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    if let Err(err) = result {
        let (message, hint) = failure::describe(&err);
        eprintln!("error: {message}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// Logs go to stderr, filtered by `MESH_LOG` (such as `debug` or `mesh_server=debug`).
fn init_tracing(role: bool) {
    let default = if role { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("MESH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

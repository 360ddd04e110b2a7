//! The `ferry` binary: parse, set up logging, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use ferry::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    ferry::logging::init(cli.common.verbose, cli.common.quiet);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let common = cli.common;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Send(args) => ferry::transfer::send::run(args, common).await,
            Command::Receive(args) => ferry::transfer::receive::run(args, common).await,
            Command::Serve(args) => ferry::server::run(args, common).await,
        }
    });
    // Dropping the runtime could wait on blocking reads of stdin; don't.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ferry::error_line(&e));
            ExitCode::from(ferry::exit_code(&e))
        }
    }
}

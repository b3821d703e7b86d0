//! `pounds`: the command line over the pounds log and database.
//!
//! Errors print one line on stderr beginning `error:` and exit 1; usage errors exit 2 (clap's
//! convention); `log dump`, `log follow` and `log export` with `--strict` exit 3 when records were lost
//! to wrap-around. Nothing a file holds can make it panic: every layer below returns typed errors.
#![forbid(unsafe_code)]

mod args;
mod db_cmd;
mod demo;
mod docs;
mod error;
mod export;
mod histogram;
mod json;
mod log_cmd;
mod relp;
mod show;
mod syslog;
mod when;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Log(command) => log_cmd::run(command),
        Command::Db(command) => db_cmd::run(command).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Completions { shell } => docs::completions(shell).map(|()| ExitCode::SUCCESS),
        Command::Man { subcommand } => docs::man(&subcommand).map(|()| ExitCode::SUCCESS),
        Command::DemoWriter(args) => demo::run_writer(&args).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        // A closed pipe (`pounds log dump | head`) is the reader's choice, not a failure.
        Err(error) if error::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(io::stderr(), "error: {}", error::chain(&error));
            ExitCode::FAILURE
        }
    }
}

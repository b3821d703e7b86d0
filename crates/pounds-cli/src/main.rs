//! The `pounds` command line. Its subcommands arrive with the log and database layers.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!("error: the `pounds` command needs the log and database layers, which are not built yet");
    std::process::ExitCode::FAILURE
}

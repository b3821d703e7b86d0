//! Project chores, run as `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, stopping at the first failure: formatting, clippy with warnings
//!   denied, the whole test suite with doc tests, the docs with warnings denied, and one smoke
//!   pass of every benchmark (criterion's `--test` mode).
//! - `bench [ARGS...]`: the full criterion benchmarks (arguments go to criterion).
//! - `stress [ROUNDS]`: the crash and concurrency tests in release mode with many more rounds
//!   than CI runs (default 500), via `POUNDS_STRESS_ROUNDS`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xshell::{Shell, cmd};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("stress") => stress(args.get(1).map(String::as_str)),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [ARGS...] | stress [ROUNDS]>");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn shell() -> Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    Ok(sh)
}

fn step(name: &str) {
    eprintln!("\n==> {name}");
}

fn ci() -> Result<()> {
    let sh = shell()?;
    let started = std::time::Instant::now();

    step("cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run()?;

    step("cargo clippy (all targets, all features, warnings denied)");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --all-features -- -D warnings"
    )
    .run()?;

    step("cargo test (all features, with doc tests)");
    cmd!(sh, "cargo test --workspace --all-features").run()?;

    step("cargo doc (warnings denied)");
    cmd!(sh, "cargo doc --workspace --no-deps --all-features")
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;

    step("benchmark smoke run (criterion --test)");
    cmd!(sh, "cargo bench -p pounds-benches -- --test").run()?;

    eprintln!("\nxtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let sh = shell()?;
    cmd!(sh, "cargo bench -p pounds-benches -- {args...}").run()?;
    Ok(())
}

fn stress(rounds: Option<&str>) -> Result<()> {
    let sh = shell()?;
    let rounds = rounds.unwrap_or("500");
    rounds
        .parse::<u32>()
        .map_err(|_| format!("ROUNDS must be a whole number, not {rounds:?}"))?;
    cmd!(
        sh,
        "cargo test --release --workspace --all-features -- crash concurrent processes"
    )
    .env("POUNDS_STRESS_ROUNDS", rounds)
    .run()?;
    Ok(())
}

//! Project chores, run as `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, stopping at the first failure: formatting, `tidy`, clippy with
//!   warnings denied, the whole test suite with doc tests, every example under
//!   `crates/pounds/examples` run and its output checked, the docs with warnings denied, and one
//!   smoke pass of every benchmark (criterion's `--test` mode), and the loom models at
//!   [`CI_PREEMPTIONS`] preemptions.
//! - `tidy`: the conventions ARCHITECTURE.md states, checked over the tree (module docs, the
//!   layering, `unsafe` only in pmap, no host-endian conversions, format docs against the
//!   code); see `tidy.rs`.
//! - `loom [PREEMPTIONS]`: the loom models of the protocols (`crates/plog/src/loom_models.rs`,
//!   `crates/pblockdb/src/loom_models.rs`) at full length: every interleaving with up to
//!   PREEMPTIONS preemptions (default [`FULL_PREEMPTIONS`]), through `LOOM_MAX_PREEMPTIONS`. They
//!   build with `RUSTFLAGS="--cfg loom"` in a target directory of their own (`loom/` inside the
//!   usual one), so that the flag does not throw away the normal build's cache.
//! - `bench [--quick] [ARGS...]`: every criterion benchmark and harness under `benches/`, then
//!   `bench_report` (the generated part of `docs/benchmarks.md` and `docs/benchmarks.svg`).
//! - `stress [ROUNDS]`: the crash, concurrency, stall and full-disk tests in release mode with
//!   many more rounds than CI runs (default 500), via `POUNDS_STRESS_ROUNDS`.
//! - `fuzz [--seconds N] [TARGET...]`: each cargo-fuzz target under `fuzz/` (all by default)
//!   for N seconds (default 60), growing `fuzz/corpus/<target>/`; a failing input is left in
//!   `fuzz/artifacts/<target>/`. Needs `cargo install cargo-fuzz`; the targets build with the
//!   machine's stable toolchain through `RUSTC_BOOTSTRAP=1` (libFuzzer's instrumentation is a
//!   nightly flag). `cargo xtask ci` replays the corpus through the same functions on stable
//!   (`crates/fuzz-targets/tests/replay.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xshell::{Shell, cmd};

mod tidy;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(&project_root()),
        Some("bench") => bench(&args[1..]),
        Some("stress") => stress(args.get(1).map(String::as_str)),
        Some("loom") => loom(args.get(1).map(String::as_str)),
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | tidy | loom [PREEMPTIONS] | bench [--quick] [ARGS...] | stress [ROUNDS] | fuzz [--seconds N] [TARGET...]>"
            );
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

    step("cargo xtask tidy");
    tidy::run(&project_root())?;

    step("cargo clippy (all targets, all features, warnings denied)");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --all-features -- -D warnings"
    )
    .run()?;

    step("cargo test (all features, with doc tests)");
    let (passed, failed) = run_counting_tests(cmd!(sh, "cargo test --workspace --all-features"))?;

    step("loom models (short: bounded preemptions)");
    let (loom_passed, loom_failed) = run_loom(&sh, CI_PREEMPTIONS, false)?;
    let (passed, failed) = (passed + loom_passed, failed + loom_failed);

    step("examples (each run, its output checked)");
    run_examples(&sh)?;

    step("cargo doc (warnings denied)");
    cmd!(sh, "cargo doc --workspace --no-deps --all-features")
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;

    step("benchmark smoke run (criterion --test)");
    cmd!(sh, "cargo bench -p pounds-benches --benches -- --test").run()?;

    eprintln!("\nxtask ci: all steps passed in {:.0?}", started.elapsed());
    // The plain closing line CI reads: the test count of the whole run.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// The examples a newcomer reads first (`crates/pounds/examples`), each with a piece of what it
/// must print: an example that no longer runs, or prints something else, fails CI. Each entry is
/// (name, the features it needs, what it must print).
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("map", "", "map: counter 3, 8192 bytes, bad offset refused"),
    (
        "stream",
        "",
        "stream: wrote 100000 lines, file 3300000 bytes",
    ),
    ("log", "", "log: followed 4000 records, lost 0"),
    (
        "db",
        "",
        "db: 1000 leases, client-0042 holds \"until 12:42\"",
    ),
    ("two_processes", "", "read 100 keys the child put"),
    (
        "tracing_filtered",
        "tracing-layer",
        "tracing_filtered: plog kept 2 of 4 events, user=bob in span request{id=42}",
    ),
    (
        "tracing_sink",
        "tracing-layer,tracing-sink",
        "tracing_sink: 4000 events, plog kept 4000, the live file and 3 rolled files, every \
         line whole",
    ),
];

fn run_examples(sh: &Shell) -> Result<()> {
    for (name, features, expected) in EXAMPLES {
        let features: Vec<String> = if features.is_empty() {
            Vec::new()
        } else {
            vec!["--features".into(), (*features).into()]
        };
        let out = cmd!(sh, "cargo run -q -p pounds {features...} --example {name}").read()?;
        if !out.contains(expected) {
            return Err(format!("example {name} printed {out:?}, which lacks {expected:?}").into());
        }
        eprintln!("example {name}: ok");
    }
    Ok(())
}

/// Runs a `cargo test` command, echoing its output as it comes, and adds up the `test result:`
/// lines of every test binary. Fails if the command fails.
fn run_counting_tests(cmd: xshell::Cmd<'_>) -> Result<(u64, u64)> {
    use std::io::BufRead;
    let mut command = std::process::Command::from(cmd);
    let mut child = command.stdout(std::process::Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or("no pipe from cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(counts) = line.strip_prefix("test result: ") {
            passed += count_before(counts, " passed");
            failed += count_before(counts, " failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(
            format!("cargo test failed ({status}): {passed} passed, {failed} failed").into(),
        );
    }
    Ok((passed, failed))
}

/// In `ok. 12 passed; 0 failed; ...`, the number before `word`.
fn count_before(text: &str, word: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(word.trim_start())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The criterion bench targets under `benches/`, in the order `cargo xtask bench` runs them.
const BENCH_TARGETS: &[&str] = &["plog", "pblockdb", "stream", "ring", "grow", "sink"];

/// `cargo xtask bench [--quick] [CRITERION ARGS...]`: every criterion benchmark and harness
/// under `benches/`, then `bench_report`, which regenerates the generated part of
/// `docs/benchmarks.md` and `docs/benchmarks.svg` from the results. `--quick` shortens
/// criterion's measurement and the harnesses' counts (`POUNDS_BENCH_QUICK`), and runs only the
/// quick plog harnesses (latency, follow).
fn bench(args: &[String]) -> Result<()> {
    let sh = shell()?;
    let quick = args.iter().any(|a| a == "--quick");
    let extra: Vec<&String> = args.iter().filter(|a| *a != "--quick").collect();
    // Where cargo puts criterion's results, and so where the harnesses and the report look.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let results = target.join("bench-results");
    std::fs::create_dir_all(&results)?;
    // An earlier run's end must not be read as this one's if this one stops half-way.
    let _ = std::fs::remove_file(results.join("run-end.json"));
    // Say when, how loaded and with which compiler the run started (the report reads it).
    let started = cmd!(sh, "date -u +%Y-%m-%dT%H:%M:%SZ").read()?;
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let rustc = cmd!(sh, "rustc -V").read()?;
    let mode = if quick { "quick" } else { "full" };
    std::fs::write(
        results.join("run.json"),
        format!(
            "{{\"started\":\"{started}\",\"load\":\"{load}\",\"rustc\":\"{rustc}\",\"mode\":\"{mode}\"}}\n"
        ),
    )?;
    step("cargo bench: build");
    cmd!(sh, "cargo bench -p pounds-benches --no-run").run()?;
    let criterion_quick: &[&str] = if quick {
        &[
            "--quick",
            "--warm-up-time",
            "0.1",
            "--measurement-time",
            "0.3",
            "--noplot",
        ]
    } else {
        &["--noplot"]
    };
    let _quick_env = quick.then(|| sh.push_env("POUNDS_BENCH_QUICK", "1"));
    let _harnesses = quick.then(|| sh.push_env("PLOG_BENCH_HARNESSES", "latency,follow"));
    // The harnesses print one `group/name: figures` line each; the report tabulates them.
    let mut harness_lines = String::new();
    for target in BENCH_TARGETS {
        step(&format!("cargo bench --bench {target}"));
        let extra = extra.iter();
        let output = cmd!(
            sh,
            "cargo bench -p pounds-benches --bench {target} -- {criterion_quick...} {extra...}"
        )
        .read()?;
        println!("{output}");
        for line in output.lines().filter(|l| is_harness_line(l)) {
            harness_lines.push_str(line);
            harness_lines.push('\n');
        }
    }
    std::fs::write(results.join("harnesses.txt"), harness_lines)?;
    step("cargo bench --bench loggers");
    cmd!(sh, "cargo bench -p pounds-benches --bench loggers").run()?;
    // The load at the end too, before the report (which may run much later by hand).
    let load_end = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    // Beside run.json, not in it: the report takes only results newer than run.json.
    std::fs::write(
        results.join("run-end.json"),
        format!("{{\"load_end\":\"{load_end}\"}}\n"),
    )?;
    step("bench_report");
    cmd!(
        sh,
        "cargo run --release -p pounds-benches --bin bench_report"
    )
    .run()?;
    Ok(())
}

/// Whether a line of bench output is a harness result: `group/name: key=value ...`.
fn is_harness_line(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(name, rest)| {
        name.contains('/')
            && !name.contains(' ')
            && rest
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('='))
    })
}

/// The cargo-fuzz targets, as `fuzz/Cargo.toml` names them.
const FUZZ_TARGETS: &[&str] = &[
    "plog_file",
    "pblockdb_file",
    "pblockdb_model",
    "stream_model",
];

fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            let value = args.next().ok_or("--seconds needs a number")?;
            seconds = value
                .parse()
                .map_err(|_| format!("--seconds must be a whole number, not {value:?}"))?;
        } else if FUZZ_TARGETS.contains(&arg.as_str()) {
            targets.push(arg.clone());
        } else {
            return Err(format!("no fuzz target {arg:?}; they are {FUZZ_TARGETS:?}").into());
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.iter().map(|t| (*t).to_string()).collect();
    }
    let sh = shell()?;
    if cmd!(sh, "cargo fuzz --version")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        return Err("cargo-fuzz is missing: cargo install cargo-fuzz".into());
    }
    sh.change_dir(project_root().join("fuzz"));
    let max_time = format!("-max_total_time={seconds}");
    for target in &targets {
        step(&format!("fuzz {target} for {seconds} s"));
        cmd!(
            sh,
            "cargo fuzz run -O {target} -- {max_time} -rss_limit_mb=4096"
        )
        .env("RUSTC_BOOTSTRAP", "1")
        .run()?;
    }
    Ok(())
}

/// The preemption bound of `cargo xtask ci`'s short loom run: under a minute on two cores, its
/// debug build from nothing included (about 45 s; the models run in about 5 s of it).
const CI_PREEMPTIONS: u32 = 2;
/// The preemption bound of `cargo xtask loom` unless given: the full run (a release build).
const FULL_PREEMPTIONS: u32 = 5;

fn loom(preemptions: Option<&str>) -> Result<()> {
    let sh = shell()?;
    let bound = match preemptions {
        None => FULL_PREEMPTIONS,
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| format!("PREEMPTIONS must be a whole number, not {text:?}"))?,
    };
    let started = std::time::Instant::now();
    let (passed, failed) = run_loom(&sh, bound, true)?;
    eprintln!(
        "\nxtask loom: {passed} models passed at {bound} preemptions in {:.0?}",
        started.elapsed()
    );
    println!("loom: {passed} passed, {failed} failed");
    Ok(())
}

/// Builds and runs the loom models (the `loom_models` unit tests of plog and pblockdb, which
/// exist only under `--cfg loom`) with at most `preemptions` preemptions per execution, in the
/// loom target directory (`loom/` inside `CARGO_TARGET_DIR`, or `target/loom`); `release` for an
/// optimised build (the long runs), else a debug one (quicker to build, for the short run).
fn run_loom(sh: &Shell, preemptions: u32, release: bool) -> Result<(u64, u64)> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("loom");
    let profile = release.then_some("--release");
    let (passed, failed) = run_counting_tests(
        cmd!(
            sh,
            "cargo test {profile...} -p plog -p pblockdb --lib loom_models"
        )
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", &target)
        .env("LOOM_MAX_PREEMPTIONS", preemptions.to_string()),
    )?;
    if passed == 0 {
        return Err("the loom run ran no model".into());
    }
    Ok((passed, failed))
}

fn stress(rounds: Option<&str>) -> Result<()> {
    let sh = shell()?;
    let rounds = rounds.unwrap_or("500");
    rounds
        .parse::<u32>()
        .map_err(|_| format!("ROUNDS must be a whole number, not {rounds:?}"))?;
    cmd!(
        sh,
        "cargo test --release --workspace --all-features -- crash concurrent processes stall full_disk"
    )
    .env("POUNDS_STRESS_ROUNDS", rounds)
    .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{count_before, is_harness_line};

    #[test]
    fn harness_lines_are_told_from_criterion_output() {
        assert!(is_harness_line(
            "latency/plog_write_64B: n=2000000 p50=70ns p99=120ns"
        ));
        assert!(is_harness_line("follow/cross_process: n=5000 p50=9000ns"));
        assert!(!is_harness_line(
            "pblockdb_100000/get_hit/pblockdb time:   [341.97 ns 393.02 ns 450.1 ns]"
        ));
        assert!(!is_harness_line(
            "Benchmarking plog_write_64B/plog: Warming up"
        ));
    }

    #[test]
    fn counts_are_read_from_test_result_lines() {
        let line =
            "ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count_before(line, " passed"), 12);
        assert_eq!(count_before(line, " failed"), 3);
        assert_eq!(
            count_before("FAILED. 1 passed; 2 failed; 0 ignored", " failed"),
            2
        );
        assert_eq!(count_before("nonsense", " passed"), 0);
    }
}

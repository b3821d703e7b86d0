//! The child-role harness: a test runs its own binary again, alone, as a child process that
//! takes a role from the environment (another writer, a process to kill, a process that may die
//! of a signal).
//!
//! The parent starts it with [`child_command`] (adding the variables that name the role and its
//! inputs); the child's test begins with [`child_role`] and does nothing when it is not set, so
//! that an ordinary `cargo test` passes over it. [`signal`] stops, continues or ends a child.

use std::path::PathBuf;
use std::process::Command;

/// A command that runs the test `test` of this test binary again, alone and with its output
/// shown: `current_exe() --exact TEST --nocapture --test-threads=1`. The caller adds the
/// environment that gives the child its role, and its stdio, then spawns it.
#[must_use]
pub fn child_command(test: &str) -> Command {
    let exe = std::env::current_exe().expect("the path of this test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd
}

/// The role this process was started in: the value of the environment variable `var`, or
/// `None` when it is not set (an ordinary test run, not a child).
#[must_use]
pub fn child_role(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Runs `cmd` to its end and returns its stdout, after checking that it exited, successfully,
/// rather than died of a signal (a `SIGBUS` in the child is a failed test, not a crashed test
/// binary). `what` names the child in the panic message.
pub fn run_child(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().expect("running the child test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = out.status.signal() {
            panic!("the {what} child died of signal {signal} (7 is SIGBUS):\n{stderr}");
        }
    }
    assert!(out.status.success(), "the {what} child failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number a child reported on its stdout as `KEY<number>` (`println!("{KEY}{n}")`), as
/// [`run_child`] returned it. The harness prints the test's name on the line the child's
/// report joins, so the key is looked for anywhere.
///
/// # Panics
/// If the report is missing or not a number.
#[must_use]
pub fn reported(stdout: &str, key: &str) -> u64 {
    let value = stdout
        .split_once(key)
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the child reported nothing: {stdout}"));
    value
        .parse()
        .unwrap_or_else(|e| panic!("the child reported {key}{value}, not a number: {e}"))
}

/// The role and the path this process was started with, from the environment variables
/// `role_var` and `path_var`: `None` unless both are set.
#[must_use]
pub fn child_role_path(role_var: &str, path_var: &str) -> Option<(String, PathBuf)> {
    Some((child_role(role_var)?, std::env::var_os(path_var)?.into()))
}

/// Sends `signal` (as the `kill` command takes it: `"-STOP"`, `"-CONT"`, `"-TERM"`) to process
/// `pid`, with the `kill` command, so that tests need no `unsafe` `libc::kill`.
///
/// # Panics
/// If `kill` cannot be run or fails (no such process).
#[cfg(unix)]
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

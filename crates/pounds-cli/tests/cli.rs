//! The `pounds` command as scripts use it: exit codes, output formats, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use pounds_testkit::Rng;
#[cfg(unix)]
use pounds_testkit::signal;

mod rsyslog;

fn pounds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args(args)
        .output()
        .unwrap()
}

fn pounds_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `pounds ARGS` started with its stdout and stderr piped.
fn spawn_pounds(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Creates a log of 16 blocks of 128 bytes at `file`: a few lines lap it.
fn small_log(file: &str) {
    let out = pounds(&[
        "log",
        "create",
        file,
        "--blocks",
        "16",
        "--block-size",
        "128",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An error is one `error:` line on stderr and exit code 1, never a panic.
fn assert_clean_error(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(output));
    let err = stderr(output);
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

/// A structured record (what `PlogLayer` and the `log` adapter write for fields and spans)
/// comes back from `dump` as data: `key=value` in text, `"fields"` and `"spans"` in JSON.
#[test]
fn log_dump_shows_structured_fields_and_spans() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.plog");
    {
        let log = pounds::log::Log::open(&file).unwrap();
        let mut payload = pounds::log::StructuredPayload::new();
        payload
            .message("login failed")
            .field("user", "bob")
            .field("attempt", 3u64)
            .span("request")
            .field("path", "/login");
        log.write_structured(pounds::log::Level::Warn, "auth", &payload)
            .unwrap();
    }
    let file = path_str(&file);
    let out = pounds(&["log", "dump", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.ends_with(" request{path=/login}: login failed user=bob attempt=3\n"),
        "{text}"
    );
    let out = pounds(&["log", "dump", file, "--json"]);
    let json = stdout(&out);
    assert!(
        json.contains(
            r#""message":"login failed","fields":{"user":"bob","attempt":3},"spans":[{"name":"request","path":"/login"}]"#
        ),
        "{json}"
    );
}

#[test]
fn log_write_then_dump_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.plog");
    let file = path_str(&file);

    let out = pounds(&[
        "log", "write", file, "--level", "warning", "--tag", "db", "disk", "almost", "full",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pounds_with_stdin(
        &["log", "write", file, "--tag", "stdin"],
        "first line\nsecond \"quoted\"\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = pounds(&["log", "dump", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains(" db ")
            && lines[0].ends_with("disk almost full"),
        "{text}"
    );
    assert!(
        lines[1].contains("stdin") && lines[1].ends_with("first line"),
        "{text}"
    );

    let out = pounds(&["log", "dump", file, "--json", "--tag", "stdin"]);
    let json = stdout(&out);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 2, "{json}");
    for key in [
        "\"id\":",
        "\"time\":",
        "\"level\":\"info\"",
        "\"tag\":\"stdin\"",
        "\"pid\":",
        "\"message\":",
    ] {
        assert!(lines[1].contains(key), "{key} missing in {json}");
    }
    assert!(
        lines[1].contains(r#""message":"second \"quoted\"""#),
        "{json}"
    );

    let out = pounds(&["log", "dump", file, "--level", "error"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
}

#[test]
fn log_dump_since_skips_older_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("since.plog");
    let file = path_str(&file);
    for word in ["one", "two", "three"] {
        assert!(pounds(&["log", "write", file, word]).status.success());
    }
    let json = stdout(&pounds(&["log", "dump", file, "--json"]));
    let second = json.lines().nth(1).unwrap();
    let id_start = second.find("\"id\":").unwrap() + 5;
    let id: String = second[id_start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let out = pounds(&["log", "dump", file, "--since", &id]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().next().unwrap().ends_with("two"), "{text}");
}

#[test]
fn log_follow_from_start_stops_after_count() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("follow.plog");
    let file = path_str(&file);
    for word in ["alpha", "beta", "gamma"] {
        assert!(pounds(&["log", "write", file, word]).status.success());
    }
    let out = pounds(&["log", "follow", file, "--from-start", "--count", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().next().unwrap().ends_with("alpha"), "{text}");
}

#[test]
fn log_create_and_stat_report_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("geo.plog");
    let file = path_str(&file);
    let out = pounds(&[
        "log",
        "create",
        file,
        "--blocks",
        "1024",
        "--block-size",
        "256",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pounds(&["log", "stat", file, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    assert!(
        json.contains("\"blocks\":1024")
            && json.contains("\"block_size\":256")
            && json.contains("\"lanes\":1"),
        "{json}"
    );

    // Asking an existing log for a different geometry is an error.
    let out = pounds(&["log", "create", file, "--blocks", "2048"]);
    assert_clean_error(&out);
    let out = pounds(&["log", "create", file, "--lanes", "2"]);
    assert_clean_error(&out);

    // A laned log: its lanes reported, and its records written from the command read back.
    let laned = dir.path().join("laned.plog");
    let laned = path_str(&laned);
    let out = pounds(&["log", "create", laned, "--lanes", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for message in ["one", "two", "three"] {
        let out = pounds(&["log", "write", laned, message]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = pounds(&["log", "stat", laned]);
    assert!(
        stdout(&out).contains("in 4 writer lanes"),
        "{}",
        stdout(&out)
    );
    let out = pounds(&["log", "dump", laned]);
    let text = stdout(&out);
    let messages: Vec<&str> = text.lines().filter_map(|l| l.rsplit(' ').next()).collect();
    assert_eq!(messages, ["one", "two", "three"], "{text}");
}

/// `--storage write` (positioned writes beside a read-only mapping) on the commands that write,
/// before or after the subcommand, shares the file with the default storage; `--storage
/// unmapped` (no mapping at all) reads and writes the same file; a storage that does not exist
/// is a usage error.
#[test]
fn db_storage_write_and_mapped_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.pdb");
    let file = path_str(&file);
    let out = pounds(&[
        "db",
        "--storage",
        "write",
        "create",
        file,
        "--key-size",
        "8",
        "--value-size",
        "8",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pounds(&["db", "put", file, "a", "1", "--storage", "write"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pounds(&["db", "put", file, "b", "2", "--storage", "mapped"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pounds(&["db", "--storage", "write", "del", file, "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&pounds(&["db", "list", file])), "a\t1\n");
    assert!(
        pounds(&["db", "verify", file, "--storage", "write"])
            .status
            .success()
    );
    // Without a mapping: the file written by the others opens, takes a commit, and reads back
    // through every storage.
    let out = pounds(&["db", "put", file, "c", "3", "--storage", "unmapped"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for storage in ["unmapped", "mapped", "write"] {
        let out = pounds(&["db", "list", file, "--storage", storage]);
        assert_eq!(stdout(&out), "a\t1\nc\t3\n", "{storage}: {}", stderr(&out));
        let out = pounds(&["db", "--storage", storage, "verify", file]);
        assert!(out.status.success(), "{storage}: {}", stderr(&out));
    }
    let out = pounds(&["db", "put", file, "d", "4", "--storage", "tape"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_clean_error(&pounds(&[
        "db",
        "get",
        &format!("{file}.missing"),
        "c",
        "--storage",
        "unmapped",
    ]));
    assert_clean_error(&pounds(&[
        "db",
        "put",
        &format!("{file}.missing"),
        "c",
        "3",
        "--storage",
        "write",
    ]));
}

#[test]
fn db_put_get_del_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.pdb");
    let file = path_str(&file);
    let out = pounds(&[
        "db",
        "create",
        file,
        "--key-size",
        "16",
        "--value-size",
        "32",
        "--capacity",
        "8",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        pounds(&["db", "put", file, "alice", "mount /a"])
            .status
            .success()
    );
    assert!(
        pounds(&["db", "put", file, "bob", "mount /b"])
            .status
            .success()
    );
    assert!(
        pounds(&["db", "put", file, "alice", "mount /c"])
            .status
            .success()
    );

    let out = pounds(&["db", "get", file, "alice"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "mount /c\n");

    let out = pounds(&["db", "get", file, "carol"]);
    assert_clean_error(&out);

    let out = pounds(&["db", "list", file]);
    let mut lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["alice\tmount /c", "bob\tmount /b"]);

    let out = pounds(&["db", "list", file, "--json"]);
    assert!(stdout(&out).contains(r#"{"key":"bob","value":"mount /b"}"#));

    assert!(pounds(&["db", "del", file, "bob"]).status.success());
    assert_clean_error(&pounds(&["db", "del", file, "bob"]));
    assert_clean_error(&pounds(&["db", "get", file, "bob"]));

    // A key longer than the key size is an error, and nothing changes.
    assert_clean_error(&pounds(&[
        "db",
        "put",
        file,
        "a-key-much-longer-than-sixteen",
        "x",
    ]));
    assert_eq!(stdout(&pounds(&["db", "list", file])).lines().count(), 1);
}

#[test]
fn errors_are_one_line_and_exit_one() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = path_str(dir.path());
    // A directory.
    assert_clean_error(&pounds(&["log", "dump", dir_path]));
    assert_clean_error(&pounds(&["db", "list", dir_path]));
    // A missing file.
    let missing = dir.path().join("missing.plog");
    assert_clean_error(&pounds(&["log", "dump", path_str(&missing)]));
    // A foreign file: text, of every size.
    let foreign = dir.path().join("foreign");
    for len in [0usize, 7, 100, 5000, 70_000] {
        std::fs::write(&foreign, "x".repeat(len)).unwrap();
        assert_clean_error(&pounds(&["log", "dump", path_str(&foreign)]));
        assert_clean_error(&pounds(&["log", "stat", path_str(&foreign)]));
        assert_clean_error(&pounds(&["db", "list", path_str(&foreign)]));
    }
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(pounds(&["log", "frobnicate"]).status.code(), Some(2));
    assert_eq!(
        pounds(&["log", "write", "f", "--level", "loud", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(pounds(&["db", "create", "f"]).status.code(), Some(2));
}

#[test]
fn log_follow_sees_records_written_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.plog");
    let file = path_str(&file);
    assert!(pounds(&["log", "write", file, "before"]).status.success());
    let follower = Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args(["log", "follow", file, "--count", "1", "--tag", "live"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The follower starts at the newest record: write until it has seen one and exited (the
    // first writes may land before it attached).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut follower = follower;
    while follower.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never saw a record"
        );
        assert!(
            pounds(&["log", "write", file, "--tag", "live", "tick"])
                .status
                .success()
        );
    }
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(" live ") && text.trim_end().ends_with("tick"),
        "{text}"
    );
}

#[test]
fn db_reads_work_on_a_read_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ro.pdb");
    let file_str = path_str(&file);
    assert!(
        pounds(&[
            "db",
            "create",
            file_str,
            "--key-size",
            "8",
            "--value-size",
            "8"
        ])
        .status
        .success()
    );
    assert!(pounds(&["db", "put", file_str, "k", "v"]).status.success());
    let mut permissions = std::fs::metadata(&file).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&file, permissions).unwrap();

    let out = pounds(&["db", "get", file_str, "k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v\n");
    assert_eq!(stdout(&pounds(&["db", "list", file_str])), "k\tv\n");
    // Writing is refused with a clear error, and nothing changes.
    assert_clean_error(&pounds(&["db", "put", file_str, "k", "w"]));
    assert_eq!(stdout(&pounds(&["db", "get", file_str, "k"])), "v\n");
}

/// Runs `pounds` and fails the test if it takes longer than `limit` (a hang).
fn pounds_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = spawn_pounds(args);
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("pounds {args:?} hung");
        }
        std::thread::yield_now();
    }
    child.wait_with_output().unwrap()
}

/// Whatever a file holds, every reading command ends with success or one `error:` line: no
/// panic, no hang. Damage is applied to real logs and databases as well as to random bytes.
#[test]
fn damaged_files_never_panic_or_hang_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let good_log = dir.path().join("good.plog");
    let good_db = dir.path().join("good.pdb");
    let log_str = path_str(&good_log);
    let db_str = path_str(&good_db);
    assert!(
        pounds(&[
            "log",
            "create",
            log_str,
            "--blocks",
            "64",
            "--block-size",
            "64"
        ])
        .status
        .success()
    );
    for i in 0..40 {
        let message = format!("message number {i} {}", "x".repeat(i * 3));
        assert!(
            pounds(&["log", "write", log_str, "--tag", "t", &message])
                .status
                .success()
        );
    }
    assert!(
        pounds(&[
            "db",
            "create",
            db_str,
            "--key-size",
            "8",
            "--value-size",
            "16",
            "--capacity",
            "4"
        ])
        .status
        .success()
    );
    for i in 0..12 {
        assert!(
            pounds(&["db", "put", db_str, &format!("k{i}"), &format!("v{i}")])
                .status
                .success()
        );
    }
    let log_bytes = std::fs::read(&good_log).unwrap();
    let db_bytes = std::fs::read(&good_db).unwrap();

    let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
    let mut random = move || rng.next_u64();
    let damaged = dir.path().join("damaged");
    let damaged_str = path_str(&damaged);
    let limit = std::time::Duration::from_secs(20);
    for round in 0..24u64 {
        let original = if round % 2 == 0 {
            &log_bytes
        } else {
            &db_bytes
        };
        let mut bytes = original.clone();
        match round % 6 {
            // Flip bytes in the header.
            0 | 1 => {
                for _ in 0..1 + random() % 4 {
                    let at = (random() % 128) as usize;
                    bytes[at] ^= 1 << (random() % 8);
                }
            }
            // Flip bytes anywhere.
            2 | 3 => {
                for _ in 0..1 + random() % 64 {
                    let at = (random() as usize) % bytes.len();
                    bytes[at] = random() as u8;
                }
            }
            // Truncate.
            4 => bytes.truncate((random() as usize) % bytes.len()),
            // Random bytes of a random length.
            _ => bytes = (0..random() % 9000).map(|_| random() as u8).collect(),
        }
        std::fs::write(&damaged, &bytes).unwrap();
        for args in [
            vec!["log", "dump", damaged_str],
            vec!["log", "dump", damaged_str, "--json"],
            vec!["log", "stat", damaged_str],
            vec!["db", "list", damaged_str],
            vec!["db", "get", damaged_str, "k3"],
        ] {
            let out = pounds_within(&args, limit);
            let err = stderr(&out);
            assert!(
                out.status.code() == Some(0)
                    || (out.status.code() == Some(1) && err.starts_with("error: ")),
                "round {round}, {args:?}: status {:?}, stderr {err}",
                out.status
            );
            assert!(!err.contains("panicked"), "round {round}, {args:?}: {err}");
        }
    }
}

/// `pounds log create` of a log larger than the disk (65536 blocks of the default 128 bytes,
/// 8 MiB, on a 4 MiB tmpfs; the test needs root, as CI runs, and fails if it cannot mount) is
/// one `error:` line and exit 1, where it used to exit 0 and leave the writers to die of
/// SIGBUS. A log that fits is then created on the same path.
#[cfg(target_os = "linux")]
#[test]
fn full_disk_log_create_larger_than_the_disk_exits_one() {
    let disk = pounds_testkit::Tmpfs::mount("4m");
    let file = disk.path("big.log");
    let out = pounds(&["log", "create", path_str(&file), "--blocks", "65536"]);
    assert_clean_error(&out);
    let err = stderr(&out);
    assert!(
        err.contains(path_str(&file)) && err.contains("disk space"),
        "{err}"
    );
    let out = pounds(&["log", "create", path_str(&file), "--blocks", "16384"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

/// Writes one record of each level, tagged `t-<level>`, plus `info` records tagged `a` and `b`.
fn log_of_every_level(file: &str) {
    for level in ["trace", "debug", "info", "warn", "error"] {
        let tag = format!("t-{level}");
        let out = pounds(&["log", "write", file, "--level", level, "--tag", &tag, level]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for tag in ["a", "b"] {
        assert!(
            pounds(&["log", "write", file, "--tag", tag, "tagged"])
                .status
                .success()
        );
    }
}

/// The messages of the text lines in `text` (each record's message is its last word).
fn messages(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.rsplit(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn log_level_is_a_threshold_or_a_list_and_tags_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("levels.plog");
    let file = path_str(&file);
    log_of_every_level(file);

    // One level: that level and the more severe ones (journalctl's -p).
    for name in ["warn", "warning"] {
        let out = pounds(&["log", "dump", file, "--level", name]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(messages(&stdout(&out)), ["warn", "error"], "--level {name}");
    }
    let out = pounds(&["log", "dump", file, "--level", "debug"]);
    assert_eq!(stdout(&out).lines().count(), 6, "{}", stdout(&out));
    // A list, by comma or by repeating the option: exactly those.
    let out = pounds(&["log", "dump", file, "--level", "debug,error"]);
    assert_eq!(messages(&stdout(&out)), ["debug", "error"]);
    let out = pounds(&["log", "dump", file, "--level", "trace", "--level", "warn"]);
    assert_eq!(messages(&stdout(&out)), ["trace", "warn"]);
    // Tags repeat: any of them.
    let out = pounds(&["log", "dump", file, "--tag", "a", "--tag", "t-error"]);
    assert_eq!(messages(&stdout(&out)), ["error", "tagged"]);
    let out = pounds(&["log", "dump", file, "--tag", "b", "--json"]);
    assert_eq!(stdout(&out).lines().count(), 1);
    // A bad name in a list is a usage error.
    assert_eq!(
        pounds(&["log", "dump", file, "--level", "warn,loud"])
            .status
            .code(),
        Some(2)
    );
    // The same selection when following.
    let out = pounds_within(
        &[
            "log",
            "follow",
            file,
            "--from-start",
            "--count",
            "2",
            "--level",
            "warn",
        ],
        std::time::Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(messages(&stdout(&out)), ["warn", "error"]);
    let out = pounds_within(
        &[
            "log",
            "follow",
            file,
            "--from-start",
            "--count",
            "2",
            "--tag",
            "b",
            "--tag",
            "t-trace",
        ],
        std::time::Duration::from_secs(30),
    );
    assert_eq!(messages(&stdout(&out)), ["trace", "tagged"]);
}

#[test]
fn log_dump_and_follow_n_show_the_last_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("last.plog");
    let file = path_str(&file);
    for i in 1..=6 {
        assert!(
            pounds(&["log", "write", file, &format!("old{i}")])
                .status
                .success()
        );
    }
    let out = pounds(&["log", "dump", file, "-n", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(messages(&stdout(&out)), ["old4", "old5", "old6"]);
    let out = pounds(&["log", "dump", file, "--lines", "100", "--json"]);
    assert_eq!(stdout(&out).lines().count(), 6);
    let out = pounds(&["log", "dump", file, "-n", "0"]);
    assert_eq!(stdout(&out), "");
    // The last N of the selected records.
    let levels = dir.path().join("levels.plog");
    let levels = path_str(&levels);
    log_of_every_level(levels);
    let out = pounds(&["log", "dump", levels, "-n", "1", "--level", "warn"]);
    assert_eq!(messages(&stdout(&out)), ["error"]);

    // follow: the last N, then what is written next.
    let out = pounds_within(
        &["log", "follow", file, "-n", "2", "--count", "2"],
        std::time::Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(messages(&stdout(&out)), ["old5", "old6"]);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args(["log", "follow", file, "-n", "2", "--count", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while follower.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the follower hung");
        assert!(pounds(&["log", "write", file, "live"]).status.success());
    }
    let out = follower.wait_with_output().unwrap();
    let shown = messages(&stdout(&out));
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert_eq!(shown[2], "live", "{shown:?}");
    assert_eq!(
        pounds(&["log", "follow", file, "-n", "2", "--from-start"])
            .status
            .code(),
        Some(2)
    );
}

/// A log of 16 one-block records' room holding records `m0..m39`: ids 0..=23 were lapped.
fn lapped_log(file: &str) {
    small_log(file);
    let lines: String = (0..40).map(|i| format!("m{i}\n")).collect();
    let out = pounds_with_stdin(&["log", "write", file], &lines);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn log_dump_reports_records_lost_to_laps_and_strict_exits_three() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lapped.plog");
    let file = path_str(&file);
    lapped_log(file);

    // Nothing was lost from the oldest on.
    let out = pounds(&["log", "dump", file, "--strict"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().count(), 16);
    // Ids 0..=23 were asked for and are gone: said on stderr, in text mode.
    let out = pounds(&["log", "dump", file, "--after-id", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "pounds: lost 24 records (ids 0..23) to wrap-around\n"
    );
    assert_eq!(messages(&stdout(&out))[0], "m24");
    // In the stream, in JSON mode, before the records that follow the gap.
    let out = pounds(&["log", "dump", file, "--after-id", "0", "--json"]);
    assert_eq!(stderr(&out), "");
    let json = stdout(&out);
    assert_eq!(
        json.lines().next(),
        Some(r#"{"lost":24,"from":0,"to":23}"#),
        "{json}"
    );
    assert_eq!(json.lines().count(), 17);
    // --strict: exit status 3 when anything was lost.
    let out = pounds(&["log", "dump", file, "--after-id", "0", "--strict"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 16);
}

#[cfg(unix)]
#[test]
fn log_follow_reports_a_lap_in_the_stream() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("follow-lapped.plog");
    let file = path_str(&file);
    small_log(file);
    assert!(pounds(&["log", "write", file, "first"]).status.success());
    let mut follower = spawn_pounds(&[
        "log",
        "follow",
        file,
        "--from-start",
        "--json",
        "--count",
        "3",
        "--strict",
    ]);
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains(r#""message":"first""#), "{first}");
    // Stop the follower, lap it, let it go on.
    signal(follower.id(), "-STOP");
    let many: String = (0..40).map(|i| format!("m{i}\n")).collect();
    assert!(
        pounds_with_stdin(&["log", "write", file], &many)
            .status
            .success()
    );
    signal(follower.id(), "-CONT");
    let lost = lines.next().unwrap().unwrap();
    assert!(
        lost.starts_with(r#"{"lost":"#) && lost.contains(r#""from":1,"to":"#),
        "{lost}"
    );
    assert!(lines.next().unwrap().unwrap().contains(r#""message":"m"#));
    assert!(lines.next().unwrap().unwrap().contains(r#""message":"m"#));
    drop(lines);
    let status = follower.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}

/// Waits for `child` at most `limit`; kills it and fails the test if it is still running.
fn wait_within(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn follow_and_dump_into_a_closed_pipe_exit_zero_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipe.plog");
    let file = path_str(&file);
    for word in ["one", "two"] {
        assert!(pounds(&["log", "write", file, word]).status.success());
    }
    // `follow | head -1`: the reader goes away after one line, and no record comes after.
    let mut follower = spawn_pounds(&["log", "follow", file, "-n", "1"]);
    let mut head = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut line = String::new();
    head.read_line(&mut line).unwrap();
    assert!(line.trim_end().ends_with("two"), "{line}");
    drop(head);
    let out = wait_within(follower, std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // The same when the next record comes before the follower noticed.
    let mut follower = spawn_pounds(&["log", "follow", file]);
    drop(follower.stdout.take());
    assert!(pounds(&["log", "write", file, "three"]).status.success());
    let out = wait_within(follower, std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // `dump | head -1` of a log larger than a pipe's buffer.
    let many: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    assert!(
        pounds_with_stdin(&["log", "write", file], &many)
            .status
            .success()
    );
    let mut dump = spawn_pounds(&["log", "dump", file]);
    drop(dump.stdout.take());
    let out = wait_within(dump, std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn log_write_from_stdin_skips_bad_lines_and_writes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stdin.plog");
    let file = path_str(&file);
    small_log(file);
    let mut input = b"ok1\n\xff\xfe not utf-8\nok2\r\n".to_vec();
    input.extend_from_slice(&[b'x'; 5000]);
    input.extend_from_slice(b"\nok3");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args(["log", "write", file])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("line 2") && lines[0].contains("UTF-8"),
        "{err}"
    );
    assert!(
        lines[1].contains("line 4") && lines[1].contains("5000 bytes"),
        "{err}"
    );
    assert!(lines[2].starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        messages(&stdout(&pounds(&["log", "dump", file]))),
        ["ok1", "ok2", "ok3"]
    );
}

/// `pounds ARGS` with the colour variables set as given and every other one removed.
fn pounds_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pounds"));
    command.args(args);
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM"] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn log_dump_colours_by_level_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("colour.plog");
    let file = path_str(&file);
    log_of_every_level(file);
    let coloured = |out: &Output| stdout(out).contains('\u{1b}');

    // A pipe: no colour unless asked.
    let out = pounds_env(&["log", "dump", file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!coloured(&out), "{}", stdout(&out));
    // Asked: errors and warnings stand out, info stays plain, and each line ends reset.
    let out = pounds_env(&["log", "dump", file, "--color=always"], &[]);
    let text = stdout(&out);
    let line = |word: &str| {
        text.lines()
            .find(|line| line.contains(word))
            .unwrap()
            .to_string()
    };
    assert!(line("ERROR").starts_with('\u{1b}'), "{text}");
    assert!(line("WARN").starts_with('\u{1b}'), "{text}");
    assert!(line("ERROR").ends_with("error\u{1b}[0m"), "{text}");
    assert!(!line("t-info").contains('\u{1b}'), "{text}");
    assert_ne!(line("ERROR"), line("WARN").replace("WARN", "ERROR"));
    // auto follows the terminal conventions: CLICOLOR_FORCE forces it, NO_COLOR wins.
    assert!(coloured(&pounds_env(
        &["log", "dump", file, "--color", "auto"],
        &[("CLICOLOR_FORCE", "1")]
    )));
    assert!(!coloured(&pounds_env(
        &["log", "dump", file],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    )));
    assert!(!coloured(&pounds_env(
        &["log", "dump", file, "--color=never"],
        &[("CLICOLOR_FORCE", "1")]
    )));
    // JSON is never coloured; a bad choice is a usage error.
    assert!(!coloured(&pounds_env(
        &["log", "dump", file, "--json", "--color=always"],
        &[]
    )));
    assert_eq!(
        pounds_env(&["log", "dump", file, "--color=sometimes"], &[])
            .status
            .code(),
        Some(2)
    );
    // follow colours the same way.
    let out = pounds_env(
        &[
            "log",
            "follow",
            file,
            "--from-start",
            "--count",
            "5",
            "--color=always",
        ],
        &[],
    );
    assert!(coloured(&out), "{}", stdout(&out));
}

#[test]
fn completions_and_man_page_come_from_the_grammar() {
    for (shell, mark) in [
        ("bash", "_pounds()"),
        ("zsh", "#compdef pounds"),
        ("fish", "complete -c pounds"),
    ] {
        let out = pounds(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(mark), "{shell}: {script}");
        // The subcommands and their options are in it.
        assert!(
            script.contains("follow") && script.contains("strict"),
            "{shell}"
        );
    }
    assert_eq!(pounds(&["completions", "tcsh"]).status.code(), Some(2));
    let out = pounds(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let roff = stdout(&out);
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH pounds"),
        "{roff}"
    );
    assert!(
        roff.contains(".SH NAME") && roff.contains(".SH SUBCOMMANDS"),
        "{roff}"
    );
    // One page per subcommand too, for `man pounds-log-follow`.
    let out = pounds(&["man", "log", "follow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let roff = stdout(&out);
    assert!(
        roff.contains("pounds\\-log\\-follow") && roff.contains("strict"),
        "{roff}"
    );
    assert_eq!(pounds(&["man", "log", "nope"]).status.code(), Some(2));
}

#[test]
fn log_stat_shows_the_ids_held_the_records_and_the_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stat.plog");
    let file_str = path_str(&file);
    lapped_log(file_str);
    {
        let log = pounds::log::Log::open(&file).unwrap();
        log.save_cursor("shipper", 30).unwrap();
        log.save_cursor("archiver", 5).unwrap();
    }
    let out = pounds(&["log", "stat", file_str, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    for part in [
        r#""oldest_id":24"#,
        r#""next_id":40"#,
        r#""newest_id":39"#,
        r#""records":16"#,
        r#"{"name":"shipper","position":30,"behind":10,"lapped":false}"#,
        r#"{"name":"archiver","position":5,"behind":35,"lapped":true}"#,
    ] {
        assert!(json.contains(part), "{part} missing in {json}");
    }
    let out = pounds(&["log", "stat", file_str]);
    let text = stdout(&out);
    assert!(
        text.contains("ids held:     24..39 (16 records readable)"),
        "{text}"
    );
    assert!(text.contains("shipper at 30, 10 behind"), "{text}");
    assert!(text.contains("archiver at 5, 35 behind (lapped)"), "{text}");

    // An empty log: nothing held, no cursors.
    let empty = dir.path().join("empty.plog");
    let empty = path_str(&empty);
    assert!(pounds(&["log", "create", empty]).status.success());
    let json = stdout(&pounds(&["log", "stat", empty, "--json"]));
    assert!(
        json.contains(r#""newest_id":null"#)
            && json.contains(r#""records":0"#)
            && json.contains(r#""cursors":[]"#),
        "{json}"
    );
    let text = stdout(&pounds(&["log", "stat", empty]));
    assert!(text.contains("ids held:     none (empty)"), "{text}");
    assert!(text.contains("cursors:      none"), "{text}");
}

/// The value of the JSON string field `field` in the object `line` (no escapes in it).
fn json_str<'a>(line: &'a str, field: &str) -> &'a str {
    let key = format!("\"{field}\":\"");
    let start = line.find(&key).unwrap() + key.len();
    let len = line[start..].find('"').unwrap();
    &line[start..start + len]
}

#[test]
fn log_dump_and_follow_filter_by_time_and_after_id() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("times.plog");
    let file = path_str(&file);
    for word in ["a", "b", "c"] {
        assert!(pounds(&["log", "write", file, word]).status.success());
    }
    let json = stdout(&pounds(&["log", "dump", file, "--json"]));
    let lines: Vec<&str> = json.lines().collect();
    let b_time = json_str(lines[1], "time").to_string();
    let shown = |args: &[&str]| {
        let mut all = vec!["log", "dump", file];
        all.extend_from_slice(args);
        let out = pounds(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
        messages(&stdout(&out)).join(",")
    };
    // RFC 3339, as the records print their times, with a fraction and with an offset.
    assert_eq!(shown(&["--since", &b_time]), "b,c");
    assert_eq!(shown(&["--until", &b_time]), "a,b");
    assert_eq!(shown(&["--since", &b_time, "--until", &b_time]), "b");
    assert_eq!(shown(&["--since", "1970-01-01T01:00:00+01:00"]), "a,b,c");
    assert_eq!(shown(&["--since", "2999-01-01T00:00:00.5-02:00"]), "");
    assert_eq!(shown(&["--until", "2000-01-01"]), "");
    // Relative times, as journalctl takes them.
    assert_eq!(shown(&["--since", "10 min ago"]), "a,b,c");
    assert_eq!(shown(&["--since", "yesterday", "--until", "now"]), "a,b,c");
    assert_eq!(shown(&["--until", "2 hours ago"]), "");
    assert_eq!(shown(&["--since", "now"]), "");
    // With the other filters and -n.
    assert_eq!(shown(&["--since", "1 hour ago", "-n", "2"]), "b,c");
    assert_eq!(
        shown(&["--until", &b_time, "-n", "1", "--level", "info"]),
        "b"
    );
    // --after-id takes the id --since took.
    let b_id = lines[1]["{\"id\":".len()..]
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(shown(&["--after-id", &b_id]), "b,c");
    // --since ID still works, with a one-line note.
    let out = pounds(&["log", "dump", file, "--since", &b_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(messages(&stdout(&out)).join(","), "b,c");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("deprecated") && err.contains("--after-id"),
        "{err}"
    );
    // Not a time: a usage error.
    for bad in ["next tuesday", "2026-13-01T00:00:00Z", "10 parsecs ago"] {
        let out = pounds(&["log", "dump", file, "--since", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        let out = pounds(&["log", "follow", file, "--until", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    let out = pounds(&["log", "dump", file, "--since", "1", "--after-id", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // follow --since TIME starts at the records written since then, wherever they are.
    let limit = std::time::Duration::from_secs(20);
    let out = pounds_within(
        &[
            "log",
            "follow",
            file,
            "--since",
            "1 hour ago",
            "--count",
            "3",
        ],
        limit,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(messages(&stdout(&out)).join(","), "a,b,c");
    // follow --until stops once the clock is past it (with a second's slack).
    let out = pounds_within(
        &["log", "follow", file, "--from-start", "--until", &b_time],
        limit,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(messages(&stdout(&out)).join(","), "a,b");
    let out = pounds_within(
        &["log", "follow", file, "--after-id", &b_id, "--count", "2"],
        limit,
    );
    assert_eq!(messages(&stdout(&out)).join(","), "b,c");
}

/// The position of cursor `name` in `log stat --json`, if there is one.
fn cursor_position(file: &str, name: &str) -> Option<u64> {
    let out = pounds(&["log", "stat", file, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    let key = format!("{{\"name\":\"{name}\",\"position\":");
    let start = json.find(&key)? + key.len();
    json[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Writes records `m{first}` .. `m{end - 1}` to a log of 64 blocks in two lanes (created if
/// need be), lane 1 twice as often as lane 0, so that the lanes' ids run apart.
fn write_laned(file: &Path, seqs: std::ops::Range<u32>) {
    let log = pounds::log::LogOptions::new()
        .blocks(64)
        .block_size(64)
        .lanes(2)
        .open(file)
        .unwrap();
    for seq in seqs {
        let lane = usize::from(seq % 3 != 0);
        let message = format!("m{seq}");
        pounds::log::testing::write_in_lane(
            &log,
            lane,
            pounds::log::Level::Info,
            "t",
            message.as_bytes(),
        )
        .unwrap();
    }
}

fn laned_messages(seqs: std::ops::Range<u32>) -> Vec<String> {
    seqs.map(|seq| format!("m{seq}")).collect()
}

/// On a laned log, `follow --cursor` runs resume each lane where the last run left it: three
/// runs print every record once, in the merged order.
#[test]
fn log_follow_cursor_on_a_laned_log_reads_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("laned.plog");
    write_laned(&file, 0..12);
    let file = path_str(&file);
    let limit = std::time::Duration::from_secs(20);
    let mut printed = Vec::new();
    for run in 0..3 {
        let mut args = vec!["log", "follow", file, "--cursor", "r", "--count", "4"];
        if run == 0 {
            args.push("--from-start");
        }
        let out = pounds_within(&args, limit);
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        printed.extend(messages(&stdout(&out)));
    }
    assert_eq!(printed, laned_messages(0..12));
}

/// On a laned log, `export --cursor` runs ship what was written since the last, once each.
#[test]
fn log_export_on_a_laned_log_ships_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laned.plog");
    write_laned(&path, 0..12);
    let file = path_str(&path);
    let limit = std::time::Duration::from_secs(20);
    let export = || {
        let out = pounds_within(&["log", "export", file, "--cursor", "ship"], limit);
        assert!(out.status.success(), "{}", stderr(&out));
        let json = stdout(&out);
        json.lines()
            .map(|line| json_str(line, "message").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(export(), laned_messages(0..12));
    assert_eq!(export(), Vec::<String>::new());
    write_laned(&path, 12..18);
    assert_eq!(export(), laned_messages(12..18));
}

#[test]
fn log_follow_cursor_resumes_and_saves_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cursor.plog");
    let file = path_str(&file);
    for word in ["a", "b", "c"] {
        assert!(pounds(&["log", "write", file, word]).status.success());
    }
    let limit = std::time::Duration::from_secs(20);
    let follow = |args: &[&str]| {
        let mut all = vec!["log", "follow", file];
        all.extend_from_slice(args);
        let out = pounds_within(&all, limit);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    // A new cursor with --from-start: from the oldest; saved when the count is reached.
    let text = follow(&["--cursor", "r", "--from-start", "--count", "2"]);
    assert_eq!(messages(&text).join(","), "a,b");
    assert_eq!(cursor_position(file, "r"), Some(2));
    // Resumed after it (--from-start no longer matters), with the position shown.
    let text = follow(&[
        "--cursor",
        "r",
        "--from-start",
        "--count",
        "1",
        "--show-cursor",
    ]);
    assert!(text.ends_with(" c cursor=3\n"), "{text}");
    assert_eq!(cursor_position(file, "r"), Some(3));
    assert!(pounds(&["log", "write", file, "d"]).status.success());
    let text = follow(&["--cursor", "r", "--count", "1", "--show-cursor", "--json"]);
    assert!(
        text.ends_with(",\"message\":\"d\",\"cursor\":4}\n"),
        "{text}"
    );
    // A new cursor without --from-start: at the end (this follower stops 1 s after "now").
    assert_eq!(follow(&["--cursor", "fresh", "--until", "now"]), "");
    assert_eq!(cursor_position(file, "fresh"), Some(4));
    assert!(pounds(&["log", "write", file, "e"]).status.success());
    let text = follow(&["--cursor", "fresh", "--count", "1"]);
    assert_eq!(messages(&text).join(","), "e");
    // --show-cursor without --cursor; its position is what --after-id takes.
    let text = follow(&["--from-start", "--count", "1", "--show-cursor"]);
    assert!(text.ends_with(" a cursor=1\n"), "{text}");
    let text = follow(&["--after-id", "1", "--count", "1"]);
    assert_eq!(messages(&text).join(","), "b");

    // Saved when the reader of the output goes away (`follow --cursor p | head -1`).
    let mut child = spawn_pounds(&["log", "follow", file, "--cursor", "p", "--from-start"]);
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
        lines.read_line(&mut first).unwrap();
    }
    assert!(first.ends_with(" a\n"), "{first}");
    let out = wait_within(child, limit);
    assert!(out.status.success(), "{}", stderr(&out));
    let saved = cursor_position(file, "p").unwrap();
    assert!((1..=5).contains(&saved), "{saved}");

    // Bad names and files that cannot be written are one error line.
    assert_clean_error(&pounds(&["log", "follow", file, "--cursor", ""]));
    let missing = dir.path().join("missing.plog");
    assert_clean_error(&pounds(&[
        "log",
        "follow",
        path_str(&missing),
        "--cursor",
        "x",
    ]));
    let out = pounds(&["log", "follow", file, "--cursor", "x", "-n", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o444)).unwrap();
        // Root writes read-only files: the refusal can only be seen by another user.
        if std::fs::OpenOptions::new().write(true).open(file).is_err() {
            let out = pounds(&["log", "follow", file, "--cursor", "x"]);
            assert_clean_error(&out);
            assert!(stderr(&out).contains("read-write"), "{}", stderr(&out));
        }
    }
}

#[test]
fn demo_refuses_zero_writers_and_a_log_with_records() {
    for args in [["--processes", "0"], ["--threads", "0"]] {
        let out = pounds(&["demo", args[0], args[1], "--messages", "10"]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("full.plog");
    let file = path_str(&file);
    assert!(
        pounds(&["log", "write", file, "keep", "me"])
            .status
            .success()
    );
    let small = ["--processes", "1", "--threads", "1", "--messages", "1000"];
    let mut args = vec!["demo", "--file", file];
    args.extend_from_slice(&small);
    let out = pounds_within(&args, std::time::Duration::from_secs(60));
    assert_clean_error(&out);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let dump = stdout(&pounds(&["log", "dump", file]));
    assert_eq!(dump.lines().count(), 1, "{dump}");
    // With --force it runs, and its count adds up over the records already there.
    args.push("--force");
    let out = pounds_within(&args, std::time::Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn demo_temporary_log_is_in_a_new_private_directory_removed_after() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args([
            "demo",
            "--processes",
            "1",
            "--threads",
            "1",
            "--messages",
            "1000",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    let path = first
        .split(" into ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .unwrap();
    let path = Path::new(path);
    // Not a predictable name in the temporary directory itself (a symlink planted there
    // could redirect it), but a file in a directory the demo made.
    let dir = path.parent().unwrap();
    assert_ne!(dir, tmp.path(), "{first}");
    assert_eq!(dir.parent().unwrap(), tmp.path(), "{first}");
    // Removed afterwards.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "{first}");
}

/// The pids of the processes whose parent is `parent`, from /proc/*/stat.
#[cfg(target_os = "linux")]
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|ppid| ppid.parse::<u32>().ok()) == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Whether process `pid` still runs (gone, or a zombie waiting to be reaped, is not).
#[cfg(target_os = "linux")]
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[cfg(target_os = "linux")]
#[test]
fn demo_writers_die_with_the_demo_on_sigterm_and_sigint() {
    for signal in ["-TERM", "-INT"] {
        let tmp = tempfile::tempdir().unwrap();
        let mut demo = Command::new(env!("CARGO_BIN_EXE_pounds"))
            .args(["demo", "--processes", "2", "--threads", "1"])
            .args(["--messages", "1000000000"])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let children = loop {
            let children = children_of(demo.id());
            if children.len() == 2 {
                break children;
            }
            assert!(std::time::Instant::now() < deadline, "no writers started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        pounds_testkit::signal(demo.id(), signal);
        let _ = demo.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while children.iter().any(|&pid| running(pid)) {
            if std::time::Instant::now() > deadline {
                for &pid in &children {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                panic!("{signal}: writers {children:?} outlived the demo");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The `"id"` field of a JSON line.
fn json_id(line: &str) -> u64 {
    let start = line.find("\"id\":").unwrap() + 5;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn log_export_json_lines_resume_at_the_cursor_advanced_past_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.plog");
    let file = path_str(&file);
    let out = pounds_with_stdin(&["log", "write", file, "--tag", "audit"], "a\nb\nc\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let limit = std::time::Duration::from_secs(20);
    let export = || {
        let out = pounds_within(&["log", "export", file, "--cursor", "ship"], limit);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    // A new cursor: every record the ring holds, as JSON lines with their ids.
    let json = export();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 3, "{json}");
    assert_eq!(json_str(lines[0], "message"), "a");
    assert_eq!(json_str(lines[2], "tag"), "audit");
    let ids: Vec<u64> = lines.iter().map(|line| json_id(line)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert_eq!(cursor_position(file, "ship"), Some(3));
    // Resumed: nothing new, then only what was written since.
    assert_eq!(export(), "");
    let out = pounds_with_stdin(&["log", "write", file], "d\ne\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let json = export();
    let shown: Vec<&str> = json.lines().map(|line| json_str(line, "message")).collect();
    assert_eq!(shown, ["d", "e"], "{json}");
    assert_eq!(cursor_position(file, "ship"), Some(5));

    // Output that cannot be written (a full disk) is an error, and the cursor stays.
    assert!(pounds(&["log", "write", file, "f"]).status.success());
    #[cfg(target_os = "linux")]
    {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pounds"))
            .args(["log", "export", file, "--cursor", "ship"])
            .stdout(full)
            .output()
            .unwrap();
        assert_clean_error(&out);
        assert_eq!(cursor_position(file, "ship"), Some(5));
    }
    let json = export();
    assert_eq!(json_str(&json, "message"), "f", "{json}");

    // Records lapped before they were exported: an object in the stream and a line on stderr.
    let lapped = dir.path().join("lapped.plog");
    let lapped = path_str(&lapped);
    small_log(lapped);
    assert!(pounds(&["log", "write", lapped, "first"]).status.success());
    let out = pounds_within(&["log", "export", lapped, "--cursor", "ship"], limit);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    let lines: String = (0..40).map(|i| format!("m{i}\n")).collect();
    assert!(
        pounds_with_stdin(&["log", "write", lapped], &lines)
            .status
            .success()
    );
    let out = pounds_within(&["log", "export", lapped, "--cursor", "ship"], limit);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    assert!(json.starts_with("{\"lost\":"), "{json}");
    assert!(stderr(&out).contains("pounds: lost "), "{}", stderr(&out));
    assert!(json.trim_end().ends_with("\"message\":\"m39\"}"), "{json}");
}

#[test]
fn log_export_follow_writes_each_record_as_it_comes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.plog");
    let file = path_str(&file);
    assert!(pounds(&["log", "write", file, "before"]).status.success());
    let mut child = spawn_pounds(&["log", "export", file, "--cursor", "live", "--follow"]);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // One at a time: each line comes before the next record is written (no batch waits to fill).
    for word in ["before", "one", "two", "three"] {
        if word != "before" {
            assert!(pounds(&["log", "write", file, word]).status.success());
        }
        line.clear();
        lines.read_line(&mut line).unwrap();
        assert_eq!(json_str(&line, "message"), word, "{line}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cursor_position(file, "live") != Some(4) {
        assert!(std::time::Instant::now() < deadline, "cursor not saved");
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Starts `pounds log export FILE --cursor ship --follow --to relp://...` with its stderr in
/// `err`.
fn relp_exporter(file: &str, port: u16, window: u32, err: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pounds"))
        .args([
            "log", "export", file, "--cursor", "ship", "--follow", "--window",
        ])
        .arg(window.to_string())
        .arg("--to")
        .arg(format!("relp://127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(err).unwrap())
        .spawn()
        .unwrap()
}

/// The ids of the received lines, checked for what each line says of its record: written
/// with `--tag audit --level warn` as `r<id>` by process `pid_of(id)`.
fn received_ids(lines: &[String], pid_of: impl Fn(u64) -> String) -> Vec<u64> {
    lines
        .iter()
        .map(|line| {
            let id = rsyslog::record_id(line).unwrap_or_else(|| panic!("no id in {line:?}"));
            let pid = pid_of(id);
            let expected = format!("[pounds@32473 id=\"{id}\"] audit {pid} 4 r{id}");
            assert_eq!(line, &expected);
            id
        })
        .collect()
}

#[test]
fn log_export_to_rsyslog_delivers_every_record_in_order_across_kills_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ship.plog");
    let file = path_str(&file);
    // Room for every record: nothing is lapped here.
    assert!(
        pounds(&["log", "create", file, "--blocks", "262144"])
            .status
            .success()
    );
    const FIRST: u64 = 60_000;
    const TOTAL: u64 = 80_000;
    let write = |ids: std::ops::Range<u64>| {
        let lines: String = ids.map(|i| format!("r{i}\n")).collect();
        let out = pounds_with_stdin(
            &["log", "write", file, "--tag", "audit", "--level", "warn"],
            &lines,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    write(0..FIRST);
    // The writer's pid, the PROCID of the messages.
    let last_pid = || {
        let json = stdout(&pounds(&["log", "dump", file, "--json", "-n", "1"]));
        let start = json.find("\"pid\":").unwrap() + 6;
        json[start..].split(',').next().unwrap().to_string()
    };
    let first_pid = last_pid();
    let mut rsyslog = rsyslog::Rsyslog::start(dir.path());
    let window = 64;
    let limit = std::time::Duration::from_secs(120);

    // Killed with SIGKILL mid-stream, then started again: it resumes at the cursor.
    let mut exporter = relp_exporter(file, rsyslog.port, window, &dir.path().join("export-1.err"));
    rsyslog.wait_for(limit, "the first records", |lines| lines.len() >= 2_000);
    exporter.kill().unwrap();
    exporter.wait().unwrap();
    let at_kill = rsyslog.lines().len();
    let mut exporter = relp_exporter(file, rsyslog.port, window, &dir.path().join("export-2.err"));
    rsyslog.wait_for(limit, "records after the restart", |lines| {
        lines.len() >= at_kill + 2_000
    });

    // rsyslog stopped and started again under the exporter, which connects again and resends
    // what was not acknowledged; records written meanwhile follow.
    rsyslog.stop();
    let at_stop = rsyslog.lines().len();
    write(FIRST..TOTAL);
    let second_pid = last_pid();
    rsyslog.restart();
    let last = format!("id=\"{}\"", TOTAL - 1);
    rsyslog.wait_for(limit, "the last record", |lines| {
        lines.last().is_some_and(|line| line.contains(&last))
    });
    exporter.kill().unwrap();
    exporter.wait().unwrap();
    rsyslog.stop();

    let ids = received_ids(&rsyslog.lines(), |id| {
        if id < FIRST {
            first_pid.clone()
        } else {
            second_pid.clone()
        }
    });
    assert!(
        (at_kill as u64) < FIRST && (at_stop as u64) < FIRST,
        "not mid-stream: {at_kill} and {at_stop} of {TOTAL} lines at the kill and the stop"
    );
    // In order, each id once, but for the records resent after a kill or a restart: at most a
    // window of them, resent in order from the first not acknowledged.
    assert_eq!(ids[0], 0);
    let mut newest = 0;
    let mut resends = 0;
    for pair in ids.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        if after == before + 1 {
            newest = newest.max(after);
            continue;
        }
        assert!(
            after <= before && before - after < u64::from(window),
            "{before} then {after}: a gap, or more than a window resent"
        );
        resends += 1;
    }
    assert_eq!(newest, TOTAL - 1);
    assert!(
        resends <= 2,
        "{resends} resends for one kill and one restart"
    );
    assert_eq!(cursor_position(file, "ship"), Some(TOTAL));
    let err = std::fs::read_to_string(dir.path().join("export-2.err")).unwrap();
    assert!(err.contains("connecting again"), "{err}");
}

#[test]
fn log_export_to_rsyslog_reports_records_lapped_before_they_were_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lapped.plog");
    let file = path_str(&file);
    small_log(file);
    let rsyslog = rsyslog::Rsyslog::start(dir.path());
    let to = format!("relp://127.0.0.1:{}", rsyslog.port);
    let limit = std::time::Duration::from_secs(60);
    let export = || {
        let out = pounds_within(
            &["log", "export", file, "--cursor", "ship", "--to", &to],
            limit,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    assert!(
        pounds(&["log", "write", file, "--tag", "audit", "first"])
            .status
            .success()
    );
    assert_eq!(export(), "");
    let lines: String = (0..40).map(|i| format!("m{i}\n")).collect();
    assert!(
        pounds_with_stdin(&["log", "write", file, "--tag", "audit"], &lines)
            .status
            .success()
    );
    let err = export();
    assert!(err.starts_with("pounds: lost "), "{err}");
    // The export ended once everything was acknowledged: all of it was received. An
    // acknowledgement means "in rsyslog's queue", so its file may lag: wait for the last line.
    rsyslog.wait_for(limit, "the last record in rsyslog's file", |lines| {
        lines.last().is_some_and(|line| line.ends_with(" m39"))
    });
    let lines = rsyslog.lines();
    assert!(lines[0].ends_with(" first"), "{lines:?}");
    let report = &lines[1];
    assert!(
        report.contains("[pounds@32473 lost=\"") && report.contains(" pounds "),
        "{report}"
    );
    assert!(report.contains(" 4 lost "), "a warning: {report}");
    let from = rsyslog::record_id(&lines[2]).unwrap();
    let to_id = report
        .split("to=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(
        to_id.parse::<u64>().unwrap() + 1,
        from,
        "{report} then {}",
        lines[2]
    );
    assert!(lines.last().unwrap().ends_with(" m39"), "{lines:?}");
    assert_eq!(cursor_position(file, "ship"), Some(41));
}

#[test]
fn db_batch_is_one_transaction_and_get_reads_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.pdb");
    let file = path_str(&file);
    let create = [
        "db",
        "create",
        file,
        "--key-size",
        "16",
        "--value-size",
        "32",
    ];
    assert!(pounds(&create).status.success());
    let out = pounds_with_stdin(
        &["db", "batch", file],
        "put alice mount /a\nput bob mount /b\n\nput carol x\ndel carol\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 puts and 1 deletes"),
        "{}",
        stderr(&out)
    );
    let out = pounds(&["db", "get", file, "alice", "bob"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "alice\tmount /a\nbob\tmount /b\n");
    // A bad line anywhere: nothing of the batch is committed.
    let out = pounds_with_stdin(
        &["db", "batch", file],
        "put dave d\ndel alice\nfrobnicate x\n",
    );
    assert_clean_error(&out);
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was committed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&pounds(&["db", "get", file, "alice"])), "mount /a\n");
    assert_clean_error(&pounds(&["db", "get", file, "dave"]));
    // A key too long for the database, in a batch: refused whole too.
    let long = format!("put {} v\n", "k".repeat(17));
    assert_clean_error(&pounds_with_stdin(&["db", "batch", file], &long));
    // Several keys, one missing: the others print, the missing one is reported, exit 1.
    let out = pounds(&["db", "get", file, "alice", "nobody", "bob"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "alice\tmount /a\nbob\tmount /b\n");
    assert!(stderr(&out).contains("nobody"), "{}", stderr(&out));
}

#[test]
fn db_hex_keys_and_values_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hex.pdb");
    let file = path_str(&file);
    assert!(
        pounds(&["db", "create", file, "--key-size", "8", "--value-size", "8"])
            .status
            .success()
    );
    // A key holding an escape sequence that would clear the screen, and a value that is not
    // UTF-8.
    let out = pounds(&["db", "put", file, "1b5b324a", "00ff", "--hex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pounds(&["db", "get", file, "1b5b324a", "--hex"]);
    assert_eq!(stdout(&out), "00ff\n");
    let out = pounds(&["db", "list", file]);
    assert!(out.status.success());
    assert!(
        !out.stdout
            .iter()
            .any(|&b| b < 0x20 && b != b'\t' && b != b'\n'),
        "{:?}",
        out.stdout
    );
    assert_eq!(stdout(&out), "\\x1b[2J\t\\x00\\xff\n");
    let out = pounds(&["db", "list", file, "--hex"]);
    assert_eq!(stdout(&out), "1b5b324a\t00ff\n");
    let out = pounds(&["db", "list", file, "--json"]);
    assert_eq!(
        stdout(&out),
        "{\"key\":\"\\u001b[2J\",\"value\":\"\\u0000\\\\xff\"}\n"
    );
    assert_clean_error(&pounds(&["db", "put", file, "abc", "00", "--hex"]));
    assert_clean_error(&pounds(&["db", "put", file, "zz", "00", "--hex"]));
}

#[test]
fn db_backup_stat_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.pdb");
    let file = path_str(&file);
    assert!(
        pounds(&["db", "create", file, "--key-size", "8", "--value-size", "8"])
            .status
            .success()
    );
    let lines: String = (0..50).map(|i| format!("put k{i} v{i}\n")).collect();
    assert!(
        pounds_with_stdin(&["db", "batch", file], &lines)
            .status
            .success()
    );
    let copy = dir.path().join("copy.pdb");
    let copy = path_str(&copy);
    let out = pounds(&["db", "backup", file, copy]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("50 records"), "{}", stderr(&out));
    assert_clean_error(&pounds(&["db", "backup", file, copy]));
    assert_eq!(stdout(&pounds(&["db", "get", copy, "k7"])), "v7\n");
    let out = pounds(&["db", "stat", copy]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("records:     50"), "{text}");
    assert!(text.contains("commits:     1"), "{text}");
    let out = pounds(&["db", "verify", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: 50 records"),
        "{}",
        stdout(&out)
    );
    // Damage a record's bytes: verify names the problem and exits 1.
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.windows(3).position(|w| w == b"v17").unwrap();
    bytes[at] = b'w';
    std::fs::write(file, &bytes).unwrap();
    let out = pounds(&["db", "verify", file]);
    assert_clean_error(&out);
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
}

/// The first line `child` prints on stdout, waiting at most `limit` (the stdout is taken).
fn first_line_within(child: &mut std::process::Child, limit: std::time::Duration) -> String {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = send.send(line);
    });
    match receive.recv_timeout(limit) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("no line after {limit:?}");
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn log_follow_of_a_file_another_program_truncates_is_an_error_not_a_bus_error() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.plog");
    let file_str = path_str(&file);
    for (cut_to, what) in [(0, "emptied"), (4096, "ring cut off")] {
        assert!(
            pounds(&["log", "write", file_str, "before", "the", "cut"])
                .status
                .success()
        );
        let mut follower = spawn_pounds(&["log", "follow", file_str, "--from-start"]);
        // A line printed: the follower is in its loop, and then waits for the next record.
        let line = first_line_within(&mut follower, std::time::Duration::from_secs(30));
        assert!(
            line.trim_end().ends_with("before the cut"),
            "{what}: {line}"
        );
        // The promise is for a follower waiting for the next record (a cut that lands inside
        // the microseconds of header reads before each wait is the window docs/plog-format.md
        // states): cut once every thread of it sleeps.
        wait_until_asleep(follower.id(), std::time::Duration::from_secs(30));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut_to)
            .unwrap();
        let out = wait_within(follower, std::time::Duration::from_secs(30));
        assert_eq!(out.status.signal(), None, "{what}: killed by a signal");
        assert_clean_error(&out);
        let err = stderr(&out);
        assert!(
            err.contains("truncated") && err.contains(file_str),
            "{what}: {err}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}

#[cfg(target_os = "linux")]
/// Waits until every thread of process `pid` has been seen sleeping (`S` in
/// `/proc/PID/task/*/stat`) in three reads in a row; fails after `limit`.
fn wait_until_asleep(pid: u32, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let mut in_a_row = 0;
    while in_a_row < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never went to sleep"
        );
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let asleep = tasks.filter_map(Result::ok).all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(") ")?.1.to_string();
                    after.chars().next()
                })
                == Some('S')
        });
        in_a_row = if asleep { in_a_row + 1 } else { 0 };
        std::thread::yield_now();
    }
}

/// The number after `"field":` in the JSON object `line`.
fn json_number(line: &str, field: &str) -> f64 {
    let key = format!("\"{field}\":");
    let start = line.find(&key).unwrap() + key.len();
    line[start..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn log_stat_shows_the_write_rate_over_the_lap_and_the_blocks_that_fail_validation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health.plog");
    let file_str = path_str(&file);
    lapped_log(file_str);
    // The ring holds ids 24..=39: the rate is over the time between the first and the last.
    let dump = stdout(&pounds(&["log", "dump", file_str, "--json"]));
    // Integers: nanoseconds since the epoch do not fit an f64 exactly.
    let times: Vec<u64> = dump
        .lines()
        .map(|l| {
            let start = l.find("\"time_ns\":").unwrap() + 10;
            l[start..].split(',').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(times.len(), 16, "{dump}");
    let seconds = (times[15] - times[0]) as f64 / 1e9;
    assert!(seconds > 0.0, "{dump}");
    let stat = stdout(&pounds(&["log", "stat", file_str, "--json"]));
    let close = |found: f64, expected: f64| (found - expected).abs() <= expected * 1e-6;
    let rate = json_number(&stat, "records_per_second");
    assert!(
        close(rate, 15.0 / seconds),
        "{rate} vs {}: {stat}",
        15.0 / seconds
    );
    // One block a record here.
    assert!(
        close(json_number(&stat, "blocks_per_second"), 15.0 / seconds),
        "{stat}"
    );
    assert!(close(json_number(&stat, "over_seconds"), seconds), "{stat}");
    assert!(stat.contains(r#""invalid_blocks":0"#), "{stat}");
    let text = stdout(&pounds(&["log", "stat", file_str]));
    assert!(
        text.contains("write rate:   ") && text.contains(" records/s"),
        "{text}"
    );
    assert!(text.contains("health:       every block checks"), "{text}");

    // Damage record 30 (slot 14): its crc fails, and the pass over the ring says so.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4096 + 14 * 128 + 8] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let stat = stdout(&pounds(&["log", "stat", file_str, "--json"]));
    assert!(
        stat.contains(r#""invalid_blocks":1"#) && stat.contains(r#""records":15"#),
        "{stat}"
    );
    let text = stdout(&pounds(&["log", "stat", file_str]));
    assert!(
        text.contains("health:       1 block fails validation"),
        "{text}"
    );

    // Fewer than two records: no rate to tell.
    let empty = dir.path().join("empty.plog");
    let empty = path_str(&empty);
    assert!(pounds(&["log", "write", empty, "alone"]).status.success());
    let stat = stdout(&pounds(&["log", "stat", empty, "--json"]));
    assert!(stat.contains(r#""rate":null"#), "{stat}");
    let text = stdout(&pounds(&["log", "stat", empty]));
    assert!(
        text.contains("write rate:   unknown (fewer than two records held)"),
        "{text}"
    );
}

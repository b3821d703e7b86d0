//! A real rsyslogd for the tests: imrelp on a free loopback port, omfile into the test's
//! folder, with its own configuration, pid file and work directory, in the foreground (`-n`),
//! opening no system socket. A test that needs it fails when rsyslogd is missing.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long rsyslogd may take to start listening, or to stop.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The rsyslogd program: on the PATH or in the sbin folders (not on a user's PATH).
pub(crate) fn rsyslogd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("rsyslogd"))
        .find(|program| program.is_file())
        .unwrap_or_else(|| {
            panic!(
                "rsyslogd not found: this test needs a real rsyslog with RELP \
                 (apt-get install -y rsyslog rsyslog-relp; .ci/run installs them)"
            )
        })
}

/// A port on the loopback that nothing listens on now.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A running rsyslogd writing what it receives over RELP into `output`, one line a message:
/// `STRUCTURED-DATA APP-NAME PROCID SEVERITY MSG`.
pub(crate) struct Rsyslog {
    child: Option<Child>,
    /// The RELP port on 127.0.0.1.
    pub(crate) port: u16,
    /// The file the messages go into (appended to across restarts).
    pub(crate) output: PathBuf,
    dir: PathBuf,
    starts: u32,
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` on a free port, and waits until the port takes connections.
    pub(crate) fn start(dir: &Path) -> Rsyslog {
        let mut rsyslog = Rsyslog {
            child: None,
            port: free_port(),
            output: dir.join("received.log"),
            dir: dir.to_path_buf(),
            starts: 0,
        };
        rsyslog.restart();
        rsyslog
    }

    /// Starts it again on the same port (after [`Self::stop`]).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is running");
        self.starts += 1;
        let work = self.dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let config = self.dir.join("rsyslog.conf");
        // The input's own ruleset: rsyslogd's messages about itself stay out of the output.
        std::fs::write(
            &config,
            format!(
                "global(workDirectory=\"{work}\")\n\
                 module(load=\"imrelp\")\n\
                 template(name=\"shipped\" type=\"string\" \
                   string=\"%structured-data% %app-name% %procid% %syslogseverity% %msg%\\n\")\n\
                 ruleset(name=\"relp\") {{\n\
                   action(type=\"omfile\" file=\"{output}\" template=\"shipped\")\n\
                 }}\n\
                 input(type=\"imrelp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"relp\")\n",
                work = work.display(),
                output = self.output.display(),
                port = self.port,
            ),
        )
        .unwrap();
        let log =
            std::fs::File::create(self.dir.join(format!("rsyslogd-{}.log", self.starts))).unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rsyslogd exited ({status}): {}", self.own_log());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd not listening: {}",
                self.own_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What rsyslogd printed in its last start.
    fn own_log(&self) -> String {
        let path = self.dir.join(format!("rsyslogd-{}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Stops it with SIGTERM (it writes out what it has queued) and waits for its exit.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        pounds_testkit::signal(child.id(), "-TERM");
        let deadline = Instant::now() + START_LIMIT;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "rsyslogd did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The lines received so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.output) {
            file.read_to_string(&mut text).unwrap();
        }
        // A line being written has no newline yet.
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        text[..complete].lines().map(str::to_string).collect()
    }

    /// Waits until `done` holds for the lines received, at most `limit`.
    pub(crate) fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let lines = self.lines();
            if done(&lines) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; {} lines received, the last {:?}",
                lines.len(),
                lines.last()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The record id of a received line (from `[pounds@32473 id="N"]`), if it carries one.
pub(crate) fn record_id(line: &str) -> Option<u64> {
    let start = line.find("[pounds@32473 id=\"")? + 18;
    line[start..].split('"').next()?.parse().ok()
}

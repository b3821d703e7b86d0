//! Process helpers for the tests of the layers above (`fork`, a file-size limit), which need
//! `unsafe` and so live in the one crate allowed it. Not part of the API.

use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

/// Forks this process; the child runs `child` and leaves with `_exit` and its return code (no
/// destructors, no atexit handlers: the parent's are not the child's). Returns the child's pid
/// in the parent.
///
/// The child of a multithreaded process has only the forking thread, and any lock another
/// thread held at the fork stays held in it; glibc's allocator copes, but `child` should do no
/// more than the test needs.
///
/// # Errors
/// The `fork` error.
pub fn fork_and_run(child: impl FnOnce() -> i32) -> std::io::Result<u32> {
    // SAFETY: fork has no memory-safety preconditions of its own; what the child may do is the
    // caller's contract above. The child never returns from this function: it calls `_exit`.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            let code = child();
            // SAFETY: _exit ends the process at once; nothing after it runs.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid as u32),
    }
}

/// Waits for child `pid` up to `timeout`. `None` when it had not ended by then: it is then
/// killed (SIGKILL) and reaped, so that a hung child fails a test rather than hanging it.
///
/// # Errors
/// The `waitpid` error.
pub fn wait_child(pid: u32, timeout: Duration) -> std::io::Result<Option<ChildExit>> {
    let pid = pid as libc::pid_t;
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, a live local.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if rc == pid {
            return Ok(Some(if libc::WIFSIGNALED(status) {
                ChildExit::Signal(libc::WTERMSIG(status))
            } else {
                ChildExit::Code(libc::WEXITSTATUS(status))
            }));
        }
        if Instant::now() >= deadline {
            // SAFETY: signals our own child, which has not been reaped (rc was 0), so the pid
            // is still its own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; a blocking wait reaps the killed child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Limits the size of any file this process writes or extends to `bytes` (`RLIMIT_FSIZE`, soft
/// and hard limit alike, so it cannot be raised again) and ignores `SIGXFSZ`, so that growing a
/// file past the limit fails with `EFBIG` instead of killing the process: a full disk for one
/// process. For a child process made for one test, before it starts threads of its own.
///
/// # Errors
/// The `setrlimit` error.
pub fn limit_file_size(bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: `signal` with `SIG_IGN` installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // SAFETY: `setrlimit` only reads the struct passed by reference, a live local.
    if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

//! What every Unix shares: probing a process by pid, and this process's pid kept fresh across
//! `fork`. Used by both `os/linux.rs` and the other Unixes' `os/fallback.rs`.

/// `kill(pid, 0)`: probes for the process without sending a signal.
pub(crate) fn process_state(pid: u32) -> crate::ProcessState {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return crate::ProcessState::Unknown;
    };
    // SAFETY: signal 0 sends nothing; the call only checks that `pid` exists and may be
    // signalled. It touches no memory of ours.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc == 0 {
        return crate::ProcessState::Alive;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => crate::ProcessState::Dead,
        Some(libc::EPERM) => crate::ProcessState::Alive,
        _ => crate::ProcessState::Unknown,
    }
}

/// The cached process id; 0 until the first call.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static ATFORK: std::sync::Once = std::sync::Once::new();

extern "C" fn refresh_pid_in_child() {
    // Runs in the child right after fork, single-threaded: getpid is async-signal-safe.
    // SAFETY: getpid has no preconditions and touches no memory.
    let pid = unsafe { libc::getpid() };
    PID.store(pid as u32, std::sync::atomic::Ordering::Relaxed);
}

/// This process's id, cached; a `pthread_atfork` child handler refreshes it after a fork.
pub(crate) fn current_pid() -> u32 {
    use std::sync::atomic::Ordering;
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    ATFORK.call_once(|| {
        // SAFETY: the handler is a plain `extern "C" fn` with no captured state that lives for
        // the whole program; registering it has no other precondition. If registration fails
        // (ENOMEM), the cache is never refreshed after a fork: the id below is still right for
        // this process.
        unsafe {
            libc::pthread_atfork(None, None, Some(refresh_pid_in_child));
        }
        PID.store(std::process::id(), Ordering::Relaxed);
    });
    PID.load(Ordering::Relaxed)
}

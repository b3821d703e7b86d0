//! Whether another process still lives: what a lock-free protocol in shared memory needs to
//! tell a dead owner of a shared word from one that is only slow.

/// What [`process_state`] learned of a process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// A process with this id exists (it may be another process that reused the id of one that
    /// died: ids are recycled).
    Alive,
    /// No process with this id exists in this process's pid namespace.
    Dead,
    /// The operating system could not say (an unsupported platform, or an error other than
    /// "no such process"). Callers must treat it as alive.
    Unknown,
}

/// Whether a process with id `pid` exists, as seen from this process.
///
/// On Unix this is `kill(pid, 0)`: `ESRCH` is [`ProcessState::Dead`], success or `EPERM` (it
/// exists, owned by another user) [`ProcessState::Alive`]. Ids are those of this process's pid
/// namespace: a process in another namespace (another container sharing the file) may show as
/// dead, or as some unrelated process, so protocols that act on [`ProcessState::Dead`] must be
/// used by processes of one namespace. On Windows and other platforms it answers
/// [`ProcessState::Unknown`]. Id 0 is never a process here and answers `Unknown`.
#[must_use]
pub fn process_state(pid: u32) -> ProcessState {
    if pid == 0 {
        return ProcessState::Unknown;
    }
    crate::os::process_state(pid)
}

/// This process's id, at the cost of an atomic load: cached at the first call and refreshed in
/// the child of every `fork` (by a `pthread_atfork` handler on Unix), so that a forked child that
/// goes on using an inherited mapping stamps its own id, not its parent's.
#[inline]
#[must_use]
pub fn current_pid() -> u32 {
    crate::os::current_pid()
}

/// The processor this thread runs on now, or `None` where the platform does not say (it may
/// have moved by the time the caller uses the answer: a hint for spreading work over cores,
/// such as choosing a log's lane, never a fact to rely on).
///
/// On Linux this is `sched_getcpu` (glibc reads it from the thread's `rseq` area or the
/// vDSO: no system call). Elsewhere `None`.
#[inline]
#[must_use]
pub fn current_cpu() -> Option<u32> {
    crate::os::current_cpu()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_dead() {
        assert_eq!(process_state(std::process::id()), ProcessState::Alive);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // Reaped: the id is free (until the kernel hands it out again, which it does only
        // after cycling through the rest of the pid space).
        assert_eq!(process_state(pid), ProcessState::Dead);
        assert_eq!(process_state(0), ProcessState::Unknown);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn current_cpu_is_a_processor_of_this_machine() {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let cpu = current_cpu().expect("Linux says which processor runs a thread");
        // A cpuset may hide some processors, so the number is checked against the
        // machine's configured ones (sysconf), which bound every processor number.
        // SAFETY: sysconf takes a constant and only reads.
        let configured = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        assert!(configured >= cpus as i64);
        assert!(i64::from(cpu) < configured, "{cpu} of {configured}");
    }

    #[test]
    fn current_pid_is_this_process() {
        assert_eq!(current_pid(), std::process::id());
        assert_eq!(current_pid(), std::process::id());
    }
}

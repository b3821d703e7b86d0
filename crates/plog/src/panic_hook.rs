//! A panic hook that leaves a crashing service's last words in its flight recorder.

use std::sync::Arc;

use crate::{Level, Log};

/// The tag of the records [`install_panic_hook`] writes.
pub const PANIC_TAG: &str = "panic";

/// Installs a panic hook that writes every panic to `log` as an error record (tag
/// [`PANIC_TAG`]): the message, where it happened and on which thread, before the hook that was
/// installed before it runs (by default, the one that prints to stderr and may abort). The
/// record is in the mapping at once, so it survives the process dying right after, as every
/// record does; it is on disk after the next flush.
///
/// A message too long for one record is cut at a character boundary. A panic inside the write
/// itself (none is known) would be a panic in a panic hook, which aborts the process.
///
/// ```
/// # fn main() -> Result<(), plog::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let log = std::sync::Arc::new(plog::Log::open(dir.path().join("service.plog"))?);
/// plog::install_panic_hook(std::sync::Arc::clone(&log));
/// let _ = std::thread::Builder::new()
///     .name("worker".into())
///     .spawn(|| panic!("out of cheese"))
///     .unwrap()
///     .join();
/// # let _ = std::panic::take_hook();
/// let last = log.reader().last().unwrap();
/// assert_eq!((last.level, last.tag.as_str()), (plog::Level::Error, "panic"));
/// assert!(last.message().contains("out of cheese") && last.message().contains("worker"));
/// # Ok(()) }
/// ```
pub fn install_panic_hook(log: Arc<Log>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic payload that is not a string)");
        let location = info.location().map_or_else(
            || "an unknown place".to_owned(),
            |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
        );
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let text = format!("thread '{name}' panicked at {location}: {message}");
        let max = log.max_message(PANIC_TAG.len());
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // A hook has nowhere to report its own failure; the previous hook still runs.
        let _ = log.write(Level::Error, PANIC_TAG, &text[..end]);
        previous(info);
    }));
}

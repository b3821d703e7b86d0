//! The command's errors: each layer's typed error, plus the few the command adds.

use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Log(#[from] pounds::log::Error),
    #[error(transparent)]
    Db(#[from] pounds::db::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("no such key: {0:?}")]
    MissingKey(String),
    #[error("{0}")]
    Demo(String),
    #[error("batch: {0}; nothing was committed")]
    Batch(String),
    #[error("not hexadecimal bytes (an even number of digits 0-9, a-f): {0:?}")]
    Hex(String),
    #[error("--cursor {name}: cannot open {file} read-write to save the cursor in it: {error}")]
    Cursor {
        name: String,
        file: String,
        #[source]
        error: pounds::log::Error,
    },
    #[error("{target}: {error}")]
    Relp {
        target: String,
        #[source]
        error: crate::relp::RelpError,
    },
    #[error("{skipped} of {lines} lines skipped (see above); the others were written")]
    Skipped { skipped: u64, lines: u64 },
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// The error and its sources on one line: `outer: inner: innermost`, each said once.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            let _ = write!(line, ": {text}");
        }
        source = cause.source();
    }
    line
}

/// Whether the error comes from writing into a closed pipe, at any depth of its chain.
pub(crate) fn is_broken_pipe(error: &CliError) -> bool {
    // `#[error(transparent)]` hands on the inner error's source, not the inner error itself:
    // look at the wrapped error first.
    let first: &(dyn std::error::Error + 'static) = match error {
        CliError::Io(io) => io,
        CliError::Log(log) => log,
        other => other,
    };
    let mut current = Some(first);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        current = error.source();
    }
    false
}

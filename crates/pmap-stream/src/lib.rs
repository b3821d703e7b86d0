//! `pmap-stream`: the standard I/O traits over a file mapping, and a growable mmap append
//! writer.
//!
//! A mapping already is the file's bytes in memory, so a stream over it needs no buffer of its
//! own: a read or write is one bounds check and a `memcpy`, with no system call. What a stream
//! adds is a position and the rules at the end of the mapping, and those are the design:
//!
//! - [`MapStream`] is *fixed* (its end is the mapping's end; a write that does not fit is
//!   refused whole and nothing of it is written) or *growable* (a write past the end reserves
//!   room by doubling, and the stream keeps its own logical end, a high-water mark, because the
//!   mapped file is then longer than the data). A growable stream trims the file back to that
//!   mark on [`MapStream::finish`] and on drop, so no zero tail is left behind. Reads stop at
//!   the logical end. It implements `Read`, `Write`, `Seek` and `BufRead` and behaves like
//!   `std::io::Cursor<Vec<u8>>` (growable) or `Cursor<&mut [u8]>` (fixed, except that a short
//!   write is an error instead).
//! - [`with_stream`] opens a file, runs a closure on the stream and closes it, surfacing the
//!   errors from closing, like Lisp's `with-mapping-stream`.
//! - [`AppendWriter`] is the append-only writer for logs and bulk output: default room of
//!   10 MiB, doubling growth, `flush` syncs what was appended since the last flush, `finish` and
//!   drop trim the file.
//! - [`LineSink`] is the log file sink shared by threads: each line reserved by an atomic add
//!   and copied whole (never interleaved, no lock on the way), pre-sized and doubled, flushed
//!   on demand or on a timer, trimmed on close, and cut back to whole lines after a crash;
//!   it rolls by size or by time ([`Roll`]), keeping the newest N rolled files. It is an `io::Write` for the `log` ecosystem and, with the feature `tracing`, a
//!   `tracing_subscriber::fmt::MakeWriter`.
//!
//! Errors are one typed [`Error`]; inside the I/O traits it travels as the inner error of an
//! `io::Error` and [`Error::from_io`] takes it back. `docs/pmap-stream.md` holds the growth and
//! trim rules in full.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("data.bin");
//! use std::io::{Read, Seek, SeekFrom, Write};
//! use pmap_stream::{Error, MapStream, StreamOptions};
//!
//! // A growable stream: writing past the end grows the file, finishing trims it.
//! let mut stream = MapStream::open(&path)?;
//! stream.write_all(b"hello, world")?;
//! stream.seek(SeekFrom::Start(7))?;
//! let mut word = String::new();
//! stream.read_to_string(&mut word)?;
//! assert_eq!(word, "world");
//! assert_eq!(stream.finish()?, 12);
//! assert_eq!(std::fs::read(&path)?, b"hello, world");
//!
//! // A fixed stream over the same 12 bytes refuses a write that does not fit, writing nothing.
//! let mut fixed = MapStream::fixed(pmap::Map::open(&path)?);
//! fixed.seek(SeekFrom::Start(10))?;
//! let refused = fixed.write(b"!!!").unwrap_err();
//! assert!(matches!(Error::from_io(refused, "write", &path), Error::NoRoom { .. }));
//! assert_eq!(fixed.as_slice(), b"hello, world");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod append;
mod error;
mod line_sink;
mod options;
mod roll;
mod stream;

pub use crate::append::{AppendOptions, AppendWriter};
pub use crate::error::{Error, Result};
pub use crate::line_sink::{LineSink, LineSinkOptions};
pub use crate::options::{StreamOptions, with_stream};
pub use crate::roll::{Roll, RollStep};
pub use crate::stream::MapStream;

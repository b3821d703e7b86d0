//! `plog`: under construction. See `docs/` and the workspace README for what this layer will
//! hold; it exports nothing yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

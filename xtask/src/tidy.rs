//! `cargo xtask tidy`: the conventions of ARCHITECTURE.md, checked over the source tree.
//!
//! Each check is a function of a file's path and text, so that the unit tests below run it on
//! small examples; [`run`] walks the tree, applies them all and reports every violation as
//! `path:line: [check] message`. The checks:
//!
//! - `doc`: every `.rs` file under `crates/`, `xtask/` and `benches/` opens with a `//!` doc
//!   line (its first non-empty line; not after `#![...]` attributes).
//! - `layering`: each crate's `[dependencies]` (and `[target.*.dependencies]`; not
//!   dev-dependencies) name only the crates of ours below it ([`ALLOWED_DEPS`]), and never a
//!   dev-only crate ([`DEV_ONLY`]: the test kit), which is for `[dev-dependencies]` alone.
//! - `unsafe`: no `unsafe {`, `unsafe fn`, `unsafe impl`, `unsafe trait` or `unsafe extern`
//!   outside `crates/pmap`, tests and benches included, in code (comments and string literals
//!   are skipped by a small lexer). [`UNSAFE_EXEMPT`] names the one file that cannot comply.
//! - `host-endian`: no `to_ne_bytes`/`from_ne_bytes` anywhere: the file formats are
//!   little-endian. A use whose host order is the point (the bytes of a native word in memory,
//!   never of a file format) carries the marker `tidy:host-endian` in a comment on its line or
//!   in a comment line just before it, saying why.
//! - `model-only`: a dependency of [`MODEL_ONLY_DEPS`] (loom) appears in a crate's manifest only
//!   in a `[target.'cfg(loom)'.dependencies]` or `[target.'cfg(loom)'.dev-dependencies]`
//!   section, so that a normal build never compiles it.
//! - `format-doc`: the header offsets in `docs/plog-format.md` and `docs/pblockdb-format.md`
//!   equal the `..._OFF`/`OFF_...` constants of the crates' `format.rs` ([`FORMAT_FIELDS`]).
//!
//! Violations listed in [`PENDING_FIXES`] are printed as warnings and do not fail the run.

use std::fmt;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Doc,
    Layering,
    Unsafe,
    HostEndian,
    FormatDoc,
    ModelOnly,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Doc => "doc",
            Check::Layering => "layering",
            Check::Unsafe => "unsafe",
            Check::HostEndian => "host-endian",
            Check::FormatDoc => "format-doc",
            Check::ModelOnly => "model-only",
        })
    }
}

/// One broken convention: where, which check, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Relative to the workspace root, with `/` separators.
    pub(crate) path: String,
    /// 1-based.
    pub(crate) line: usize,
    pub(crate) check: Check,
    pub(crate) message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: [{}] {}",
            self.path, self.line, self.check, self.message
        )
    }
}

fn violation(path: &str, line: usize, check: Check, message: impl Into<String>) -> Violation {
    Violation {
        path: path.to_string(),
        line,
        check,
        message: message.into(),
    }
}

/// Violations in files this change could not edit (other engineers were working on them),
/// reported as warnings until they are fixed. This list must shrink to empty: whoever fixes a
/// file removes its entry in the same commit (an entry that no longer matches a violation fails
/// the run), and nothing is ever added to it.
pub(crate) const PENDING_FIXES: &[(&str, Check)] = &[];

/// Files allowed `unsafe` outside `crates/pmap`, with the reason. Keep it to what no safe
/// wrapper can cover.
pub(crate) const UNSAFE_EXEMPT: &[(&str, &str)] = &[(
    "benches/benches/pblockdb.rs",
    "heed's `EnvOpenOptions::open` and `flags` are `unsafe fn`s: LMDB, the peer this bench \
     measures against, cannot be opened without them",
)];

/// Crates from outside that only the model-checking build (`--cfg loom`, `cargo xtask loom`) may
/// use, with the reason: each only under `[target.'cfg(loom)'.*dependencies]` (check
/// `model-only`).
pub(crate) const MODEL_ONLY_DEPS: &[(&str, &str)] = &[(
    "loom",
    "the model checker of the protocol kernels: pmap implements `pmap::word` for its atomics, \
     plog's and pblockdb's `loom_models` run the kernels with them",
)];

/// The crates of ours each crate may depend on (normal dependencies). `None`: any.
pub(crate) const ALLOWED_DEPS: &[(&str, Option<&[&str]>)] = &[
    ("pmap", Some(&[])),
    ("pmap-stream", Some(&["pmap"])),
    ("plog", Some(&["pmap"])),
    ("pblockdb", Some(&["pmap"])),
    ("pounds", Some(&["pmap", "pmap-stream", "plog", "pblockdb"])),
    (
        "pounds-cli",
        Some(&["pounds", "pmap", "pmap-stream", "plog", "pblockdb"]),
    ),
    ("pounds-testkit", Some(&[])),
    (
        "pounds-fuzz-targets",
        Some(&["pmap", "pmap-stream", "plog", "pblockdb"]),
    ),
    ("pounds-benches", None),
    ("xtask", None),
];

/// Crates of ours that only tests and benches may use: allowed in any crate's
/// `[dev-dependencies]`, never in its `[dependencies]` (not even where [`ALLOWED_DEPS`] allows
/// anything), so that no build of a pounds crate links them.
pub(crate) const DEV_ONLY: &[&str] = &["pounds-testkit"];

/// A header field documented in a format doc, and the constant that must hold its offset:
/// (doc, field as the table names it, code file, constant, index into an array constant).
pub(crate) struct FormatField {
    pub(crate) doc: &'static str,
    pub(crate) field: &'static str,
    pub(crate) code: &'static str,
    pub(crate) constant: &'static str,
    pub(crate) index: Option<usize>,
}

const PLOG_DOC: &str = "docs/plog-format.md";
const PLOG_CODE: &str = "crates/plog/src/format.rs";
const PBD_DOC: &str = "docs/pblockdb-format.md";
const PBD_CODE: &str = "crates/pblockdb/src/format.rs";

const fn field(
    doc: &'static str,
    field: &'static str,
    code: &'static str,
    constant: &'static str,
    index: Option<usize>,
) -> FormatField {
    FormatField {
        doc,
        field,
        code,
        constant,
        index,
    }
}

pub(crate) const FORMAT_FIELDS: &[FormatField] = &[
    field(PLOG_DOC, "next", PLOG_CODE, "NEXT_OFF", None),
    field(PLOG_DOC, "wake", PLOG_CODE, "WAKE_OFF", None),
    field(PLOG_DOC, "cursors", PLOG_CODE, "CURSORS_OFF", None),
    field(PLOG_DOC, "user area", PLOG_CODE, "USER_AREA_OFF", None),
    field(PBD_DOC, "version", PBD_CODE, "OFF_VERSION", None),
    field(PBD_DOC, "header_size", PBD_CODE, "OFF_HEADER_SIZE", None),
    field(PBD_DOC, "key_size", PBD_CODE, "OFF_KEY_SIZE", None),
    field(PBD_DOC, "value_size", PBD_CODE, "OFF_VALUE_SIZE", None),
    field(PBD_DOC, "slot_size", PBD_CODE, "OFF_SLOT_SIZE", None),
    field(
        PBD_DOC,
        "user_area_size",
        PBD_CODE,
        "OFF_USER_AREA_SIZE",
        None,
    ),
    field(PBD_DOC, "geometry_crc", PBD_CODE, "OFF_GEOMETRY_CRC", None),
    field(PBD_DOC, "generation", PBD_CODE, "OFF_GENERATION", None),
    field(
        PBD_DOC,
        "table descriptor 0",
        PBD_CODE,
        "OFF_TABLES",
        Some(0),
    ),
    field(
        PBD_DOC,
        "table descriptor 1",
        PBD_CODE,
        "OFF_TABLES",
        Some(1),
    ),
    field(PBD_DOC, "commit", PBD_CODE, "OFF_COMMIT", None),
    field(PBD_DOC, "history_head", PBD_CODE, "OFF_HISTORY_HEAD", None),
    field(
        PBD_DOC,
        "ring_generation",
        PBD_CODE,
        "OFF_RING_GENERATION",
        None,
    ),
    field(PBD_DOC, "ring descriptor 0", PBD_CODE, "OFF_RINGS", Some(0)),
    field(PBD_DOC, "ring descriptor 1", PBD_CODE, "OFF_RINGS", Some(1)),
    field(PBD_DOC, "count record 0", PBD_CODE, "OFF_COUNTS", Some(0)),
    field(PBD_DOC, "count record 1", PBD_CODE, "OFF_COUNTS", Some(1)),
    field(PBD_DOC, "writer", PBD_CODE, "OFF_WRITER", None),
    field(PBD_DOC, "user_version", PBD_CODE, "OFF_USER_VERSION", None),
    field(
        PBD_DOC,
        "user area copy 0",
        PBD_CODE,
        "OFF_USER_AREA",
        Some(0),
    ),
    field(
        PBD_DOC,
        "user area copy 1",
        PBD_CODE,
        "OFF_USER_AREA",
        Some(1),
    ),
];

/// The marker that allows a host-endian conversion on its line or the next.
const HOST_ENDIAN_MARKER: &str = "tidy:host-endian";

/// Runs every check over the tree at `root`; fails if any violation is not pending.
pub(crate) fn run(root: &Path) -> Result<()> {
    let mut found = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches"] {
        collect_rs(&root.join(dir), &mut files)?;
    }
    files.sort();
    for file in &files {
        let rel = relative(root, file);
        let text = std::fs::read_to_string(file).map_err(|e| format!("{rel}: {e}"))?;
        found.extend(check_doc(&rel, &text));
        found.extend(check_unsafe(&rel, &text));
        found.extend(check_host_endian(&rel, &text));
    }
    for manifest in manifests(root)? {
        let rel = relative(root, &manifest);
        let text = std::fs::read_to_string(&manifest).map_err(|e| format!("{rel}: {e}"))?;
        found.extend(check_layering(&rel, &text));
        found.extend(check_model_only(&rel, &text));
    }
    found.extend(check_format_docs(&|rel: &str| {
        std::fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"))
    }));

    let (pending, failing): (Vec<_>, Vec<_>) = found.iter().partition(|v| is_pending(v));
    for v in &pending {
        eprintln!("warning (PENDING_FIXES): {v}");
    }
    let stale: Vec<_> = PENDING_FIXES
        .iter()
        .filter(|(path, check)| !found.iter().any(|v| v.path == *path && v.check == *check))
        .collect();
    for (path, check) in &stale {
        eprintln!(
            "{path}: [{check}] passes now: remove its entry from PENDING_FIXES in xtask/src/tidy.rs"
        );
    }
    for v in &failing {
        eprintln!("{v}");
    }
    if failing.is_empty() && stale.is_empty() {
        eprintln!(
            "tidy: {} files checked, no violations ({} pending, see PENDING_FIXES)",
            files.len(),
            pending.len()
        );
        Ok(())
    } else {
        Err(format!(
            "tidy: {} violations, {} stale PENDING_FIXES entries",
            failing.len(),
            stale.len()
        )
        .into())
    }
}

fn is_pending(v: &Violation) -> bool {
    PENDING_FIXES
        .iter()
        .any(|(path, check)| v.path == *path && v.check == *check)
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `.rs` file under `dir`, skipping `target` and hidden directories.
fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_rs(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `crates/*/Cargo.toml`, `benches/Cargo.toml`, `xtask/Cargo.toml`.
fn manifests(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("crates"))? {
        let manifest = entry?.path().join("Cargo.toml");
        if manifest.is_file() {
            out.push(manifest);
        }
    }
    out.sort();
    for dir in ["benches", "xtask"] {
        let manifest = root.join(dir).join("Cargo.toml");
        if manifest.is_file() {
            out.push(manifest);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// doc

/// The first non-empty line must start with `//!`.
pub(crate) fn check_doc(path: &str, text: &str) -> Option<Violation> {
    match text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty())
    {
        Some((_, line)) if line.trim_start().starts_with("//!") => None,
        Some((n, line)) => Some(violation(
            path,
            n + 1,
            Check::Doc,
            format!(
                "the file must open with a `//!` line saying what it is for (before any \
                 `#![...]`), found `{}`",
                shorten(line.trim())
            ),
        )),
        None => Some(violation(
            path,
            1,
            Check::Doc,
            "empty file: it must open with a `//!` line",
        )),
    }
}

fn shorten(line: &str) -> String {
    let mut out: String = line.chars().take(60).collect();
    if out.len() < line.len() {
        out.push_str("...");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// code lexing, for the unsafe and host-endian checks

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    /// Nesting depth of `/* */`.
    Block(u32),
    /// Inside `"..."`.
    Str,
    /// Inside a raw string closed by `"` and this many `#`.
    Raw(usize),
}

/// The code of each line, with comments removed and string and char literal contents blanked
/// (a string literal becomes `""`). Naive but enough to keep prose and test inputs out of the
/// searches: it knows `//`, nested `/* */`, `"..."` with escapes, `r#"..."#`, `'x'` and
/// `'\n'` (a `'` followed by anything else is a lifetime).
pub(crate) fn code_lines(text: &str) -> Vec<String> {
    let mut state = State::Code;
    let mut out = Vec::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut code = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match state {
                State::Code => {
                    if c == '/' && next == Some('/') {
                        break;
                    } else if c == '/' && next == Some('*') {
                        state = State::Block(1);
                        i += 2;
                        continue;
                    } else if c == '"' {
                        code.push('"');
                        state = State::Str;
                    } else if c == 'r'
                        && (next == Some('"') || next == Some('#'))
                        && !prev_is_ident(&chars, i)
                    {
                        let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                        if chars.get(i + 1 + hashes) == Some(&'"') {
                            code.push('"');
                            state = State::Raw(hashes);
                            i += 2 + hashes;
                            continue;
                        }
                        code.push(c);
                    } else if c == '\'' {
                        // 'x' or '\...' is a char literal; anything else a lifetime.
                        if next == Some('\\') {
                            let end = chars
                                .get(i + 3..)
                                .and_then(|r| r.iter().position(|&q| q == '\''));
                            code.push_str("' '");
                            i = end.map_or(chars.len(), |e| i + 3 + e + 1);
                            continue;
                        } else if chars.get(i + 2) == Some(&'\'') {
                            code.push_str("' '");
                            i += 3;
                            continue;
                        }
                        code.push(c);
                    } else {
                        code.push(c);
                    }
                }
                State::Block(depth) => {
                    if c == '*' && next == Some('/') {
                        state = if depth == 1 {
                            code.push(' ');
                            State::Code
                        } else {
                            State::Block(depth - 1)
                        };
                        i += 2;
                        continue;
                    } else if c == '/' && next == Some('*') {
                        state = State::Block(depth + 1);
                        i += 2;
                        continue;
                    }
                }
                State::Str => {
                    if c == '\\' {
                        i += 2;
                        continue;
                    } else if c == '"' {
                        code.push('"');
                        state = State::Code;
                    }
                }
                State::Raw(hashes) => {
                    if c == '"'
                        && chars.len() - (i + 1) >= hashes
                        && chars[i + 1..].iter().take(hashes).all(|&h| h == '#')
                    {
                        code.push('"');
                        state = State::Code;
                        i += 1 + hashes;
                        continue;
                    }
                }
            }
            i += 1;
        }
        out.push(code);
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Whether `code` holds the keyword `word` (not part of a longer identifier) followed by `{`
/// or, after a space, by one of the keywords `then`.
fn has_keyword_then(code: &str, word: &str, then: &[&str]) -> bool {
    code.match_indices(word).any(|(start, _)| {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        if code[..start].chars().next_back().is_some_and(ident) {
            return false;
        }
        let after = &code[start + word.len()..];
        let rest = after.trim_start();
        rest.starts_with('{')
            || (rest.len() < after.len()
                && then.iter().any(|t| {
                    rest.strip_prefix(t)
                        .is_some_and(|tail| !tail.chars().next().is_some_and(ident))
                }))
    })
}

// ---------------------------------------------------------------------------------------------
// unsafe

/// No `unsafe` block, function, impl, trait or extern block outside `crates/pmap`.
pub(crate) fn check_unsafe(path: &str, text: &str) -> Vec<Violation> {
    if path.starts_with("crates/pmap/") || UNSAFE_EXEMPT.iter().any(|(p, _)| *p == path) {
        return Vec::new();
    }
    code_lines(text)
        .iter()
        .enumerate()
        .filter(|(_, code)| has_keyword_then(code, "unsafe", &["fn", "impl", "trait", "extern"]))
        .map(|(n, _)| {
            violation(
                path,
                n + 1,
                Check::Unsafe,
                "`unsafe` outside crates/pmap: only pmap holds unsafe code; add a safe primitive \
                 to pmap (tests: pmap::testing) and call it",
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// host-endian

/// No `to_ne_bytes`/`from_ne_bytes` unless marked `tidy:host-endian` on the line or in a
/// comment line just before it.
pub(crate) fn check_host_endian(path: &str, text: &str) -> Vec<Violation> {
    let raw: Vec<&str> = text.lines().collect();
    code_lines(text)
        .iter()
        .enumerate()
        .filter(|(_, code)| {
            ["to_ne_bytes", "from_ne_bytes"]
                .iter()
                .any(|w| has_word(code, w))
        })
        .filter(|(n, _)| {
            let marked = |i: usize| raw.get(i).is_some_and(|l| l.contains(HOST_ENDIAN_MARKER));
            let comment = |i: usize| raw.get(i).is_some_and(|l| l.trim_start().starts_with("//"));
            !(marked(*n) || (*n > 0 && comment(n - 1) && marked(n - 1)))
        })
        .map(|(n, _)| {
            violation(
                path,
                n + 1,
                Check::HostEndian,
                "host-endian byte conversion: the formats are little-endian, use \
                 `to_le_bytes`/`from_le_bytes` (or, where the bytes of a native word in memory \
                 are the point, say so with a `tidy:host-endian` comment)",
            )
        })
        .collect()
}

fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        code[..at].chars().next_back().is_none_or(|c| !ident(c))
            && code[at + word.len()..]
                .chars()
                .next()
                .is_none_or(|c| !ident(c))
    })
}

// ---------------------------------------------------------------------------------------------
// layering

/// The crate's normal dependencies on crates of ours are all below it.
pub(crate) fn check_layering(path: &str, text: &str) -> Vec<Violation> {
    let Some((name, deps)) = parse_manifest(text) else {
        return vec![violation(
            path,
            1,
            Check::Layering,
            "no `[package]` `name` found",
        )];
    };
    let Some((_, allowed)) = ALLOWED_DEPS
        .iter()
        .find(|(crate_name, _)| *crate_name == name)
    else {
        return vec![violation(
            path,
            1,
            Check::Layering,
            format!(
                "crate `{name}` is not in ALLOWED_DEPS in xtask/src/tidy.rs: add it with the \
                 crates below it (and describe it in ARCHITECTURE.md)"
            ),
        )];
    };
    let mut found: Vec<Violation> = deps
        .iter()
        .filter(|(dep, _)| DEV_ONLY.contains(&dep.as_str()))
        .map(|(dep, line)| {
            violation(
                path,
                *line,
                Check::Layering,
                format!(
                    "`{name}` has `{dep}` as a normal dependency; it is dev-only: move it to \
                     `[dev-dependencies]`"
                ),
            )
        })
        .collect();
    let Some(allowed) = allowed else {
        return found;
    };
    let ours: Vec<&str> = ALLOWED_DEPS.iter().map(|(n, _)| *n).collect();
    found.extend(
        deps.iter()
            .filter(|(dep, _)| {
                ours.contains(&dep.as_str())
                    && !allowed.contains(&dep.as_str())
                    && !DEV_ONLY.contains(&dep.as_str())
            })
            .map(|(dep, line)| {
                violation(
                    path,
                    *line,
                    Check::Layering,
                    format!(
                        "`{name}` depends on `{dep}`, which is beside or above it; `{name}` may \
                     depend only on {}",
                        if allowed.is_empty() {
                            "none of ours".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )
            }),
    );
    found
}

/// Every [`MODEL_ONLY_DEPS`] entry named in a dependency section of a manifest that is not a
/// `cfg(loom)` target section.
pub(crate) fn check_model_only(path: &str, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut header = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            header = h.trim().to_string();
            continue;
        }
        let deps_section = header.ends_with("dependencies");
        let loom_section = header.starts_with("target.'cfg(loom)'.")
            || header.starts_with("target.\"cfg(loom)\".");
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let dep = unquote(key.split('.').next().unwrap_or(key));
        if deps_section
            && !loom_section
            && header != "workspace.dependencies"
            && MODEL_ONLY_DEPS.iter().any(|(name, _)| *name == dep)
        {
            out.push(violation(
                path,
                n + 1,
                Check::ModelOnly,
                format!(
                    "`{dep}` is for the model-checking build only: list it under \
                     `[target.'cfg(loom)'.dependencies]` (or `.dev-dependencies`), not `[{header}]`"
                ),
            ));
        }
    }
    out
}

/// The package name and the normal dependencies (name as the package is called, 1-based
/// line). A line parser for the manifests of this workspace: `[dependencies]`,
/// `[target.'...'.dependencies]` and `[dependencies.NAME]` sections; `name = ...`,
/// `name.workspace = true`, and `package = "..."` renames inside an inline table.
pub(crate) fn parse_manifest(text: &str) -> Option<(String, Vec<(String, usize)>)> {
    #[derive(PartialEq)]
    enum Section {
        Package,
        Deps,
        Other,
    }
    let mut section = Section::Other;
    let mut name = None;
    let mut deps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.trim();
            section = if header == "package" {
                Section::Package
            } else if header == "dependencies" || is_target_deps(header) {
                Section::Deps
            } else if let Some(dep) = header.strip_prefix("dependencies.") {
                deps.push((unquote(dep).to_string(), n + 1));
                Section::Other
            } else {
                Section::Other
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        match section {
            Section::Package if key == "name" => name = Some(unquote(value.trim()).to_string()),
            Section::Deps => {
                let dep = key.split('.').next().unwrap_or(key).trim();
                let renamed = value
                    .split_once("package")
                    .and_then(|(_, rest)| rest.trim_start().strip_prefix('='))
                    .and_then(|rest| rest.trim_start().strip_prefix('"'))
                    .and_then(|rest| rest.split('"').next());
                deps.push((renamed.unwrap_or(unquote(dep)).to_string(), n + 1));
            }
            _ => {}
        }
    }
    name.map(|name| (name, deps))
}

fn is_target_deps(header: &str) -> bool {
    header.starts_with("target.") && header.ends_with(".dependencies")
}

fn unquote(text: &str) -> &str {
    text.trim().trim_matches('"').trim_matches('\'')
}

// ---------------------------------------------------------------------------------------------
// format-doc

/// Every [`FORMAT_FIELDS`] entry: the offset in its doc's `## Header` table equals its constant.
/// `read` gives a file's text by its path relative to the root.
pub(crate) fn check_format_docs(
    read: &dyn Fn(&str) -> std::result::Result<String, String>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for f in FORMAT_FIELDS {
        let doc = match read(f.doc) {
            Ok(text) => text,
            Err(e) => {
                out.push(violation(f.doc, 1, Check::FormatDoc, e));
                continue;
            }
        };
        let code = match read(f.code) {
            Ok(text) => text,
            Err(e) => {
                out.push(violation(f.code, 1, Check::FormatDoc, e));
                continue;
            }
        };
        let Some((doc_line, doc_off)) = header_table_offset(&doc, f.field) else {
            out.push(violation(
                f.doc,
                1,
                Check::FormatDoc,
                format!(
                    "no row for field `{}` in the `## Header` table (xtask/src/tidy.rs \
                     FORMAT_FIELDS expects one)",
                    f.field
                ),
            ));
            continue;
        };
        let Some((code_line, code_off)) = const_value(&code, f.constant, f.index) else {
            out.push(violation(
                f.code,
                1,
                Check::FormatDoc,
                format!(
                    "no constant `{}` with a literal value (xtask/src/tidy.rs FORMAT_FIELDS \
                     expects one)",
                    f.constant
                ),
            ));
            continue;
        };
        if doc_off != code_off {
            let constant = match f.index {
                Some(i) => format!("{}[{i}]", f.constant),
                None => f.constant.to_string(),
            };
            out.push(violation(
                f.doc,
                doc_line,
                Check::FormatDoc,
                format!(
                    "field `{}` is at offset {doc_off} here, but `{constant}` is {code_off} \
                     ({}:{code_line})",
                    f.field, f.code
                ),
            ));
        }
    }
    out
}

/// In the table of the `## Header` section, the offset (first cell) of the row whose third
/// cell is `field` (backticks ignored), and the row's line.
pub(crate) fn header_table_offset(doc: &str, field: &str) -> Option<(usize, u64)> {
    let mut in_header = false;
    for (n, line) in doc.lines().enumerate() {
        if let Some(title) = line.strip_prefix("## ") {
            in_header = title.trim() == "Header";
            continue;
        }
        if !in_header || !line.trim_start().starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if cells.len() >= 3 && cells[2].trim().replace('`', "") == field {
            return parse_int(cells[0].trim()).map(|off| (n + 1, off));
        }
    }
    None
}

/// The value of `const NAME: T = EXPR;` (or element `index` of `[A, B, ...]`), and its line.
/// `EXPR` is a sum of integer literals and other such constants (offsets derived from each
/// other, as the format modules write them), possibly spread over several lines.
pub(crate) fn const_value(code: &str, name: &str, index: Option<usize>) -> Option<(usize, u64)> {
    const_value_within(code, name, index, 8)
}

fn const_value_within(
    code: &str,
    name: &str,
    index: Option<usize>,
    depth: u32,
) -> Option<(usize, u64)> {
    let needle = format!("const {name}:");
    let start = code.find(&needle)?;
    let line = code[..start].matches('\n').count() + 1;
    let rest = &code[start + needle.len()..];
    let value = rest.split_once('=')?.1;
    let value = value.split_once(';')?.0.trim();
    let expr = match index {
        None => value.to_string(),
        Some(i) => {
            let items = value.strip_prefix('[')?.strip_suffix(']')?;
            items.split(',').nth(i)?.trim().to_string()
        }
    };
    let mut sum = 0u64;
    for term in expr.split('+') {
        let term = term.trim();
        let value = match parse_int(term) {
            Some(v) => v,
            None if depth > 0
                && term
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
            {
                const_value_within(code, term, None, depth - 1)?.1
            }
            None => return None,
        };
        sum = sum.checked_add(value)?;
    }
    Some((line, sum))
}

fn parse_int(text: &str) -> Option<u64> {
    let text = text.replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_check_wants_a_doc_line_first() {
        assert_eq!(check_doc("a.rs", "//! What this is.\nfn f() {}\n"), None);
        assert_eq!(
            check_doc("a.rs", "\n\n   //! Indented, after blanks.\n"),
            None
        );
        let v = check_doc("a.rs", "use std::io;\n").expect("a violation");
        assert_eq!((v.path.as_str(), v.line, v.check), ("a.rs", 1, Check::Doc));
        assert!(v.message.contains("use std::io;"), "{v}");
        // Attributes first are not allowed, nor a plain or outer doc comment.
        let v = check_doc("a.rs", "\n#![allow(missing_docs)]\n//! Doc.\n").expect("violation");
        assert_eq!(v.line, 2);
        assert!(check_doc("a.rs", "// A comment.\n").is_some());
        assert!(check_doc("a.rs", "/// Item doc.\nfn f() {}\n").is_some());
        assert!(check_doc("a.rs", "").is_some());
        assert!(check_doc("a.rs", "  \n").is_some());
    }

    #[test]
    fn lexer_drops_comments_and_literals() {
        let lines = code_lines(
            "let a = \"unsafe { x }\"; // unsafe fn\n\
             /* unsafe impl\n still in */ b(); /* one /* nested */ still */ c();\n\
             let s = r#\"unsafe { \"quoted\" }\"#; d('\"'); e('\\''); f::<'a>();\n\
             let m = \"multi\n unsafe { line\n\"; g();\n",
        );
        assert_eq!(lines[0], "let a = \"\"; ");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "  b();   c();");
        assert_eq!(lines[3], "let s = \"\"; d(' '); e(' '); f::<'a>();");
        assert_eq!(lines[4], "let m = \"");
        assert_eq!(lines[5], "");
        assert_eq!(lines[6], "\"; g();");
    }

    #[test]
    fn unsafe_is_flagged_outside_pmap_only() {
        let code = "//! Doc.\nfn f() {\n    // unsafe { commented out }\n    let s = \"unsafe fn\";\n    unsafe { g() };\n}\nunsafe fn h() {}\nunsafe impl Send for X {}\npub unsafe trait T {}\nunsafe extern \"C\" {}\nlet x = unsafe{ y };\n";
        let lines: Vec<usize> = check_unsafe("crates/plog/src/a.rs", code)
            .iter()
            .map(|v| v.line)
            .collect();
        assert_eq!(lines, [5, 7, 8, 9, 10, 11]);
        assert!(check_unsafe("crates/pmap/src/a.rs", code).is_empty());
        assert_eq!(check_unsafe("crates/pblockdb/tests/a.rs", code).len(), 6);
        // Mentions that are not unsafe code.
        let fine = "#![allow(unsafe_code)]\nfn not_unsafe_fn() {}\nlet unsafe_impl = 1;\n/// `unsafe { }` in a doc\n";
        assert!(check_unsafe("benches/src/lib.rs", fine).is_empty());
        // The exempt file.
        assert!(check_unsafe(UNSAFE_EXEMPT[0].0, code).is_empty());
    }

    #[test]
    fn host_endian_needs_a_marker() {
        let code = "let a = x.to_ne_bytes();\nlet b = u32::from_ne_bytes(y);\nlet c = x.to_le_bytes();\n// to_ne_bytes in a comment\nlet d = \"from_ne_bytes\";\n";
        let lines: Vec<usize> = check_host_endian("crates/plog/src/format.rs", code)
            .iter()
            .map(|v| v.line)
            .collect();
        assert_eq!(lines, [1, 2]);
        let marked = "// tidy:host-endian: a native word's bytes in memory\nlet a = x.to_ne_bytes();\nlet b = x.to_ne_bytes(); // tidy:host-endian: same\nlet c = x.to_ne_bytes();\n";
        let lines: Vec<usize> = check_host_endian("crates/pmap/src/shared.rs", marked)
            .iter()
            .map(|v| v.line)
            .collect();
        assert_eq!(lines, [4]);
        assert!(check_host_endian("a.rs", "fn my_to_ne_bytes_helper() {}\n").is_empty());
    }

    #[test]
    fn manifests_are_parsed_for_normal_dependencies() {
        let manifest = "[package]\nname = \"plog\" # a comment\n\n[features]\nlog = [\"dep:log\"]\n\n[dependencies]\npmap.workspace = true\nthiserror = \"2\"\nalias = { package = \"pblockdb\", path = \"../pblockdb\" }\n\n[target.'cfg(unix)'.dependencies]\nplog-extra = { workspace = true }\n\n[dependencies.pounds]\npath = \"../pounds\"\n\n[dev-dependencies]\npounds-cli.workspace = true\n";
        let (name, deps) = parse_manifest(manifest).expect("a package");
        assert_eq!(name, "plog");
        assert_eq!(
            deps,
            [
                ("pmap".to_string(), 8),
                ("thiserror".to_string(), 9),
                ("pblockdb".to_string(), 10),
                ("plog-extra".to_string(), 13),
                ("pounds".to_string(), 15),
            ]
        );
        assert_eq!(parse_manifest("[dependencies]\npmap = \"1\"\n"), None);
    }

    #[test]
    fn loom_is_a_dependency_of_loom_builds_only() {
        let fine = "[package]\nname = \"pmap\"\n[target.'cfg(loom)'.dependencies]\nloom.workspace = true\n[target.'cfg(loom)'.dev-dependencies]\nloom = \"0.7\"\n";
        assert!(check_model_only("crates/pmap/Cargo.toml", fine).is_empty());
        let bad = "[package]\nname = \"plog\"\n[dev-dependencies]\nloom.workspace = true\n[target.'cfg(unix)'.dependencies]\nloom = \"0.7\"\n";
        let found = check_model_only("crates/plog/Cargo.toml", bad);
        assert_eq!(found.iter().map(|v| v.line).collect::<Vec<_>>(), vec![4, 6]);
        assert!(found.iter().all(|v| v.check == Check::ModelOnly));
    }

    #[test]
    fn layering_allows_only_crates_below() {
        let plog = "[package]\nname = \"plog\"\n[dependencies]\npmap.workspace = true\ncrc32c = \"0.6\"\n[dev-dependencies]\npounds.workspace = true\n";
        assert!(check_layering("crates/plog/Cargo.toml", plog).is_empty());

        let beside = "[package]\nname = \"plog\"\n[dependencies]\npmap.workspace = true\npblockdb.workspace = true\npounds = { workspace = true }\n";
        let found = check_layering("crates/plog/Cargo.toml", beside);
        let lines: Vec<usize> = found.iter().map(|v| v.line).collect();
        assert_eq!(lines, [5, 6]);
        assert!(
            found[0].message.contains("`plog` depends on `pblockdb`"),
            "{}",
            found[0]
        );

        let pmap = "[package]\nname = \"pmap\"\n[dependencies]\npmap-stream.workspace = true\n";
        assert_eq!(check_layering("crates/pmap/Cargo.toml", pmap).len(), 1);
        let cli = "[package]\nname = \"pounds-cli\"\n[dependencies]\npounds.workspace = true\nplog.workspace = true\n";
        assert!(check_layering("crates/pounds-cli/Cargo.toml", cli).is_empty());
        let up = "[package]\nname = \"pounds\"\n[dependencies]\npounds-cli.workspace = true\n";
        assert_eq!(check_layering("crates/pounds/Cargo.toml", up).len(), 1);
        let xtask = "[package]\nname = \"xtask\"\n[dependencies]\npounds-cli.workspace = true\n";
        assert!(check_layering("xtask/Cargo.toml", xtask).is_empty());

        // The test kit: a dev-dependency of anyone, a normal dependency of no one.
        let dev = "[package]\nname = \"pounds-benches\"\n[dependencies]\npmap.workspace = true\n[dev-dependencies]\npounds-testkit.workspace = true\n";
        assert!(check_layering("benches/Cargo.toml", dev).is_empty());
        let normal = "[package]\nname = \"pounds-benches\"\n[dependencies]\npounds-testkit.workspace = true\n";
        let found = check_layering("benches/Cargo.toml", normal);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("dev-only"), "{}", found[0]);
        let below = "[package]\nname = \"pblockdb\"\n[dependencies]\npmap.workspace = true\n[target.'cfg(unix)'.dependencies]\npounds-testkit = { path = \"../testkit\" }\n";
        let found = check_layering("crates/pblockdb/Cargo.toml", below);
        assert_eq!(found.iter().map(|v| v.line).collect::<Vec<_>>(), [6]);
        assert!(found[0].message.contains("dev-only"), "{}", found[0]);

        let unknown = "[package]\nname = \"pnew\"\n[dependencies]\n";
        let found = check_layering("crates/pnew/Cargo.toml", unknown);
        assert!(
            found[0].message.contains("not in ALLOWED_DEPS"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn format_offsets_are_compared_with_the_constants() {
        let doc = "# x\n## Header\n\n| offset | size | field | meaning |\n| --- | --- | --- | --- |\n| 64 | 8 | `next` | counter |\n| 2048 | 1024 | user area | free |\n\n## Records\n| 0 | 8 | `wake` | not the header's |\n";
        assert_eq!(header_table_offset(doc, "next"), Some((6, 64)));
        assert_eq!(header_table_offset(doc, "user area"), Some((7, 2048)));
        assert_eq!(header_table_offset(doc, "wake"), None);

        let code = "pub(crate) const NEXT_OFF: usize = 64;\npub(crate) const OFF_DESC: [usize; 2] = [72, 96];\npub const BIG: u64 = 0x4A52_4E4C;\nconst EXPR: u64 = A - B;\n";
        assert_eq!(const_value(code, "NEXT_OFF", None), Some((1, 64)));
        assert_eq!(const_value(code, "OFF_DESC", Some(1)), Some((2, 96)));
        assert_eq!(const_value(code, "BIG", None), Some((3, 0x4A52_4E4C)));
        assert_eq!(const_value(code, "EXPR", None), None);
        assert_eq!(const_value(code, "MISSING", None), None);
        // Sums of literals and other constants, over several lines, are evaluated.
        let derived = "const A: usize = 64;\nconst B: usize = A + 8;\nconst C: [usize; 2] = [\n    B,\n    B + A + 0x10,\n];\nconst LOOP: usize = LOOP + 1;\n";
        assert_eq!(const_value(derived, "B", None), Some((2, 72)));
        assert_eq!(const_value(derived, "C", Some(1)), Some((3, 152)));
        assert_eq!(const_value(derived, "LOOP", None), None, "a cycle ends");

        // The real tables against made-up code: one agrees, the rest are reported.
        let plog_code =
            "pub(crate) const NEXT_OFF: usize = 64;\npub(crate) const WAKE_OFF: usize = 132;\n";
        let read = |path: &str| -> std::result::Result<String, String> {
            match path {
                PLOG_DOC => Ok(doc.replace("| 0 | 8 | `wake`", "|")
                    + "\n## Header\n| 128 | 4 | `wake` | w |\n"),
                PLOG_CODE => Ok(plog_code.to_string()),
                other => Err(format!("{other}: not in this test")),
            }
        };
        let found = check_format_docs(&read);
        let wake = found
            .iter()
            .find(|v| v.message.contains("`wake`"))
            .expect("the wake mismatch");
        assert!(
            wake.message
                .contains("at offset 128 here, but `WAKE_OFF` is 132"),
            "{wake}"
        );
        assert!(!found.iter().any(|v| v.message.contains("`next`")));
    }

    #[test]
    fn pending_fixes_name_real_checks_only_in_files_others_own() {
        for (path, _) in PENDING_FIXES {
            assert!(
                path.starts_with("crates/plog/") || path.starts_with("crates/pounds-cli/"),
                "{path}"
            );
        }
    }
}

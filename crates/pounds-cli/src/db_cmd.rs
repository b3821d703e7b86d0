//! `pounds db ...`: keys and values as UTF-8 text (escaped on output where not printable) or,
//! with `--hex`, as hexadecimal.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;

use pounds::db::{Db, DbOptions, Storage};

use crate::args::{DbArgs, DbCommand, EncodingArgs, StorageArg};
use crate::error::{CliError, Result};
use crate::json;

pub(crate) fn run(args: DbArgs) -> Result<()> {
    let storage = match args.storage {
        StorageArg::Mapped => Storage::Mapped,
        StorageArg::Write => Storage::Write,
        StorageArg::Unmapped => Storage::Unmapped,
    };
    match args.command {
        DbCommand::Create {
            file,
            key_size,
            value_size,
            capacity,
            history,
        } => {
            let mut options =
                DbOptions::new(key_size as usize, value_size as usize).storage(storage);
            if let Some(capacity) = capacity {
                options = options.capacity(capacity);
            }
            if let Some(history) = history {
                options = options.history(history);
            }
            options.open(&file)?.flush()?;
            Ok(())
        }
        DbCommand::Put {
            file,
            key,
            value,
            encoding,
        } => {
            let db = open(&file, storage)?;
            db.put(&decode(&key, encoding)?, &decode(&value, encoding)?)?;
            Ok(())
        }
        DbCommand::Get {
            file,
            keys,
            encoding,
        } => get(&file, &keys, encoding, storage),
        DbCommand::Del {
            file,
            key,
            encoding,
        } => {
            let db = open(&file, storage)?;
            if db.delete(&decode(&key, encoding)?)? {
                Ok(())
            } else {
                Err(CliError::MissingKey(key))
            }
        }
        DbCommand::List {
            file,
            json: as_json,
            encoding,
        } => {
            let db = open_for_reading(&file, storage)?;
            let mut out = BufWriter::new(io::stdout().lock());
            for record in db.iter()? {
                let (key, value) = record?;
                if as_json {
                    writeln!(
                        out,
                        "{{\"key\":{},\"value\":{}}}",
                        json::string(&show(&key, encoding, Escape::Json)),
                        json::string(&show(&value, encoding, Escape::Json))
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}",
                        show(&key, encoding, Escape::Terminal),
                        show(&value, encoding, Escape::Terminal)
                    )?;
                }
            }
            out.flush()?;
            Ok(())
        }
        DbCommand::Batch { file, encoding } => batch(&file, encoding, storage),
        DbCommand::Backup { file, dest } => {
            let db = open_for_reading(&file, storage)?;
            let records = db.backup_to(&dest)?;
            eprintln!("pounds: backed up {records} records to {}", dest.display());
            Ok(())
        }
        DbCommand::Stat { file } => {
            let db = open_for_reading(&file, storage)?;
            let info = db.info()?;
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let mut out = io::stdout().lock();
            writeln!(out, "file:        {}", file.display())?;
            writeln!(out, "file size:   {len} bytes")?;
            writeln!(out, "key size:    {} bytes at most", db.key_size())?;
            writeln!(out, "value size:  {} bytes at most", db.value_size())?;
            writeln!(out, "records:     {}", info.records)?;
            writeln!(
                out,
                "capacity:    {} slots ({} used, rebuilt at {})",
                info.capacity,
                info.used,
                info.capacity / 8 * 7
            )?;
            writeln!(out, "commits:     {} (clock {})", info.commits, info.clock)?;
            writeln!(out, "history:     {} versions", info.history)?;
            writeln!(out, "rebuilds:    {}", info.rebuilds)?;
            Ok(())
        }
        DbCommand::Verify { file } => {
            let db = open_for_reading(&file, storage)?;
            let stats = db.verify()?;
            println!(
                "ok: {} records, {} tombstones, {} empty slots of {}; clock {}",
                stats.live, stats.tombstones, stats.empty, stats.capacity, stats.clock
            );
            Ok(())
        }
    }
}

fn get(file: &Path, keys: &[String], encoding: EncodingArgs, storage: Storage) -> Result<()> {
    let db = open_for_reading(file, storage)?;
    let snapshot = db.begin_read()?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut missing = None;
    for key in keys {
        match snapshot.get(&decode(key, encoding)?)? {
            Some(value) if keys.len() == 1 => {
                writeln!(out, "{}", show(&value, encoding, Escape::Terminal))?;
            }
            Some(value) => writeln!(
                out,
                "{}\t{}",
                show(
                    key.as_bytes(),
                    EncodingArgs { hex: false },
                    Escape::Terminal
                ),
                show(&value, encoding, Escape::Terminal)
            )?,
            None => {
                if keys.len() > 1 {
                    eprintln!("pounds: key not found: {key}");
                }
                missing.get_or_insert_with(|| key.clone());
            }
        }
    }
    out.flush()?;
    match missing {
        Some(key) => Err(CliError::MissingKey(key)),
        None => Ok(()),
    }
}

/// One transaction from standard input; any bad line aborts it before anything is written.
fn batch(file: &Path, encoding: EncodingArgs, storage: Storage) -> Result<()> {
    let db = open(file, storage)?;
    let mut txn = db.begin_write()?;
    let (mut puts, mut deletes) = (0u64, 0u64);
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| CliError::Batch(format!("line {}: {e}", n + 1)))?;
        let bad = |why: &str| CliError::Batch(format!("line {}: {why}: {line:?}", n + 1));
        if line.trim().is_empty() {
            continue;
        }
        let (op, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match op {
            "put" => {
                let (key, value) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("`put` needs a key and a value"))?;
                txn.put(&decode(key, encoding)?, &decode(value, encoding)?)
                    .map_err(|e| bad(&e.to_string()))?;
                puts += 1;
            }
            "del" if !rest.is_empty() && !rest.contains(' ') => {
                txn.delete(&decode(rest, encoding)?)
                    .map_err(|e| bad(&e.to_string()))?;
                deletes += 1;
            }
            "del" => return Err(bad("`del` needs one key")),
            _ => return Err(bad("expected `put KEY VALUE` or `del KEY`")),
        }
    }
    txn.commit()?;
    eprintln!("pounds: committed {puts} puts and {deletes} deletes in one transaction");
    Ok(())
}

/// A writable handle of `storage` on an existing database, adopting its sizes.
fn open(file: &Path, storage: Storage) -> Result<Db> {
    Ok(DbOptions::existing().storage(storage).open(file)?)
}

/// Reading needs no write access, so a read-only file (or a user without write permission)
/// can still be read, even one a crashed writer left: its unfinished commit is read past.
/// (`--storage unmapped` is the exception: keeping other handles out needs write access.)
fn open_for_reading(file: &Path, storage: Storage) -> Result<Db> {
    Ok(DbOptions::existing()
        .storage(storage)
        .open_read_only(file)?)
}

/// A key or value as given: its UTF-8 bytes, or with `--hex` the bytes its hex digits spell.
fn decode(text: &str, encoding: EncodingArgs) -> Result<Vec<u8>> {
    if !encoding.hex {
        return Ok(text.as_bytes().to_vec());
    }
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(CliError::Hex(text.to_string()));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| CliError::Hex(text.to_string()))?;
            u8::from_str_radix(pair, 16).map_err(|_| CliError::Hex(text.to_string()))
        })
        .collect()
}

/// Where shown text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// A terminal: control characters and bytes that are not UTF-8 become `\xNN`, and `\` is
    /// doubled, so the text is unambiguous and nothing raw reaches the terminal.
    Terminal,
    /// A JSON string, which escapes control characters itself: only bytes that are not UTF-8
    /// become `\xNN`.
    Json,
}

/// Bytes for display: hexadecimal with `--hex`, else text escaped as `escape` says.
fn show(bytes: &[u8], encoding: EncodingArgs, escape: Escape) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    if encoding.hex {
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        return out;
    }
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' if escape == Escape::Terminal => out.push_str("\\\\"),
                c if escape == Escape::Terminal && (c.is_control() || c == '\u{7f}') => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_has_no_raw_control_bytes() {
        let text = EncodingArgs { hex: false };
        assert_eq!(show(b"plain text", text, Escape::Terminal), "plain text");
        assert_eq!(
            show(b"\x1b[2Jgone\\\xff", text, Escape::Terminal),
            "\\x1b[2Jgone\\\\\\xff"
        );
        assert_eq!(show(b"a\tb", text, Escape::Json), "a\tb");
        assert_eq!(
            show(&[0, 0xab], EncodingArgs { hex: true }, Escape::Terminal),
            "00ab"
        );
    }

    #[test]
    fn hex_input_is_checked() {
        let hex = EncodingArgs { hex: true };
        assert_eq!(decode("00ff10", hex).unwrap(), vec![0, 0xff, 0x10]);
        assert!(decode("0", hex).is_err());
        assert!(decode("zz", hex).is_err());
        assert!(decode("é0", hex).is_err());
    }
}

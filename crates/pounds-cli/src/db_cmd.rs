//! `pounds db ...`: keys and values are UTF-8 text, zero-padded to the database's sizes; output
//! strips the padding again.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use pounds::db::{Db, DbOptions};

use crate::args::DbCommand;
use crate::error::{CliError, Result};
use crate::json;

pub(crate) fn run(command: DbCommand) -> Result<()> {
    match command {
        DbCommand::Create {
            file,
            key_size,
            value_size,
            capacity,
        } => {
            let mut options = DbOptions::new(key_size as usize, value_size as usize);
            if let Some(capacity) = capacity {
                options = options.capacity(capacity);
            }
            options.open(&file)?.flush()?;
            Ok(())
        }
        DbCommand::Put { file, key, value } => {
            let db = open(&file)?;
            db.put(key.as_bytes(), value.as_bytes())?;
            Ok(())
        }
        DbCommand::Get { file, key } => {
            let db = open_for_reading(&file)?;
            let value = db.get(key.as_bytes())?.ok_or(CliError::MissingKey(key))?;
            let mut out = io::stdout().lock();
            writeln!(out, "{}", text(&value))?;
            Ok(())
        }
        DbCommand::Del { file, key } => {
            let db = open(&file)?;
            if db.delete(key.as_bytes())? {
                Ok(())
            } else {
                Err(CliError::MissingKey(key))
            }
        }
        DbCommand::List {
            file,
            json: as_json,
        } => {
            let db = open_for_reading(&file)?;
            let mut out = BufWriter::new(io::stdout().lock());
            for (key, value) in db.iter()? {
                let (key, value) = (text(&key), text(&value));
                if as_json {
                    writeln!(
                        out,
                        "{{\"key\":{},\"value\":{}}}",
                        json::string(&key),
                        json::string(&value)
                    )?;
                } else {
                    writeln!(out, "{key}\t{value}")?;
                }
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn open(file: &Path) -> Result<Db> {
    Ok(Db::open_existing(file)?)
}

/// Reading needs no write access, so a read-only file (or a user without write permission)
/// can still be read, even one a crashed writer left: its unfinished commit is read past.
fn open_for_reading(file: &Path) -> Result<Db> {
    Ok(Db::open_read_only(file)?)
}

/// The bytes without their zero padding, as text (invalid UTF-8 shown with replacement marks).
fn text(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

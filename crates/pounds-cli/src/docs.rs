//! `pounds completions SHELL` and `pounds man [SUBCOMMAND...]`: generated from the clap
//! definitions in `args.rs`, so they cannot drift from the grammar.

use std::io::{self, Write};

use clap::CommandFactory;
use clap::error::ErrorKind;

use crate::args::Cli;
use crate::error::Result;

/// Writes the completion script for `shell` to stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = Cli::command();
    // Rendered first: the generator panics if its writer fails (`| head`), this does not.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "pounds", &mut script);
    emit(&script)
}

/// Writes the man page of `pounds`, or of the subcommand named by `path`, to stdout.
pub(crate) fn man(path: &[String]) -> Result<()> {
    let mut root = Cli::command();
    // Building names each subcommand for its page (`pounds-log-follow`).
    root.build();
    let mut command = &root;
    for word in path {
        match command
            .get_subcommands()
            .find(|sub| sub.get_name() == word && !sub.is_hide_set())
        {
            Some(sub) => command = sub,
            None => {
                let name = command.get_display_name().unwrap_or(command.get_name());
                Cli::command()
                    .error(
                        ErrorKind::InvalidSubcommand,
                        format!("`{name}` has no subcommand {word:?}"),
                    )
                    .exit()
            }
        }
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    emit(&page)
}

fn emit(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

//! `rumor completions` and `rumor man`: shell completions and the man page,
//! generated from the clap definitions in [`super::Cli`], so neither can
//! drift from the commands and flags they describe.

use std::io::Write;
use std::path::Path;

use clap::{CommandFactory, ValueEnum};

use super::Cli;
use crate::error::Error;

/// The shells `rumor completions` writes for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Shell {
    /// bash (with bash-completion or `source`).
    Bash,
    /// zsh (a `_rumor` file on `$fpath`).
    Zsh,
    /// fish (`~/.config/fish/completions/rumor.fish`).
    Fish,
}

/// Prints the completion script for `shell`.
pub(crate) fn completions(shell: Shell) -> Result<(), Error> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into a buffer first: clap_complete panics when its writer fails, and
    // stdout may be a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rumor", &mut script);
    to_stdout(&script)
}

/// Prints the man page (roff).
pub(crate) fn man() -> Result<(), Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Error::io(Path::new("<man page>"), &e))?;
    to_stdout(&page)
}

fn to_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(Path::new("<stdout>"), &e))
}

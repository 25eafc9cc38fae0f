//! Shell completions and manual pages for both programs, generated from their clap definitions
//! (`tcptape completions bash`, `tcptape man`; the same for `tcptape-record`), so that they
//! never disagree with `--help`.

use clap::Args;
use std::io::Write;

/// Options of `completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script of `cmd` for `shell`.
pub fn write_completions(
    mut cmd: clap::Command,
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    // Into memory first: the generator panics on a write error (a closed pipe), `write_all`
    // returns it.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Options of `man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The page of this subcommand (`PROGRAM-SUBCOMMAND(1)`) instead of the program's.
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// Writes the manual page (roff, section 1) of `cmd`, or of one of its subcommands; an unknown
/// subcommand is an error naming the known ones.
pub fn write_man(
    cmd: clap::Command,
    subcommand: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let cmd = cmd.disable_help_subcommand(true);
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                format!("no subcommand '{name}' (known: {})", known.join(", "))
            })?;
            sub.name(format!("{}-{name}", cmd.get_name()))
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| e.to_string())?;
    match out.write_all(&roff).and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

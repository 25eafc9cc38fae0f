//! `tcptape`: see `tcptape --help`.

use clap::Parser;
use std::io::Write;
use tcptape_analyzer::cli::{Cli, Command};
use tcptape_analyzer::{diff, exit_code, export, info, replay, report_command};

fn main() {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match &cli.command {
        Command::Info(args) => info::run(args, &mut out),
        Command::Report(args) => report_command::run(args, &mut out),
        Command::Diff(args) => diff::run(args, &mut out),
        Command::Replay(args) => replay::run(args, &mut out),
        Command::Export(args) => export::run(args, &mut out),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`tcptape info rec | head`) is not an error.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                exit_code::OK
            } else {
                eprintln!("tcptape: {e:#}");
                exit_code::INPUT
            }
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}

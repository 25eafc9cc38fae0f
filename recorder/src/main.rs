//! `tcptape-record`: see `tcptape-record --help`.

use clap::Parser;
use tcptape_recorder::cli::{Cli, Command};
use tcptape_recorder::exit_code::{self, ExitError};
use tcptape_recorder::{capture, check_command, synth_command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Synth(args)) => synth_command::run(args),
        Some(Command::Check(args)) => check_command::run(args),
        None => capture::run(&cli.record),
    };
    if let Err(e) = result {
        let code = e
            .downcast_ref::<ExitError>()
            .map_or_else(|| io_code(&e), |x| x.code);
        tcptape_common::note!("tcptape-record: {e:#}");
        std::process::exit(code);
    }
}

fn io_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
        Some(std::io::ErrorKind::AlreadyExists) => exit_code::USAGE,
        _ => exit_code::FAILED,
    }
}

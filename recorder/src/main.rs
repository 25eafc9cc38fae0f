//! `tcptape-record`: see `tcptape-record --help`.

use clap::{CommandFactory, Parser};
use tcptape_common::shell_integration;
use tcptape_recorder::cli::{Cli, Command};
use tcptape_recorder::exit_code::{self, ExitError};
use tcptape_recorder::{capture, check_command, synth_command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Synth(args)) => synth_command::run(args),
        Some(Command::Trigger(args)) => {
            tcptape_recorder::flight_control::send(&args.reason, args.pid)
        }
        Some(Command::Check(args)) => check_command::run(args),
        Some(Command::Completions(args)) => shell_integration::write_completions(
            Cli::command(),
            args.shell,
            &mut std::io::stdout().lock(),
        )
        .map_err(anyhow::Error::from),
        Some(Command::Man(args)) => shell_integration::write_man(
            Cli::command(),
            args.subcommand.as_deref(),
            &mut std::io::stdout().lock(),
        )
        .map_err(|e| ExitError::new(exit_code::USAGE, e).into()),
        None => capture::run(&cli.record),
    };
    let Err(e) = result else {
        return;
    };
    // A reader that stopped early (`tcptape-record man | head`) is not an error.
    if e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return;
    }
    let code = e
        .downcast_ref::<ExitError>()
        .map_or_else(|| io_code(&e), |x| x.code);
    tcptape_common::note!("tcptape-record: {e:#}");
    std::process::exit(code);
}

fn io_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
        Some(std::io::ErrorKind::AlreadyExists) => exit_code::USAGE,
        _ => exit_code::FAILED,
    }
}

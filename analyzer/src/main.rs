//! `tcptape`: see `tcptape --help`.

use clap::{CommandFactory, Parser};
use std::io::Write;
use tcptape_analyzer::cli::{Cli, Command};
use tcptape_analyzer::{
    anonymize_command, diff, exit_code, export, info, replay, report, sql_command,
};
use tcptape_common::shell_integration;

/// The last panic's message, kept by the panic hook instead of printing a backtrace.
static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn run(cli: &Cli, out: &mut impl Write) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Info(args) => info::run(args, out),
        Command::Report(args) => report::command::run(args, out),
        Command::Diff(args) => diff::run(args, out),
        Command::Replay(args) => replay::run(args, out),
        Command::Export(args) => export::run(args, out),
        Command::Sql(args) => sql_command::run(args, out),
        Command::Anonymize(args) => anonymize_command::run(args, out),
        Command::Completions(args) => {
            shell_integration::write_completions(Cli::command(), args.shell, out)?;
            Ok(exit_code::OK)
        }
        Command::Man(args) => {
            shell_integration::write_man(Cli::command(), args.subcommand.as_deref(), out)
                .map_err(anyhow::Error::msg)?;
            Ok(exit_code::OK)
        }
    }
}

fn main() {
    let cli = Cli::parse();
    // Files come from strangers: a panic deep in a decoder must end as one line, not a backtrace
    // (set TCPTAPE_BACKTRACE=1 to see it).
    if std::env::var_os("TCPTAPE_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut slot) = PANIC.lock() {
                *slot = Some(format!("{msg}{at}"));
            }
        }));
    }
    let mut out = std::io::stdout().lock();
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&cli, &mut out)))
    {
        Ok(Ok(code)) => code,
        // A closed pipe (`tcptape info rec | head`) is not an error.
        Ok(Err(e))
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            exit_code::OK
        }
        Ok(Err(e)) => {
            tcptape_common::note!("tcptape: {e:#}");
            exit_code::INPUT
        }
        // A defect, not a refusal: its own exit code, so no caller takes it for bad input.
        Err(_) => {
            let msg = PANIC
                .lock()
                .ok()
                .and_then(|mut m| m.take())
                .unwrap_or_default();
            tcptape_common::note!(
                "tcptape: internal error ({msg}); this is a defect of tcptape, please report it \
                 with the input if you can (TCPTAPE_BACKTRACE=1 shows where)"
            );
            exit_code::INTERNAL
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}

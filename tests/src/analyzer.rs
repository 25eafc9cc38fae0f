//! The real `tcptape` analyzer binary, run as a child process.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The analyzer binary: `TCPTAPE_BIN`, else the one beside the test executable
/// ([`crate::binaries::workspace_binary`]).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("TCPTAPE_BIN") {
        Some(p) => PathBuf::from(p),
        None => crate::binaries::workspace_binary("tcptape-analyzer", "tcptape")
            .expect("the analyzer builds"),
    })
    .clone()
}

/// Runs `tcptape ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("tcptape runs")
}

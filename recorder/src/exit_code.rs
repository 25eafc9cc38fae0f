//! The recorder's exit codes (documented in `--help` and the README).

/// Completed, including a recording ended by Ctrl-C or SIGTERM.
pub const OK: i32 = 0;
/// Failed while running; finished segments are intact.
pub const FAILED: i32 = 1;
/// Bad arguments or an unusable output path.
pub const USAGE: i32 = 2;
/// Missing privileges.
pub const PRIVILEGES: i32 = 3;
/// The kernel cannot support a recording.
pub const UNSUPPORTED: i32 = 4;

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    /// One of the codes above.
    pub code: i32,
    /// One sentence for the user.
    pub message: String,
}

impl ExitError {
    /// An error with a code.
    pub fn new(code: i32, message: impl Into<String>) -> ExitError {
        ExitError {
            code,
            message: message.into(),
        }
    }
}

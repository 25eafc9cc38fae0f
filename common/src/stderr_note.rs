//! Messages on stderr that cannot fail the work they describe.
//!
//! `eprintln!` panics when stderr is gone (the reader of a `2>&1 | head` pipe exited): in the
//! recorder that would end a recording without finishing its last segment, in the analyzer it
//! would turn a finished export into a failure. What both tools say on stderr is for the person
//! watching; when nobody can read it, it is dropped and the work goes on.

/// Writes a line to stderr like `eprintln!`, ignoring a failed write.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes to stderr like `eprint!`, ignoring a failed write.
#[macro_export]
macro_rules! note_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

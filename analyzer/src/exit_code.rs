//! The analyzer's exit codes (documented in `--help` and the README).

/// Success (for `diff`: no regression).
pub const OK: i32 = 0;
/// `diff` found a regression.
pub const REGRESSION: i32 = 1;
/// Bad arguments or unusable input (not Parquet, truncated, foreign, newer schema, ...).
pub const INPUT: i32 = 2;
/// `diff`: no regression found, but a stage that matters could not be decided (too few packets,
/// or recorded on one side only); `--allow-undecided` makes it 0.
pub const UNDECIDED: i32 = 3;
/// An internal error (a panic: a defect of tcptape, never a verdict on the input); `EX_SOFTWARE`
/// of sysexits.h.
pub const INTERNAL: i32 = 70;

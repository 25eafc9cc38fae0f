//! `tcptape anonymize IN -o OUT`: an anonymized copy of a recording, fit for a public ticket.

use crate::exit_code;
use clap::Args;
use std::path::PathBuf;
use tcptape_common::anonymize::{anonymize_recording, AnonKey, AnonOptions, Anonymizer};
use tcptape_common::Recording;

/// Options of `anonymize`.
#[derive(Debug, Args)]
pub struct AnonymizeArgs {
    /// The recording to anonymize (a `.parquet` file or a directory of segments).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The anonymized copy: one `.parquet` file. Must not exist yet.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// A file holding the key as 64 hex digits, so that several recordings get the same
    /// pseudonyms (e.g. the two sides of a `diff`). Default: a random key, used once and
    /// forgotten.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Map ports through a keyed permutation too (default: ports are kept).
    #[arg(long)]
    pub map_ports: bool,
    /// Keep `pid`, `comm` and the cgroups' paths (default: removed; the cgroup ids stay).
    #[arg(long)]
    pub keep_tasks: bool,
}

/// Reads a key file: 64 hex digits, surrounding whitespace ignored.
pub fn read_key(path: &std::path::Path) -> anyhow::Result<AnonKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the key file: {e}", path.display()))?;
    let hex = text.trim();
    let bad = || {
        anyhow::anyhow!(
            "{}: a key file holds 64 hex digits (e.g. from `openssl rand -hex 32`)",
            path.display()
        )
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

/// Runs `anonymize`.
pub fn run(args: &AnonymizeArgs, out: &mut impl std::io::Write) -> anyhow::Result<i32> {
    let key = match &args.key_file {
        Some(p) => read_key(p)?,
        None => rand_key(),
    };
    let rec = Recording::open(&args.input)?;
    let anon = Anonymizer::new(
        &key,
        AnonOptions {
            ports: args.map_ports,
            tasks: !args.keep_tasks,
        },
    );
    let rows = anonymize_recording(&rec, &args.output, &anon).map_err(anyhow::Error::msg)?;
    let mut what = vec!["addresses anonymized"];
    if args.map_ports {
        what.push("ports mapped");
    }
    if !args.keep_tasks {
        what.push("pid, comm and cgroup paths removed");
    }
    writeln!(
        out,
        "wrote {rows} events to {}: {}",
        args.output.display(),
        what.join(", ")
    )?;
    Ok(exit_code::OK)
}

fn rand_key() -> AnonKey {
    rand::random()
}

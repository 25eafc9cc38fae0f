//! The workspace's binaries as the tests run them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The path of workspace binary `name` (of package `package`) in the profile directory of the
/// running test executable, built there first if it is missing.
///
/// `cargo test`/`cargo nextest run --workspace` (and `ci/test.sh`) build every workspace binary
/// with the test build's own feature set before any test runs, so the binary found is fresh.
/// It is not rebuilt from here: `cargo build -p PACKAGE` would unify features differently and
/// rebuild polars for minutes. After `cargo test -p tcptape-e2e` alone, run
/// `cargo build --workspace` first, or point `TCPTAPE_RECORD_BIN`/`TCPTAPE_BIN` at binaries.
pub fn workspace_binary(package: &str, name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected test executable path")?;
    let bin = profile_dir.join(name);
    if bin.exists() {
        return Ok(bin);
    }
    let target_dir = profile_dir.parent().ok_or("unexpected target path")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", name])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() || !bin.exists() {
        return Err(format!("could not build {}", bin.display()));
    }
    Ok(bin)
}

//! # tcptape-e2e: the harness for end-to-end capture tests
//!
//! Tests in `tests/capture_*.rs` build a small network of their own ([`netns::Pair`]: two
//! network namespaces joined by a veth pair, with optional tbf shaping and nft drops), run
//! traffic between them from threads that enter the namespaces ([`traffic`]), record it with the
//! real `tcptape-record` binary ([`recorder::RecorderProcess`]) and check the recording
//! ([`recording`]), also through the real analyzer ([`analyzer`]). Everything is torn down on
//! drop, also when a test fails.
//!
//! These tests need root (CAP_SYS_ADMIN for namespaces, CAP_BPF/CAP_PERFMON for the recorder).
//! Without it they print `SKIPPED: <reason>` and pass, so a developer sees why nothing ran;
//! setting `TCPTAPE_E2E_REQUIRED=1` (as CI does) turns a skip into a failure.
#![deny(missing_docs)]

pub mod analyzer;
pub mod binaries;
pub mod bpf_programs;
pub mod bpftrace;
pub mod netns;
pub mod recorder;
pub mod recording;
pub mod traffic;

/// Why the end-to-end tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("the kernel has no BTF".into());
    }
    for tool in ["ip", "tc", "nft"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(tool).is_file());
        if !found {
            return Some(format!("the `{tool}` command is missing"));
        }
    }
    None
}

/// Returns true when the test should run; otherwise prints loudly why it is skipped, and fails
/// instead when `TCPTAPE_E2E_REQUIRED=1`.
pub fn should_run(test: &str) -> bool {
    match unavailable() {
        None => true,
        Some(reason) => {
            if std::env::var("TCPTAPE_E2E_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("{test}: cannot run ({reason}) but TCPTAPE_E2E_REQUIRED=1");
            }
            // Written to stderr directly: the test harness captures `eprintln!` of passing tests,
            // and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {reason} ***\n");
            false
        }
    }
}

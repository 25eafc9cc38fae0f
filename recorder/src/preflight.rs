//! What the host must provide before anything is loaded: privileges, kernel BTF, and tracefs
//! (for classic tracepoints). Each missing piece is one sentence and an exit code.

use crate::exit_code::{self, ExitError};
use std::path::Path;

/// Kernel BTF, needed for CO-RE and for BTF-typed programs.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// Where tracefs is expected.
pub const TRACEFS: &str = "/sys/kernel/tracing";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process (from `/proc/self/status`).
pub fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

/// True when the capability set allows loading tracing programs.
pub fn caps_allow_tracing(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Fails with exit code 3 when this process cannot load tracing programs.
pub fn check_privileges() -> Result<(), ExitError> {
    match effective_caps() {
        Some(c) if caps_allow_tracing(c) => Ok(()),
        _ => Err(ExitError::new(
            exit_code::PRIVILEGES,
            "recording needs CAP_BPF and CAP_PERFMON (or root): run it with sudo",
        )),
    }
}

/// Fails with exit code 4 when the kernel has no BTF.
pub fn check_btf() -> Result<(), ExitError> {
    if Path::new(VMLINUX_BTF).exists() {
        return Ok(());
    }
    Err(ExitError::new(
        exit_code::UNSUPPORTED,
        format!("this kernel exposes no BTF ({VMLINUX_BTF} is missing; it needs CONFIG_DEBUG_INFO_BTF=y)"),
    ))
}

/// Makes sure tracefs is mounted, mounting it if needed. Returns a warning sentence when it is
/// not available: only classic tracepoints need it, so the recording can still go on.
pub fn ensure_tracefs() -> Option<String> {
    let marker = Path::new(TRACEFS).join("events");
    if marker.exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return None;
    }
    let src = c"nodev";
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 && marker.exists() {
        return None;
    }
    Some(format!(
        "tracefs is not mounted at {TRACEFS} and could not be mounted ({}), so classic tracepoints are unavailable",
        std::io::Error::last_os_error()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_decide_privileges() {
        assert!(caps_allow_tracing(1 << CAP_SYS_ADMIN));
        assert!(caps_allow_tracing((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_allow_tracing(1 << CAP_BPF));
        assert!(!caps_allow_tracing(0));
    }
}

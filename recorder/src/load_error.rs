//! Why the eBPF object could not be opened, typed by what the user can do about it, and the
//! exit code each answer gets: no BTF or a refusal of the kernel is "this kernel cannot" (4), a
//! refusal for lack of privilege (EPERM, EACCES: capabilities, lockdown, a seccomp filter) is
//! "missing privileges" (3), no memory for the rings is a `--ring-size` the host cannot give (2).

use crate::exit_code::{self, ExitError};

/// A failure to open the eBPF object and create its maps.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel's BTF cannot be read.
    #[error("cannot read the kernel BTF: {0}")]
    Btf(String),
    /// The kernel refused an operation for lack of privilege.
    #[error("{0} (the kernel refused for lack of privilege: run as root, or grant CAP_BPF and CAP_PERFMON)")]
    Permission(String),
    /// The kernel had no memory for a map (the rings are too large for this host).
    #[error("{0} (not enough kernel memory: a smaller --ring-size may fit)")]
    Memory(String),
    /// Anything else the kernel refused.
    #[error("{0}")]
    Kernel(String),
}

impl LoadError {
    /// Types a failure by the OS error at the bottom of `source`, if any.
    pub fn of(message: String, source: &(dyn std::error::Error + 'static)) -> LoadError {
        match errno_of(source) {
            Some(libc::EPERM | libc::EACCES) => LoadError::Permission(message),
            Some(libc::ENOMEM) => LoadError::Memory(message),
            _ => LoadError::Kernel(message),
        }
    }

    /// The documented exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Btf(_) | LoadError::Kernel(_) => exit_code::UNSUPPORTED,
            LoadError::Permission(_) => exit_code::PRIVILEGES,
            LoadError::Memory(_) => exit_code::USAGE,
        }
    }
}

impl From<LoadError> for ExitError {
    fn from(e: LoadError) -> ExitError {
        ExitError::new(e.exit_code(), e.to_string())
    }
}

/// The first OS error number in an error's chain of sources.
fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("map creation failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn the_os_error_under_a_failure_decides_its_exit_code() {
        let of = |errno: i32| {
            LoadError::of(
                "cannot create map".into(),
                &Wrapped(std::io::Error::from_raw_os_error(errno)),
            )
        };
        assert_eq!(of(libc::EPERM).exit_code(), exit_code::PRIVILEGES);
        assert_eq!(of(libc::EACCES).exit_code(), exit_code::PRIVILEGES);
        assert_eq!(of(libc::ENOMEM).exit_code(), exit_code::USAGE);
        assert_eq!(of(libc::EINVAL).exit_code(), exit_code::UNSUPPORTED);
        assert_eq!(
            LoadError::Btf("no file".into()).exit_code(),
            exit_code::UNSUPPORTED
        );
        let e = ExitError::from(of(libc::EPERM));
        assert!(e.message.contains("CAP_BPF"), "{}", e.message);
    }
}

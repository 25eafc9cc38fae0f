//! Gives up the capabilities a recording no longer needs once its programs are attached.
//!
//! Loading and attaching need CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN). After that the recorder
//! only reads the ring buffer (already mapped), reads its counter maps and program statistics
//! through file descriptors it holds, and writes its output. Whether those reads need CAP_BPF
//! depends on the kernel and on `kernel.unprivileged_bpf_disabled`; rather than guess, the
//! recorder tries the reads with fewer effective capabilities and keeps the smallest set that
//! works. CAP_DAC_OVERRIDE is kept only when the output directory is not writable
//! without it (e.g. `sudo` into a user's home directory).
//!
//! Capabilities are per thread on Linux, so this runs before the recorder starts any thread.

use caps::{CapSet, Capability, CapsHashSet};
use std::path::Path;

/// What was kept and what was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Capabilities still held (effective and permitted), sorted by name.
    pub kept: Vec<Capability>,
    /// How many permitted capabilities were given up.
    pub dropped: usize,
}

impl Dropped {
    /// A short human sentence, e.g. `dropped 40 capabilities; kept CAP_BPF`.
    pub fn describe(&self) -> String {
        let kept = if self.kept.is_empty() {
            "none".to_string()
        } else {
            self.kept
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "dropped {} capabilities after attaching; kept: {kept}",
            self.dropped
        )
    }
}

/// Drops every capability except those `bpf_reads` and writing to `output_dirs` need, from the
/// effective, permitted, inheritable, ambient and (when allowed) bounding sets, and sets
/// `no_new_privs`. `bpf_reads` performs the map and program reads the recording goes on doing
/// and says whether they succeeded.
pub fn drop_after_attach(
    bpf_reads: impl Fn() -> bool,
    output_dirs: &[&Path],
) -> Result<Dropped, String> {
    let permitted = read(CapSet::Permitted)?;
    let keep = smallest_working_set(&permitted, &bpf_reads, output_dirs)?;

    // The bounding set limits what an exec could ever regain; changing it needs CAP_SETPCAP.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        set(CapSet::Effective, &permitted)?;
        for cap in supported() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| format!("cannot drop {cap} from the bounding set: {e}"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("cannot clear ambient capabilities: {e}"))?;
    set(CapSet::Effective, &keep)?;
    set(CapSet::Inheritable, &CapsHashSet::new())?;
    set(CapSet::Permitted, &keep)?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut kept: Vec<Capability> = keep.into_iter().collect();
    kept.sort_by_key(|c| c.to_string());
    Ok(Dropped {
        dropped: permitted.len() - kept.len(),
        kept,
    })
}

/// Tries effective sets from the smallest up and returns the first with which the BPF reads work
/// and the output directories are writable. Leaves the effective set as it found it.
fn smallest_working_set(
    permitted: &CapsHashSet,
    bpf_reads: &impl Fn() -> bool,
    output_dirs: &[&Path],
) -> Result<CapsHashSet, String> {
    let effective = read(CapSet::Effective)?;
    let held = |c: &[Capability]| -> CapsHashSet {
        c.iter()
            .copied()
            .filter(|c| permitted.contains(c))
            .collect()
    };
    // Each layer adds what the one before lacked: nothing, then CAP_BPF (kernels that check it
    // for every bpf() command), then CAP_SYS_ADMIN (what stands for CAP_BPF where it is unknown).
    let bpf_layers = [
        held(&[]),
        held(&[Capability::CAP_BPF]),
        held(&[Capability::CAP_SYS_ADMIN]),
    ];
    let dac = held(&[Capability::CAP_DAC_OVERRIDE]);
    let mut chosen = None;
    'search: for bpf in &bpf_layers {
        for extra in [CapsHashSet::new(), dac.clone()] {
            let candidate: CapsHashSet = bpf.union(&extra).copied().collect();
            set(CapSet::Effective, &candidate)?;
            if bpf_reads() && output_dirs.iter().all(|d| writable(d)) {
                chosen = Some(candidate);
                break 'search;
            }
        }
    }
    set(CapSet::Effective, &effective)?;
    chosen.ok_or_else(|| {
        "the recording's reads or writes fail without the full capability set".to_string()
    })
}

/// True when this thread, with its current effective capabilities, may create files in `dir`.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; AT_EACCESS checks with the effective credentials.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// The capabilities this kernel knows (the bounding set cannot name others).
fn supported() -> Vec<Capability> {
    caps::runtime::thread_all_supported().into_iter().collect()
}

fn read(set: CapSet) -> Result<CapsHashSet, String> {
    caps::read(None, set).map_err(|e| format!("cannot read the {set:?} capabilities: {e}"))
}

fn set(which: CapSet, value: &CapsHashSet) -> Result<(), String> {
    caps::set(None, which, value).map_err(|e| format!("cannot set the {which:?} capabilities: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_what_is_kept() {
        let d = Dropped {
            kept: vec![Capability::CAP_BPF],
            dropped: 40,
        };
        assert_eq!(
            d.describe(),
            "dropped 40 capabilities after attaching; kept: CAP_BPF"
        );
        let none = Dropped {
            kept: vec![],
            dropped: 41,
        };
        assert!(none.describe().ends_with("kept: none"));
    }

    #[test]
    fn writable_follows_the_directory_mode() {
        let dir = tempfile::tempdir().unwrap();
        assert!(writable(dir.path()));
        assert!(!writable(&dir.path().join("missing")));
    }
}

//! Per-program statistics the kernel keeps, read with `BPF_OBJ_GET_INFO_BY_FD` (aya 0.14 does
//! not expose `recursion_misses`, `run_time_ns` or `run_cnt`), and the switch that makes the
//! kernel count run time (`BPF_ENABLE_STATS`).

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// `offsetof(struct bpf_prog_info, run_time_ns)` in the UAPI; `run_cnt` follows it.
const RUN_TIME_OFFSET: usize = 192;
/// `offsetof(struct bpf_prog_info, recursion_misses)` in the UAPI.
const MISSES_OFFSET: usize = 208;

/// Runs of one program the kernel skipped because the program was already running on that CPU
/// (`bpf_prog_info.recursion_misses`, kernel 5.12+): events that were never produced. `None`
/// when the kernel does not report it.
pub fn recursion_misses(prog: BorrowedFd<'_>) -> Option<u64> {
    info_u64(prog, MISSES_OFFSET)
}

/// Time the program has run (ns) and how many times: `(run_time_ns, run_cnt)`, counted only
/// while run-time statistics are on ([`enable_run_time_stats`] or `kernel.bpf_stats_enabled`).
pub fn run_time(prog: BorrowedFd<'_>) -> Option<(u64, u64)> {
    Some((
        info_u64(prog, RUN_TIME_OFFSET)?,
        info_u64(prog, RUN_TIME_OFFSET + 8)?,
    ))
}

/// Turns on the kernel's run-time statistics of BPF programs for as long as the returned
/// descriptor is open (`BPF_ENABLE_STATS`, kernel 5.8+).
pub fn enable_run_time_stats() -> std::io::Result<OwnedFd> {
    const BPF_ENABLE_STATS: libc::c_long = 32;
    #[repr(C)]
    struct Attr {
        /// `BPF_STATS_RUN_TIME` = 0.
        kind: u32,
    }
    let mut attr = Attr { kind: 0 };
    // SAFETY: `attr` is a live `bpf_attr` prefix of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            &mut attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The u64 at `offset` of the program's `bpf_prog_info`, when the kernel's struct reaches it.
fn info_u64(prog: BorrowedFd<'_>, offset: usize) -> Option<u64> {
    use std::os::fd::AsRawFd;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    #[repr(C, align(8))]
    struct Info([u8; 256]);
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = Info([0; 256]);
    let mut attr = Attr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: info.0.len() as u32,
        info: info.0.as_mut_ptr() as u64,
    };
    // SAFETY: `attr` points at a live buffer of `info_len` bytes; the kernel writes at most that.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if rc != 0 || (attr.info_len as usize) < offset + 8 {
        return None;
    }
    let b = &info.0[offset..offset + 8];
    Some(u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

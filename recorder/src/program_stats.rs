//! Per-program statistics the kernel keeps, read with `BPF_OBJ_GET_INFO_BY_FD` (aya 0.14 does
//! not expose `recursion_misses`).

/// Runs of one program the kernel skipped because the program was already running on that CPU
/// (`bpf_prog_info.recursion_misses`, kernel 5.12+): events that were never produced. `None`
/// when the kernel does not report it.
pub fn recursion_misses(prog: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    /// `offsetof(struct bpf_prog_info, recursion_misses)` in the UAPI.
    const MISSES_OFFSET: usize = 208;
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
    if rc != 0 || (attr.info_len as usize) < MISSES_OFFSET + 8 {
        return None;
    }
    let b = &info.0[MISSES_OFFSET..MISSES_OFFSET + 8];
    Some(u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

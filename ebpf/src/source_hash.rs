// Shared by build.rs (`include!`) and the library: the fingerprint of the C sources that the
// committed object in `prebuilt/` was built from. FNV-1a (64-bit) over each file's relative path
// and contents, in path order: a change detector for staleness, not a security measure.

/// The C sources of the eBPF object, relative to the crate root, in hashing order.
pub const BPF_SOURCES: &[&str] = &[
    "include/event.h",
    "src/bpf/capture.bpf.h",
    "src/bpf/core_fixes.bpf.h",
    "src/bpf/kernel_types.h",
    "src/bpf/tcptape.bpf.c",
];

/// Hex fingerprint of the sources under `root`, or the first file that cannot be read.
pub fn bpf_source_hash(root: &std::path::Path) -> Result<String, String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for rel in BPF_SOURCES {
        let path = root.join(rel);
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Line endings are normalized so a checkout with CRLF hashes the same.
        let text: Vec<u8> = text.into_iter().filter(|&b| b != b'\r').collect();
        eat(rel.as_bytes());
        eat(&[0]);
        eat(&(text.len() as u64).to_le_bytes());
        eat(&text);
    }
    Ok(format!("{h:016x}"))
}

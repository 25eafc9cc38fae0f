//! The committed object in `prebuilt/` was built from the C sources as they are now.

use std::path::Path;

#[test]
fn prebuilt_object_matches_the_c_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let recorded = std::fs::read_to_string(root.join("prebuilt/tcptape.bpf.o.sources"))
        .expect("prebuilt/tcptape.bpf.o.sources is missing");
    let now = tcptape_ebpf::bpf_source_hash(root).expect("reading the C sources");
    assert_eq!(
        recorded.trim(),
        now,
        "prebuilt/tcptape.bpf.o is stale: rebuild it with \
         `TCPTAPE_UPDATE_PREBUILT=1 cargo build -p tcptape-ebpf` and commit it"
    );
}

#[test]
fn embedded_object_is_an_aligned_bpf_elf() {
    let obj = tcptape_ebpf::object();
    assert_eq!(obj.as_ptr() as usize % 8, 0, "object is not 8-byte aligned");
    assert_eq!(&obj[..4], b"\x7fELF", "not an ELF file");
    // e_machine (offset 18, little-endian) is EM_BPF = 247.
    assert_eq!(
        u16::from_le_bytes([obj[18], obj[19]]),
        247,
        "not a BPF object"
    );
}

//! # tcptape-ebpf: the eBPF programs of tcptape, as one object the recorder loads
//!
//! The programs are C (`src/bpf/`), compiled with CO-RE relocations so one object runs on any
//! kernel with BTF: `kernel_types.h` declares only the fields read, `preserve_access_index`, and
//! `core_fixes.bpf.h` bridges the differences between kernel versions. `capture.bpf.h` holds one
//! handler per stage; `tcptape.bpf.c` the flavors (fentry, kprobe, tp_btf, classic tracepoint)
//! that feed them, named `<stage>__<mechanism>__<kernel point>`.
//!
//! `build.rs` compiles the C with clang when present and otherwise uses the committed
//! `prebuilt/tcptape.bpf.o`; `prebuilt/tcptape.bpf.o.sources` holds the hash of the sources that
//! object came from, and a test fails when it no longer matches.
#![deny(missing_docs)]

include!("source_hash.rs");

/// Wrapper that gives included bytes the alignment an ELF parser wants.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/tcptape.bpf.o")));

/// The eBPF object (ELF), 8-byte aligned.
pub fn object() -> &'static [u8] {
    &OBJECT.0
}

/// `clang` when the object was compiled from the sources in this build, `prebuilt` when the
/// committed object was used.
pub const OBJECT_SOURCE: &str = env!("TCPTAPE_EBPF_SOURCE");

/// Names of the maps and globals the programs define (used by the loader).
pub mod names {
    /// The array of per-CPU event ring buffers (indexed by CPU).
    pub const RINGS: &str = "RINGS";
    /// Per-CPU events seen per stage.
    pub const SEEN: &str = "SEEN";
    /// Per-CPU events lost (no room in the CPU's ring).
    pub const LOST: &str = "LOST";
    /// Per-CPU staged events (written into the ring a batch at a time).
    pub const BATCHES: &str = "BATCHES";
    /// Ports the `--pid` processes listen on, by network namespace.
    pub const LISTEN_PORTS: &str = "LISTEN_PORTS";
    /// The flow-hash threshold below which flows are kept while `--budget` adjusts it.
    pub const KEEP_BELOW: &str = "KEEP_BELOW";
}

/// Filter capacities of the programs (`MAX_*` in `capture.bpf.h`).
pub mod limits {
    /// Ports (`--port`).
    pub const PORTS: usize = 8;
    /// Address ranges (`--addr`).
    pub const CIDRS: usize = 4;
    /// Processes (`--pid`).
    pub const PIDS: usize = 8;
    /// Network namespaces (`--netns`).
    pub const NETNS: usize = 4;
    /// Interfaces (`--iface`).
    pub const IFACES: usize = 8;
    /// Cgroups (`--cgroup`).
    pub const CGROUPS: usize = 8;
}

//! Loading the eBPF object with aya: filters and sizes set before load, then programs loaded and
//! attached one at a time for the attach plan.

use crate::attach_plan::{Hook, Mechanism, ProgramLoader};
use crate::filters::KernelFilters;
use crate::listening_sockets::{self, Listener};
use crate::load_error::LoadError;
use crate::ring_reader::RingReader;
use aya::maps::{Array, ArrayOfMaps, HashMap, IterableMap, MapData, PerCpuArray};
use aya::programs::{BtfTracePoint, FEntry, FExit, KProbe, Program, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use std::os::fd::AsFd;
use tcptape_ebpf::names;

/// What is set in the object before it is loaded.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Validated filters.
    pub filters: KernelFilters,
    /// Keep 1 flow in N.
    pub sample: u32,
    /// The recorder moves the sampling threshold while recording (`--budget`).
    pub adaptive: bool,
    /// How the ring-buffer memory is split between the CPUs.
    pub rings: RingLayout,
}

/// The loaded object and the kernel BTF its programs are checked against.
pub struct AyaLoader {
    ebpf: Ebpf,
    btf: Btf,
    disabled: Vec<Mechanism>,
    rings: Vec<CpuRing>,
}

/// Environment variable listing mechanisms not to try (comma-separated, e.g. `tp_btf`): how the
/// fallbacks are exercised on a kernel where the preferred mechanism works.
pub const DISABLE_ENV: &str = "TCPTAPE_DISABLE_MECHANISMS";

/// The number of possible CPUs: the size of every per-CPU array.
fn possible_cpus() -> Result<u32, String> {
    aya::util::nr_cpus()
        .map(|n| n as u32)
        .map_err(|(path, e)| format!("cannot read the possible CPUs ({path}): {e}"))
}

fn disabled_mechanisms() -> Vec<Mechanism> {
    let list = std::env::var(DISABLE_ENV).unwrap_or_default();
    [
        Mechanism::Fentry,
        Mechanism::Kprobe,
        Mechanism::TpBtf,
        Mechanism::Tracepoint,
    ]
    .into_iter()
    .filter(|m| list.split(',').any(|x| x.trim() == m.name()))
    .collect()
}

/// One CPU's ring buffer of events.
pub struct CpuRing {
    /// The CPU whose programs write into it.
    pub cpu: u32,
    /// The ring.
    pub ring: RingReader,
}

impl std::os::fd::AsRawFd for CpuRing {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

/// The maps the recorder reads while recording.
pub struct CaptureMaps {
    /// Events, one ring per online CPU.
    pub rings: Vec<CpuRing>,
    /// Per-CPU events seen per stage code.
    pub seen: PerCpuArray<MapData, u64>,
    /// Per-CPU events lost for want of ring space.
    pub lost: PerCpuArray<MapData, u64>,
    /// Per-CPU staged events, read once the programs are detached.
    pub batches: PerCpuArray<MapData, tcptape_common::event::RawBatches>,
    /// What `--budget` reads and moves (taken by its thread).
    pub budget: Option<crate::budget_thread::BudgetMaps>,
}

/// How the ring-buffer memory is split: one ring per online CPU, so that CPUs never share a ring
/// (a shared ring's lock and positions move between the CPUs' caches on every event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingLayout {
    /// The CPUs that get a ring.
    pub cpus: Vec<u32>,
    /// Bytes of each ring: a power of two of at least one page, as the kernel requires.
    pub per_cpu: u32,
}

/// The largest `--ring-size`.
const MAX_RING_TOTAL: u64 = 1 << 32;
const PAGE: u64 = 4096;

impl RingLayout {
    /// Splits `total` bytes evenly between `cpus`: each ring is the largest power of two that
    /// fits its share, and at least one page.
    pub fn new(total: u64, cpus: Vec<u32>) -> Result<RingLayout, String> {
        if total > MAX_RING_TOTAL {
            return Err(format!(
                "--ring-size {total} is too large (at most {})",
                bytesize::ByteSize::b(MAX_RING_TOTAL)
            ));
        }
        if cpus.is_empty() {
            return Err("no online CPU was found (/sys/devices/system/cpu/online)".into());
        }
        let share = (total / cpus.len() as u64).max(PAGE);
        let per_cpu = 1u64 << share.ilog2();
        Ok(RingLayout {
            cpus,
            per_cpu: per_cpu.min(1 << 30) as u32,
        })
    }

    /// Splits `total` bytes between this host's online CPUs.
    pub fn for_host(total: u64) -> Result<RingLayout, String> {
        let cpus = aya::util::online_cpus()
            .map_err(|(path, e)| format!("cannot read the online CPUs ({path}): {e}"))?;
        RingLayout::new(total, cpus)
    }

    /// Bytes of all rings together.
    pub fn total(&self) -> u64 {
        u64::from(self.per_cpu) * self.cpus.len() as u64
    }

    /// Bytes waiting in a ring at which its programs wake the reader, which otherwise drains on a
    /// timer: a quarter of the ring, so that the reader is woken early enough under a burst, and
    /// rarely otherwise.
    pub fn wake_bytes(&self) -> u64 {
        u64::from(self.per_cpu / 4)
    }
}

/// Creates one ring of `bytes` for a CPU.
fn create_ring(cpu: u32, bytes: u32) -> Result<MapData, LoadError> {
    let ringbuf = aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32;
    let def = aya_obj::Map::new_from_params(ringbuf, 0, 0, bytes, 0);
    MapData::create(def, &format!("tcptape_cpu{cpu}"), None).map_err(|e| {
        LoadError::of(
            format!("cannot create the ring buffer of CPU {cpu}: {e}"),
            &e,
        )
    })
}

impl AyaLoader {
    /// Parses the object and creates its maps, with the filters in place. No program is loaded.
    pub fn open(cfg: &LoadConfig) -> Result<AyaLoader, LoadError> {
        let btf = Btf::from_sys_fs().map_err(|e| LoadError::Btf(e.to_string()))?;
        let f = &cfg.filters;
        let ports = f.port_array();
        let pids = f.pid_array();
        let netns = f.netns_array();
        let ifindex = f.ifindex_array();
        let (cidr_family, cidr_addr, cidr_mask) = f.cidr_arrays();
        let nports = f.ports.len() as u32;
        let ncidrs = f.cidrs.len() as u32;
        let npids = f.pids.len() as u32;
        let nnetns = f.netns.len() as u32;
        let nifindex = f.ifaces.len() as u32;
        let (cgroup_ids, cgroup_levels) = f.cgroup_arrays();
        let (page_offset_base_at, vmemmap_base_at) = crate::kernel_symbols::page_bases();
        let iff_no_queue = crate::drop_reasons::host_iff_no_queue();
        let ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .map_max_entries(names::RINGS, possible_cpus().map_err(LoadError::Kernel)?)
            .override_global("targ_nports", &nports, true)
            .override_global("targ_ports", &ports, true)
            .override_global("targ_ncidrs", &ncidrs, true)
            .override_global("targ_cidr_family", &cidr_family, true)
            .override_global("targ_cidr_addr", &cidr_addr, true)
            .override_global("targ_cidr_mask", &cidr_mask, true)
            .override_global("targ_npids", &npids, true)
            .override_global("targ_pids", &pids, true)
            .override_global("targ_nnetns", &nnetns, true)
            .override_global("targ_netns", &netns, true)
            .override_global("targ_nifindex", &nifindex, true)
            .override_global("targ_ifindex", &ifindex, true)
            .override_global("targ_ifindex_netns", &f.ifaces_netns, true)
            .override_global("targ_ncgroups", &(f.cgroups.len() as u32), true)
            .override_global("targ_cgroup_ids", &cgroup_ids, true)
            .override_global("targ_cgroup_levels", &cgroup_levels, true)
            .override_global("targ_stages", &f.stages.mask(), true)
            .override_global("targ_sample", &cfg.sample, true)
            .override_global("targ_adaptive", &(cfg.adaptive as u32), true)
            .override_global("wake_bytes", &cfg.rings.wake_bytes(), true)
            .override_global("targ_page_offset_base_at", &page_offset_base_at, true)
            .override_global("targ_vmemmap_base_at", &vmemmap_base_at, true)
            .override_global("targ_iff_no_queue", &iff_no_queue, true)
            .load(tcptape_ebpf::object())
            .map_err(|e| LoadError::of(format!("cannot load the eBPF object: {e}"), &e))?;
        let mut loader = AyaLoader {
            ebpf,
            btf,
            disabled: disabled_mechanisms(),
            rings: Vec::new(),
        };
        loader.create_rings(&cfg.rings)?;
        loader.set_keep_below(crate::sampling_budget::threshold_of_sample(cfg.sample))?;
        Ok(loader)
    }

    /// Creates the per-CPU rings and puts each at its CPU's index of the ring array, before any
    /// program runs.
    fn create_rings(&mut self, layout: &RingLayout) -> Result<(), LoadError> {
        let map = self.ebpf.map_mut(names::RINGS).ok_or_else(|| {
            LoadError::Kernel(format!("the eBPF object has no map {}", names::RINGS))
        })?;
        let mut array: ArrayOfMaps<&mut MapData> =
            ArrayOfMaps::try_from(map).map_err(|e| LoadError::Kernel(e.to_string()))?;
        for &cpu in &layout.cpus {
            let data = create_ring(cpu, layout.per_cpu)?;
            array.set(cpu, &data, 0).map_err(|e| {
                LoadError::of(
                    format!("cannot install the ring buffer of CPU {cpu}: {e}"),
                    &e,
                )
            })?;
            let ring = RingReader::new(data, layout.per_cpu).map_err(|e| {
                LoadError::of(format!("cannot map the ring buffer of CPU {cpu}: {e}"), &e)
            })?;
            self.rings.push(CpuRing { cpu, ring });
        }
        Ok(())
    }

    /// Sets the flow-hash threshold the programs keep flows below under `--budget`, before any
    /// program runs.
    fn set_keep_below(&mut self, threshold: u64) -> Result<(), LoadError> {
        let map = self.ebpf.map_mut(names::KEEP_BELOW).ok_or_else(|| {
            LoadError::Kernel(format!("the eBPF object has no map {}", names::KEEP_BELOW))
        })?;
        let mut a: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(|e| LoadError::Kernel(e.to_string()))?;
        a.set(0, threshold, 0)
            .map_err(|e| LoadError::of(format!("cannot set the sampling threshold: {e}"), &e))
    }

    /// Puts the ports the `--pid` processes listen on now into the programs' listener map, before
    /// any program runs, so that their servers' connections are kept from the first packet.
    /// Returns the listeners found and, per process whose sockets cannot be read, why.
    pub fn admit_listeners(
        &mut self,
        pids: &[u32],
    ) -> Result<(Vec<Listener>, Vec<String>), String> {
        let map = self
            .ebpf
            .map_mut(names::LISTEN_PORTS)
            .ok_or_else(|| format!("the eBPF object has no map {}", names::LISTEN_PORTS))?;
        let mut ports: HashMap<&mut MapData, u64, u8> =
            HashMap::try_from(map).map_err(|e| e.to_string())?;
        let (mut found, mut failed) = (Vec::new(), Vec::new());
        for &pid in pids {
            match listening_sockets::of_pid(pid) {
                Ok(listeners) => found.extend(listeners),
                Err(e) => failed.push(e),
            }
        }
        for l in &found {
            ports
                .insert(l.key(), 1, 0)
                .map_err(|e| format!("cannot add listening port {}: {e}", l.port))?;
        }
        Ok((found, failed))
    }

    /// Skips a mechanism from now on (`--no-fentry`), as the environment variable does.
    pub fn disable(&mut self, mechanism: Mechanism) {
        if !self.disabled.contains(&mechanism) {
            self.disabled.push(mechanism);
        }
    }

    /// Takes the maps the recorder drains; the programs stay attached as long as `self` lives.
    pub fn take_maps(&mut self) -> Result<CaptureMaps, String> {
        let mut take = |name: &str| {
            self.ebpf
                .take_map(name)
                .ok_or_else(|| format!("the eBPF object has no map {name}"))
        };
        let seen = PerCpuArray::try_from(take(names::SEEN)?).map_err(|e| e.to_string())?;
        let lost = PerCpuArray::try_from(take(names::LOST)?).map_err(|e| e.to_string())?;
        let batches = PerCpuArray::try_from(take(names::BATCHES)?).map_err(|e| e.to_string())?;
        let keep_below = Array::try_from(take(names::KEEP_BELOW)?).map_err(|e| e.to_string())?;
        // A second handle on the counts, for the budget's own thread.
        let seen_again = seen
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("cannot duplicate the counters' descriptor: {e}"))
            .and_then(|fd| MapData::from_fd(fd).map_err(|e| e.to_string()))
            .and_then(|m| {
                PerCpuArray::try_from(aya::maps::Map::PerCpuArray(m)).map_err(|e| e.to_string())
            })?;
        Ok(CaptureMaps {
            rings: std::mem::take(&mut self.rings),
            seen,
            lost,
            batches,
            budget: Some(crate::budget_thread::BudgetMaps {
                seen: seen_again,
                keep_below,
            }),
        })
    }

    fn program(&mut self, name: &str) -> Result<&mut Program, String> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| format!("program {name} is missing from the eBPF object"))
    }
}

/// One line for a program error: the errno, and the verifier's last words when it has any.
fn describe(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            // The verifier ends with statistics; the reason is the line before them.
            let last = log.lines().rev().find(|l| {
                let l = l.trim();
                !l.is_empty()
                    && !l.starts_with("processed ")
                    && !l.starts_with("verification time")
                    && !l.starts_with("stack depth")
            });
            match last {
                Some(l) => format!("load failed: {io_error} (verifier: {})", l.trim()),
                None => format!("load failed: {io_error}"),
            }
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

macro_rules! load_attach {
    ($prog:expr, $ty:ty, |$p:ident| $load:expr, |$q:ident| $attach:expr) => {{
        let $p: &mut $ty = $prog.try_into().map_err(|e: ProgramError| describe(&e))?;
        $load.map_err(|e| describe(&e))?;
        let $q = $p;
        if let Err(e) = $attach {
            let msg = describe(&e);
            let _ = $q.unload();
            return Err(msg);
        }
        Ok(())
    }};
}

impl ProgramLoader for AyaLoader {
    fn attach(&mut self, mechanism: Mechanism, hook: &Hook) -> Result<(), String> {
        if self.disabled.contains(&mechanism) {
            return Err(format!("disabled (--no-fentry or {DISABLE_ENV})"));
        }
        let AyaLoader { ebpf, btf, .. } = self;
        let btf: &Btf = btf;
        let prog = ebpf
            .program_mut(hook.program)
            .ok_or_else(|| format!("program {} is missing from the eBPF object", hook.program))?;
        let target = hook.target;
        match mechanism {
            // A function's return is hooked by the same mechanism as its entry.
            Mechanism::Fentry if matches!(prog, Program::FExit(_)) => {
                load_attach!(prog, FExit, |p| p.load(target, btf), |q| q.attach())
            }
            Mechanism::Fentry => {
                load_attach!(prog, FEntry, |p| p.load(target, btf), |q| q.attach())
            }
            Mechanism::Kprobe => {
                let mut attach = || -> Result<(), String> {
                    load_attach!(prog, KProbe, |p| p.load(), |q| q.attach(target, 0))
                };
                attach().map_err(|e| {
                    if e.contains("devices/kprobe/type") {
                        "this kernel has no kprobe support (no kprobe event source)".to_string()
                    } else {
                        e
                    }
                })
            }
            Mechanism::TpBtf => {
                load_attach!(prog, BtfTracePoint, |p| p.load(target, btf), |q| q.attach())
            }
            Mechanism::Tracepoint => {
                let (category, name) = target
                    .split_once('/')
                    .ok_or_else(|| format!("tracepoint {target} has no category"))?;
                load_attach!(prog, TracePoint, |p| p.load(), |q| q.attach(category, name))
            }
        }
    }

    fn detach(&mut self, hook: &Hook) {
        let Ok(p) = self.program(hook.program) else {
            return;
        };
        let _ = match p {
            Program::FEntry(p) => p.unload(),
            Program::FExit(p) => p.unload(),
            Program::KProbe(p) => p.unload(),
            Program::BtfTracePoint(p) => p.unload(),
            Program::TracePoint(p) => p.unload(),
            _ => Ok(()),
        };
    }
}

impl AyaLoader {
    /// Duplicated descriptors of the named programs, which keep them readable (for
    /// [`crate::program_stats::recursion_misses`]) after the loader, and with it every attachment, is dropped.
    pub fn program_fds(&self, names: &[&str]) -> Vec<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        names
            .iter()
            .filter_map(|n| self.ebpf.program(n))
            .filter_map(|p| p.fd().ok())
            .filter_map(|fd| fd.as_fd().try_clone_to_owned().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_memory_is_split_into_a_power_of_two_per_cpu() {
        let two = RingLayout::new(16 << 20, vec![0, 1]).unwrap();
        assert_eq!(two.per_cpu, 8 << 20);
        assert_eq!(two.total(), 16 << 20);
        assert_eq!(two.wake_bytes(), 2 << 20);
        // A share that is not a power of two rounds down, so the total is never exceeded.
        let three = RingLayout::new(16 << 20, vec![0, 1, 2]).unwrap();
        assert_eq!(three.per_cpu, 4 << 20);
        assert_eq!(three.total(), 12 << 20);
        // The kernel's minimum is a page per ring, even if that exceeds the total asked for.
        let tiny = RingLayout::new(1, vec![0, 1]).unwrap();
        assert_eq!(tiny.per_cpu, 4096);
        // Each ring gets at most 1 GiB, the kernel's limit.
        assert_eq!(
            RingLayout::new(4 << 30, vec![0, 1]).unwrap().per_cpu,
            1 << 30
        );
        assert!(RingLayout::new((4 << 30) + 1, vec![0]).is_err());
        assert!(RingLayout::new(1 << 20, vec![]).is_err());
    }
}

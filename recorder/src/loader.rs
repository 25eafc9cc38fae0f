//! Loading the eBPF object with aya: filters and sizes set before load, then programs loaded and
//! attached one at a time for the attach plan.

use crate::attach_plan::{Hook, Mechanism, ProgramLoader};
use crate::filters::KernelFilters;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, FEntry, KProbe, Program, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use tcptape_ebpf::names;

/// What is set in the object before it is loaded.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Validated filters.
    pub filters: KernelFilters,
    /// Keep 1 flow in N.
    pub sample: u32,
    /// Ring-buffer bytes (a power of two).
    pub ring_bytes: u32,
    /// Wake the reader once this many bytes wait.
    pub wake_bytes: u64,
}

/// The loaded object and the kernel BTF its programs are checked against.
pub struct AyaLoader {
    ebpf: Ebpf,
    btf: Btf,
    disabled: Vec<Mechanism>,
}

/// Environment variable listing mechanisms not to try (comma-separated, e.g. `tp_btf`): how the
/// fallbacks are exercised on a kernel where the preferred mechanism works.
pub const DISABLE_ENV: &str = "TCPTAPE_DISABLE_MECHANISMS";

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

/// The maps the recorder reads while recording.
pub struct CaptureMaps {
    /// Events.
    pub events: RingBuf<MapData>,
    /// Per-CPU events seen per stage code.
    pub seen: PerCpuArray<MapData, u64>,
    /// Per-CPU ring reserve failures.
    pub lost: PerCpuArray<MapData, u64>,
}

/// The ring size the kernel accepts for a requested size: a power of two of at least one page.
pub fn ring_bytes_for(requested: u64) -> Result<u32, String> {
    let page = 4096u64;
    let n = requested
        .max(page)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX);
    if n > 1 << 30 {
        return Err(format!(
            "--ring-size {requested} is too large (at most 1 GiB)"
        ));
    }
    Ok(n as u32)
}

impl AyaLoader {
    /// Parses the object and creates its maps, with the filters in place. No program is loaded.
    pub fn open(cfg: &LoadConfig) -> Result<AyaLoader, String> {
        let btf = Btf::from_sys_fs().map_err(|e| format!("cannot read the kernel BTF: {e}"))?;
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
        let ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .map_max_entries(names::EVENTS, cfg.ring_bytes)
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
            .override_global("targ_sample", &cfg.sample, true)
            .override_global("wake_bytes", &cfg.wake_bytes, true)
            .load(tcptape_ebpf::object())
            .map_err(|e| format!("cannot load the eBPF object: {e}"))?;
        Ok(AyaLoader {
            ebpf,
            btf,
            disabled: disabled_mechanisms(),
        })
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
        let events = RingBuf::try_from(take(names::EVENTS)?).map_err(|e| e.to_string())?;
        let seen = PerCpuArray::try_from(take(names::SEEN)?).map_err(|e| e.to_string())?;
        let lost = PerCpuArray::try_from(take(names::LOST)?).map_err(|e| e.to_string())?;
        Ok(CaptureMaps { events, seen, lost })
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
    fn ring_sizes_round_up_to_a_power_of_two() {
        assert_eq!(ring_bytes_for(16_000_000), Ok(16 << 20));
        assert_eq!(ring_bytes_for(1), Ok(4096));
        assert_eq!(ring_bytes_for(1 << 20), Ok(1 << 20));
        assert!(ring_bytes_for(3 << 30).is_err());
    }
}

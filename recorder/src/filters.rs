//! The recording's filters, validated and turned into the values the eBPF programs read
//! (`targ_*` globals in `ebpf/src/bpf/capture.bpf.h`).

use crate::cli::RecordArgs;
use crate::stage_selection::StageSelection;
use std::net::IpAddr;
use tcptape_common::event::{AF_INET, AF_INET6};
use tcptape_common::metadata::Filters;
use tcptape_ebpf::limits;

/// An address range with its mask, as the kernel compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Network address, masked (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// Mask bytes.
    pub mask: [u8; 16],
    /// Canonical text, e.g. `10.0.0.0/8`.
    pub text: String,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{s}' is not an address range (example: 10.0.0.0/8)"))?;
        let (family, bytes, width): (u16, Vec<u8>, u32) = match ip {
            IpAddr::V4(a) => (AF_INET, a.octets().to_vec(), 32),
            IpAddr::V6(a) => (AF_INET6, a.octets().to_vec(), 128),
        };
        let bits = match bits {
            None => width,
            Some(b) => b
                .parse::<u32>()
                .ok()
                .filter(|&b| b <= width)
                .ok_or_else(|| format!("'{s}': the prefix length must be 0..={width}"))?,
        };
        let mut addr = [0u8; 16];
        let mut mask = [0u8; 16];
        for i in 0..bytes.len() {
            let left = bits.saturating_sub(i as u32 * 8).min(8);
            mask[i] = if left == 0 { 0 } else { 0xffu8 << (8 - left) };
            addr[i] = bytes[i] & mask[i];
        }
        let net: IpAddr = match family {
            AF_INET => IpAddr::from([addr[0], addr[1], addr[2], addr[3]]),
            _ => IpAddr::from(addr),
        };
        Ok(Cidr {
            family,
            addr,
            mask,
            text: format!("{net}/{bits}"),
        })
    }
}

/// Validated filters, ready for the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelFilters {
    /// Ports, either side.
    pub ports: Vec<u16>,
    /// Address ranges, either side.
    pub cidrs: Vec<Cidr>,
    /// Process ids (thread-group ids).
    pub pids: Vec<u32>,
    /// Network namespace inodes.
    pub netns: Vec<u32>,
    /// Interfaces: name and index.
    pub ifaces: Vec<(String, u32)>,
    /// Inode of the network namespace the interface names were resolved in.
    pub ifaces_netns: u32,
    /// Cgroups (v2), each with its descendants.
    pub cgroups: Vec<crate::cgroup_paths::CgroupTarget>,
    /// The stages kept.
    pub stages: StageSelection,
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!("at most {max} {what} can be given (got {n})"));
    }
    Ok(())
}

impl KernelFilters {
    /// Validates the filter arguments; interface names are resolved with `resolve_iface`, cgroup
    /// paths in the hierarchy mounted at `cgroup2` (see [`tcptape_common::metadata::host::cgroup2_mount`]).
    pub fn from_args(
        args: &RecordArgs,
        resolve_iface: impl Fn(&str) -> Option<u32>,
        cgroup2: Option<&std::path::Path>,
    ) -> Result<KernelFilters, String> {
        check_count("--port", args.ports.len(), limits::PORTS)?;
        check_count("--addr", args.addrs.len(), limits::CIDRS)?;
        check_count("--pid", args.pids.len(), limits::PIDS)?;
        check_count("--netns", args.netns.len(), limits::NETNS)?;
        check_count("--iface", args.ifaces.len(), limits::IFACES)?;
        check_count("--cgroup", args.cgroups.len(), limits::CGROUPS)?;
        if args.ports.contains(&0) {
            return Err("--port 0 matches nothing; give a port between 1 and 65535".into());
        }
        // The kernel gives no event pid 0 (the idle task) and no namespace inode 0.
        if args.pids.contains(&0) {
            return Err("--pid 0 matches nothing; give the pid of a process".into());
        }
        if args.netns.contains(&0) {
            return Err(
                "--netns 0 matches nothing; give a namespace inode (stat -L -c %i /proc/PID/ns/net)"
                    .into(),
            );
        }
        let cidrs = args
            .addrs
            .iter()
            .map(|a| a.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()?;
        let ifaces = args
            .ifaces
            .iter()
            .map(|name| {
                resolve_iface(name)
                    .map(|i| (name.clone(), i))
                    .ok_or_else(|| {
                        format!("there is no interface '{name}' in this network namespace")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cgroups = args
            .cgroups
            .iter()
            .map(|c| crate::cgroup_paths::resolve(c, cgroup2))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KernelFilters {
            cgroups,
            ports: args.ports.clone(),
            cidrs,
            pids: args.pids.clone(),
            netns: args.netns.clone(),
            ifaces_netns: if ifaces.is_empty() { 0 } else { own_netns() },
            ifaces,
            stages: StageSelection::new(&args.stages),
        })
    }

    /// True when `--pid`, `--iface` or `--cgroup` is on: they admit flows from any stage's
    /// events.
    pub fn admits_flows(&self) -> bool {
        !self.pids.is_empty() || !self.ifaces.is_empty() || !self.cgroups.is_empty()
    }

    /// The filters as recording metadata.
    pub fn to_meta(&self) -> Filters {
        Filters {
            ports: self.ports.clone(),
            addrs: self.cidrs.iter().map(|c| c.text.clone()).collect(),
            pids: self.pids.clone(),
            netns: self.netns.clone(),
            ifaces: self.ifaces.iter().map(|(n, _)| n.clone()).collect(),
            stages: self.stages.names(),
            cgroups: self.cgroups.iter().map(|c| c.path.clone()).collect(),
        }
    }

    /// Ids and depths of the cgroups, for the kernel globals.
    pub fn cgroup_arrays(&self) -> ([u64; limits::CGROUPS], [u32; limits::CGROUPS]) {
        let ids: Vec<u64> = self.cgroups.iter().map(|c| c.id).collect();
        let levels: Vec<u32> = self.cgroups.iter().map(|c| c.level).collect();
        (pad(&ids), pad(&levels))
    }

    /// Fixed-size arrays for the kernel globals, padded with zeros.
    pub fn port_array(&self) -> [u16; limits::PORTS] {
        pad(&self.ports)
    }

    /// See [`KernelFilters::port_array`].
    pub fn pid_array(&self) -> [u32; limits::PIDS] {
        pad(&self.pids)
    }

    /// See [`KernelFilters::port_array`].
    pub fn netns_array(&self) -> [u32; limits::NETNS] {
        pad(&self.netns)
    }

    /// See [`KernelFilters::port_array`].
    pub fn ifindex_array(&self) -> [u32; limits::IFACES] {
        let idx: Vec<u32> = self.ifaces.iter().map(|(_, i)| *i).collect();
        pad(&idx)
    }

    /// Families, addresses and masks of the address ranges.
    #[allow(clippy::type_complexity)]
    pub fn cidr_arrays(
        &self,
    ) -> (
        [u16; limits::CIDRS],
        [[u8; 16]; limits::CIDRS],
        [[u8; 16]; limits::CIDRS],
    ) {
        let mut fam = [0u16; limits::CIDRS];
        let mut addr = [[0u8; 16]; limits::CIDRS];
        let mut mask = [[0u8; 16]; limits::CIDRS];
        for (i, c) in self.cidrs.iter().enumerate() {
            fam[i] = c.family;
            addr[i] = c.addr;
            mask[i] = c.mask;
        }
        (fam, addr, mask)
    }
}

fn pad<T: Copy + Default, const N: usize>(v: &[T]) -> [T; N] {
    let mut out = [T::default(); N];
    out[..v.len()].copy_from_slice(v);
    out
}

/// The inode of the recorder's network namespace (0 if unknown).
pub fn own_netns() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino() as u32)
}

/// The index of a network interface in the recorder's network namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_mask() {
        let c: Cidr = "10.200.3.77/24".parse().unwrap();
        assert_eq!(c.family, AF_INET);
        assert_eq!(&c.addr[..4], &[10, 200, 3, 0]);
        assert_eq!(&c.mask[..4], &[255, 255, 255, 0]);
        assert_eq!(c.text, "10.200.3.0/24");
        let c: Cidr = "10.0.0.0/12".parse().unwrap();
        assert_eq!(&c.mask[..4], &[255, 240, 0, 0]);
        let c: Cidr = "fd00::1/64".parse().unwrap();
        assert_eq!(c.family, AF_INET6);
        assert_eq!(c.mask[7], 255);
        assert_eq!(c.mask[8], 0);
        assert_eq!(c.text, "fd00::/64");
        let host: Cidr = "192.168.1.1".parse().unwrap();
        assert_eq!(host.text, "192.168.1.1/32");
        for bad in ["10.0.0.0/33", "banana", "10.0.0/8", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_interfaces_are_checked() {
        let mut args = RecordArgs {
            ports: (1..=9).collect(),
            ..RecordArgs::default()
        };
        let e = KernelFilters::from_args(&args, |_| Some(1), None).unwrap_err();
        assert!(e.contains("at most 8 --port"), "{e}");
        args.ports = vec![443];
        args.ifaces = vec!["nope0".into()];
        let e = KernelFilters::from_args(&args, |_| None, None).unwrap_err();
        assert!(e.contains("nope0"), "{e}");
        let f = KernelFilters::from_args(&args, |_| Some(7), None).unwrap();
        assert_eq!(f.ifindex_array()[0], 7);
        assert_eq!(f.port_array(), [443, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(f.to_meta().ifaces, vec!["nope0"]);
        args.ports = vec![0];
        assert!(KernelFilters::from_args(&args, |_| Some(7), None).is_err());
        args.ports = vec![443];
        args.pids = vec![0];
        let e = KernelFilters::from_args(&args, |_| Some(7), None).unwrap_err();
        assert!(e.contains("--pid 0"), "{e}");
        args.pids = vec![1];
        args.netns = vec![0];
        let e = KernelFilters::from_args(&args, |_| Some(7), None).unwrap_err();
        assert!(e.contains("--netns 0"), "{e}");
    }
}

//! The environment fingerprint stored with a recording: what must match for two recordings to be
//! comparable (congestion control, socket buffer limits, offloads per interface).

use tcptape_common::metadata::{host, Environment, InterfaceOffloads};

/// `ETHTOOL_GGRO`, `ETHTOOL_GTSO`, `ETHTOOL_GGSO` from `linux/ethtool.h`.
const ETHTOOL_GTSO: u32 = 0x0000_001e;
const ETHTOOL_GGSO: u32 = 0x0000_0023;
const ETHTOOL_GGRO: u32 = 0x0000_002b;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Reads one ethtool boolean of an interface; `None` when the driver does not answer.
fn ethtool_flag(sock: libc::c_int, name: &str, cmd: u32) -> Option<bool> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut value = EthtoolValue { cmd, data: 0 };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    for (d, s) in req.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq whose data points at a live ethtool_value.
    let rc = unsafe { libc::ioctl(sock, SIOCETHTOOL as _, &mut req) };
    (rc == 0).then_some(value.data != 0)
}

/// Offloads of every interface in this network namespace.
pub fn interfaces() -> Vec<InterfaceOffloads> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    // SAFETY: plain socket(2) call; the fd is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    let mut out: Vec<InterfaceOffloads> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .map(|name| {
            let ifindex = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let flag = |cmd| {
                (sock >= 0)
                    .then(|| ethtool_flag(sock, &name, cmd))
                    .flatten()
            };
            InterfaceOffloads {
                gro: flag(ETHTOOL_GGRO),
                tso: flag(ETHTOOL_GTSO),
                gso: flag(ETHTOOL_GGSO),
                name,
                ifindex,
            }
        })
        .collect();
    if sock >= 0 {
        // SAFETY: `sock` is an fd this function opened.
        unsafe { libc::close(sock) };
    }
    out.sort_by_key(|i| i.ifindex);
    out
}

/// The fingerprint of this host now.
pub fn fingerprint() -> Environment {
    let sysctl = |n: &str| host::sysctl(n).unwrap_or_default();
    Environment {
        kernel_release: host::kernel_release(),
        congestion_control: sysctl("net/ipv4/tcp_congestion_control"),
        tcp_rmem: sysctl("net/ipv4/tcp_rmem"),
        tcp_wmem: sysctl("net/ipv4/tcp_wmem"),
        interfaces: interfaces(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_with_its_offloads() {
        let ifs = interfaces();
        let lo = ifs.iter().find(|i| i.name == "lo").expect("lo exists");
        assert_eq!(lo.ifindex, 1);
        // The loopback driver answers ethtool: GSO is on by default.
        assert_eq!(lo.gso, Some(true));
        let env = fingerprint();
        assert!(!env.congestion_control.is_empty());
        assert_eq!(env.tcp_rmem.split(' ').count(), 3);
    }
}

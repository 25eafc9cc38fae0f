//! The TCP ports a process listens on, by network namespace: what lets `--pid` keep a server's
//! connections from their first packet.
//!
//! The kernel completes a server's handshake before the server's process touches the new socket,
//! so no event of the handshake carries the server's pid. The programs admit a packet arriving at
//! a port the process listens on instead, and the flow from then on. Listeners that exist when
//! the recording starts are found here, from `/proc`; the programs add the ones opened later.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// TCP state code of a listening socket in `/proc/net/tcp` (`TCP_LISTEN`).
const LISTEN: u8 = 0x0a;

/// A listening port in one network namespace, as the programs' `LISTEN_PORTS` map keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    /// Inode of the network namespace.
    pub netns: u32,
    /// Local port.
    pub port: u16,
}

impl Listener {
    /// The map key: namespace inode in the high bits, port in the low 16 (`listen_key` in
    /// `capture.bpf.h`).
    pub fn key(&self) -> u64 {
        (u64::from(self.netns) << 16) | u64::from(self.port)
    }
}

/// The socket inodes among a process's file descriptors (`socket:[INODE]` links).
fn socket_inodes(proc_dir: &Path) -> std::io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(proc_dir.join("fd"))? {
        // A descriptor closed while the directory is read is simply gone.
        let Ok(link) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        if let Some(inode) = link
            .to_str()
            .and_then(|s| s.strip_prefix("socket:["))
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

/// The local ports of the listening sockets in a `/proc/net/tcp` or `tcp6` table whose inode is
/// one of `inodes`. Lines that do not parse are skipped (the header among them).
pub fn listening_ports(table: &str, inodes: &HashSet<u64>) -> Vec<u16> {
    let mut ports = Vec::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let state = u8::from_str_radix(state, 16).ok();
        let inode: Option<u64> = inode.parse().ok();
        if let (Some(port), Some(LISTEN), Some(inode)) = (port, state, inode) {
            if inodes.contains(&inode) {
                ports.push(port);
            }
        }
    }
    ports
}

/// The TCP ports process `pid` listens on now (IPv4 and IPv6), in its network namespace. The
/// error is a sentence for the user: what is missing and what it means for the recording.
pub fn of_pid(pid: u32) -> Result<Vec<Listener>, String> {
    let dir = Path::new("/proc").join(pid.to_string());
    if !dir.exists() {
        return Err(format!(
            "there is no process {pid}; --pid {pid} matches nothing unless one starts"
        ));
    }
    let what = |e: std::io::Error| {
        format!(
            "cannot read the sockets of process {pid} ({e}); connections to the ports it \
             listens on now are kept from their first read or write"
        )
    };
    let netns = std::fs::metadata(dir.join("ns/net")).map_err(what)?.ino() as u32;
    let inodes = socket_inodes(&dir).map_err(what)?;
    let mut found = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        // A kernel without IPv6 has no tcp6 table.
        let Ok(text) = std::fs::read_to_string(dir.join(table)) else {
            continue;
        };
        found.extend(
            listening_ports(&text, &inodes)
                .into_iter()
                .map(|port| Listener { netns, port }),
        );
    }
    found.sort();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn only_the_processs_listening_sockets_count() {
        // 4242 listens on 8080; 999 listens but is another process's; 4243 is a connection.
        let inodes: HashSet<u64> = [4242, 4243].into();
        assert_eq!(listening_ports(TCP, &inodes), vec![8080]);
        assert!(listening_ports(TCP, &HashSet::new()).is_empty());
    }

    #[test]
    fn ipv6_tables_parse_alike() {
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_ports(tcp6, &[77].into()), vec![443]);
    }

    #[test]
    fn the_map_key_puts_the_namespace_above_the_port() {
        let l = Listener {
            netns: 4026531840,
            port: 8080,
        };
        assert_eq!(l.key(), (4026531840u64 << 16) | 8080);
    }

    #[test]
    fn this_process_listening_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = of_pid(std::process::id()).unwrap();
        assert!(found.iter().any(|x| x.port == port), "{found:?}");
        // A connected socket of its own is not a listener.
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local = c.local_addr().unwrap().port();
        assert!(!of_pid(std::process::id())
            .unwrap()
            .iter()
            .any(|x| x.port == local));
    }

    #[test]
    fn a_missing_process_is_an_error_that_names_it() {
        let e = of_pid(u32::MAX - 1).unwrap_err();
        assert!(e.contains(&format!("no process {}", u32::MAX - 1)), "{e}");
    }
}

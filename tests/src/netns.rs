//! Two network namespaces joined by a veth pair, with unique names, removed on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace (`ip netns exec`).
pub fn run_in(ns: &str, cmd: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns, cmd];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// A sender namespace and a receiver namespace, joined by a veth pair:
/// `<prefix>-a` holds `10.200.<n>.1` on `va`, `<prefix>-b` holds `10.200.<n>.2` on `vb`.
pub struct Pair {
    /// The sender's namespace name.
    pub a: String,
    /// The receiver's namespace name.
    pub b: String,
    /// The sender's address.
    pub addr_a: String,
    /// The receiver's address.
    pub addr_b: String,
    /// The third octet of the subnet.
    pub subnet: u8,
}

impl Pair {
    /// Creates the namespaces and the link, up and addressed.
    pub fn new() -> Result<Pair, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let subnet = ((pid.wrapping_mul(7) + n * 13) % 200 + 20) as u8;
        let prefix = format!("tt{pid}x{n}");
        let pair = Pair {
            a: format!("{prefix}-a"),
            b: format!("{prefix}-b"),
            addr_a: format!("10.200.{subnet}.1"),
            addr_b: format!("10.200.{subnet}.2"),
            subnet,
        };
        // A name with this pid can only be left by a dead process whose test was killed before
        // it could clean up (pids are reused): remove it.
        for ns in [&pair.a, &pair.b] {
            if std::path::Path::new("/run/netns").join(ns).exists() {
                let _ = run("ip", &["netns", "del", ns]);
            }
        }
        // Dropping `pair` on any error below removes what was created.
        run("ip", &["netns", "add", &pair.a])?;
        run("ip", &["netns", "add", &pair.b])?;
        run(
            "ip",
            &[
                "-n", &pair.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
                &pair.b,
            ],
        )?;
        for (ns, dev, addr) in [(&pair.a, "va", &pair.addr_a), (&pair.b, "vb", &pair.addr_b)] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
            )?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// Adds IPv6 addresses (`fd00:200:<subnet>::1` and `::2`, no duplicate detection) and returns
    /// them as (sender, receiver).
    pub fn add_ipv6(&self) -> Result<(String, String), String> {
        let a = format!("fd00:200:{:x}::1", self.subnet);
        let b = format!("fd00:200:{:x}::2", self.subnet);
        for (ns, dev, addr) in [(&self.a, "va", &a), (&self.b, "vb", &b)] {
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/64"),
                    "dev",
                    dev,
                    "nodad",
                ],
            )?;
        }
        Ok((a, b))
    }

    /// TCP's segment size over the pair: veth's default MTU of 1500, with TCP timestamps.
    pub const MSS: u32 = 1448;

    /// Shapes the sender's egress with a tbf qdisc.
    pub fn shape_sender(&self, rate: &str, burst: &str, limit: &str) -> Result<(), String> {
        run(
            "tc",
            &[
                "-n", &self.a, "qdisc", "add", "dev", "va", "root", "tbf", "rate", rate, "burst",
                burst, "limit", limit,
            ],
        )
        .map(|_| ())
    }

    /// Drops every `n`th TCP packet to `port` arriving at the receiver (nft `numgen inc`).
    pub fn drop_at_receiver(&self, port: u16, n: u32) -> Result<(), String> {
        self.receiver_input_rule(&format!("tcp dport {port} numgen inc mod {n} == 0 drop"))
    }

    /// Drops the first SYN of every connection to `port` at the receiver (every other SYN, the
    /// retransmitted one passes): each connection retransmits exactly one segment, its SYN.
    pub fn drop_first_syns(&self, port: u16) -> Result<(), String> {
        self.receiver_input_rule(&format!(
            "tcp dport {port} tcp flags & (syn | ack) == syn numgen inc mod 2 == 0 drop"
        ))
    }

    /// Removes every rule [`Pair::drop_at_receiver`] and its kin added.
    pub fn clear_receiver_rules(&self) -> Result<(), String> {
        run_in(&self.b, "nft", &["delete", "table", "inet", "tcptape_test"]).map(|_| ())
    }

    /// Adds `rule` to the receiver's nft input chain (created with the first rule).
    pub fn receiver_input_rule(&self, rule: &str) -> Result<(), String> {
        let rules = format!(
            "table inet tcptape_test {{\n chain input {{\n  type filter hook input priority 0;\n  \
             {rule}\n }}\n}}\n"
        );
        let file = std::env::temp_dir().join(format!("{}.nft", self.b));
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        let r = run_in(&self.b, "nft", &["-f", file.to_str().unwrap_or_default()]);
        let _ = std::fs::remove_file(&file);
        r.map(|_| ())
    }

    /// Waits until no socket on `port` in either namespace can still send: each one is gone,
    /// listening or in TIME-WAIT. TCP counters read afterwards then include every retransmission
    /// of the port's connections (a receiver retransmits its FIN after the transfer has ended
    /// when the ACK of it was dropped).
    pub fn wait_until_quiet(&self, port: u16, timeout: std::time::Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        let filter = format!("( sport = :{port} or dport = :{port} )");
        loop {
            let mut open = Vec::new();
            for ns in [&self.a, &self.b] {
                let out = run_in(ns, "ss", &["-Htan", "state", "all", &filter])?;
                open.extend(
                    out.lines()
                        .filter(|l| {
                            let state = l.split_whitespace().next().unwrap_or("");
                            !["LISTEN", "TIME-WAIT"].contains(&state)
                        })
                        .map(|l| format!("{ns}: {l}")),
                );
            }
            if open.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("sockets on port {port} still open: {open:?}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits until a socket in namespace `ns` listens on TCP `port`.
    pub fn wait_until_listening(
        ns: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        let filter = format!("sport = :{port}");
        while run_in(ns, "ss", &["-Hltn", &filter])?.trim().is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(format!("nothing listens on port {port} in {ns}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// The inode of a namespace (what `--netns` and the `netns` column use).
    pub fn inode(ns: &str) -> Result<u32, String> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/var/run/netns/{ns}"))
            .map(|m| m.ino() as u32)
            .map_err(|e| format!("{ns}: {e}"))
    }

    /// The interface index of `dev` in `ns`.
    pub fn ifindex(ns: &str, dev: &str) -> Result<u32, String> {
        let out = run_in(ns, "cat", &[&format!("/sys/class/net/{dev}/ifindex")])?;
        out.trim().parse().map_err(|_| format!("bad ifindex {out}"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace removes its veth end, and with it the peer.
        let _ = run("ip", &["netns", "del", &self.a]);
        let _ = run("ip", &["netns", "del", &self.b]);
    }
}

/// Moves the calling thread into a named network namespace.
pub fn enter(ns: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let f =
        std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
    // SAFETY: a valid namespace fd; setns affects only the calling thread for CLONE_NEWNET.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Counter `name` (e.g. `tx_packets`) of interface `dev` in namespace `ns`.
pub fn link_counter(ns: &str, dev: &str, name: &str) -> Result<u64, String> {
    let path = format!("/sys/class/net/{dev}/statistics/{name}");
    let text = run_in(ns, "cat", &[&path])?;
    text.trim()
        .parse()
        .map_err(|e| format!("{path}: {text:?}: {e}"))
}

/// TCP counters of the calling thread's network namespace (`/proc/thread-self/net/snmp` and
/// `netstat`), by name, e.g. `RetransSegs`, `TCPRetransFail`.
pub fn tcp_counters() -> Result<std::collections::HashMap<String, u64>, String> {
    let mut out = std::collections::HashMap::new();
    for file in ["snmp", "netstat"] {
        let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
            .map_err(|e| format!("{file}: {e}"))?;
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let (Some((p1, names)), Some((p2, values))) =
                (names.split_once(':'), values.split_once(':'))
            else {
                continue;
            };
            if p1 != p2 || !(p1 == "Tcp" || p1 == "TcpExt") {
                continue;
            }
            for (k, v) in names.split_whitespace().zip(values.split_whitespace()) {
                if let Ok(v) = v.parse() {
                    out.insert(k.to_string(), v);
                }
            }
        }
    }
    Ok(out)
}

/// TCP counters of namespace `ns` ([`tcp_counters`], read from a thread inside it).
pub fn tcp_counters_of(ns: &str) -> Result<std::collections::HashMap<String, u64>, String> {
    spawn_in(ns, tcp_counters)
        .join()
        .map_err(|_| "the counter thread panicked".to_string())?
}

/// Runs `f` on a new thread inside namespace `ns`.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, String>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns)?;
        f()
    })
}

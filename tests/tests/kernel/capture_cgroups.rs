//! Cgroups, for real: two "containers" (cgroups the test makes, each with a client process moved
//! into it) send to one server at once. `--cgroup` with one container's cgroup keeps exactly its
//! flow, whole (both directions, the server's side, every byte), and nothing of the other's;
//! without it, every socket event names its own socket's cgroup (the server's in a third), the
//! recording names the cgroups by path, and the report splits bytes by container.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use tcptape_e2e::netns::Pair;
use tcptape_e2e::recorder::record_to_temp;
use tcptape_e2e::recording::other_port;
use tcptape_e2e::{should_run, traffic};

const PORT: u16 = 45_211;
const BYTES: u64 = 300_000;

/// Cgroups made for one test below the cgroup v2 root, removed (deepest first) on drop.
struct TestCgroups {
    mount: PathBuf,
    /// Paths below the root, parents first.
    made: Vec<String>,
}

impl TestCgroups {
    fn new(paths: &[&str]) -> TestCgroups {
        let mount = tcptape_common::metadata::host::cgroup2_mount().expect("a cgroup v2 hierarchy");
        let top = format!("tcptape-test-{}", std::process::id());
        let mut made = vec![format!("/{top}")];
        made.extend(paths.iter().map(|p| format!("/{top}/{p}")));
        for p in &made {
            std::fs::create_dir_all(mount.join(&p[1..])).expect("mkdir in the cgroup hierarchy");
        }
        TestCgroups { mount, made }
    }

    /// The path below the root of the `i`th path given to `new`.
    fn path(&self, i: usize) -> &str {
        &self.made[i + 1]
    }

    /// Starts `ip netns exec NS ARGS...` moved into cgroup `i` before it runs.
    fn spawn_in(&self, i: usize, ns: &str, args: &[&str]) -> Child {
        let procs = CString::new(
            self.mount
                .join(&self.path(i)[1..])
                .join("cgroup.procs")
                .to_str()
                .unwrap(),
        )
        .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        // SAFETY: only async-signal-safe calls between fork and exec: "0" moves the writer.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        cmd.spawn().expect("a client process")
    }
}

impl Drop for TestCgroups {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            let _ = std::fs::remove_dir(self.mount.join(&p[1..]));
        }
    }
}

#[test]
fn cgroup_filter_keeps_one_containers_flows_whole_and_nothing_of_the_other() {
    if !should_run("cgroup_filter_keeps_one_containers_flows_whole_and_nothing_of_the_other") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    // Container a's client runs in a cgroup below a's: the filter takes descendants.
    let cg = TestCgroups::new(&["a", "a/inner", "b"]);
    let traffic_bin = env!("CARGO_BIN_EXE_tcptape-traffic");
    let (port, bytes) = (PORT.to_string(), BYTES.to_string());
    let mut pids = (0u32, 0u32);
    let r = record_to_temp(None, &["--cgroup", cg.path(0), "--port", &port], || {
        let listener = traffic::listen_in(&pair.b, &pair.addr_b, PORT).unwrap();
        let server = std::thread::spawn(move || {
            traffic::receive(listener, 2, 64 << 10, std::time::Duration::ZERO)
        });
        let args = |addr: &str| -> Vec<String> {
            [traffic_bin, "bulk", addr, &port, &bytes]
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let a_args = args(&pair.addr_b);
        let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
        let mut a = cg.spawn_in(1, &pair.a, &a_args);
        let mut b = cg.spawn_in(2, &pair.a, &a_args);
        // `ip netns exec` execs the client: the pid is the client's.
        pids = (a.id(), b.id());
        assert!(a.wait().unwrap().success(), "client a");
        assert!(b.wait().unwrap().success(), "client b");
        assert_eq!(
            server.join().unwrap().unwrap(),
            2 * BYTES,
            "the server read both"
        );
    });
    assert_eq!(r.meta.filters.cgroups, [cg.path(0)]);
    assert_eq!(r.lost(), 0);
    // Which connection is a's: the one its process wrote on.
    let writes: Vec<_> = r.of("tx_sendmsg").collect();
    assert!(!writes.is_empty(), "a's writes were recorded");
    assert!(
        writes.iter().all(|w| w.pid == Some(pids.0)),
        "only a's writes: {:?}",
        writes.iter().map(|w| w.pid).collect::<Vec<_>>()
    );
    // Other events may carry b's pid: on veth a packet of a's flow can be handled in softirq on
    // the back of b's system call. Their flow says whose they are, below.
    let a_port = writes[0].sport.expect("a source port");
    // Every event is a's flow (the listening socket aside), and the flow is whole: its data
    // and ACKs through every packet stage, the server's reads, every byte.
    let client_port = |x: &tcptape_common::record::Record| other_port(x, PORT);
    let ports: std::collections::BTreeSet<u16> = r.rows.iter().filter_map(client_port).collect();
    assert!(
        ports.iter().all(|&p| p == a_port),
        "flows other than a's ({a_port}): {ports:?}"
    );
    for stage in ["tx_driver", "rx_driver", "rx_tcp_est"] {
        for to_server in [true, false] {
            assert!(
                r.of(stage)
                    .any(|x| client_port(x) == Some(a_port) && (x.dport == Some(PORT)) == to_server),
                "no {stage} event of a's flow with the server's port as {}",
                if to_server { "destination" } else { "source" }
            );
        }
    }
    r.assert_bytes("tx_sendmsg", BYTES);
    r.assert_bytes("rx_app", BYTES);
}

#[test]
fn a_cgroup_that_does_not_exist_is_a_usage_error() {
    if !should_run("a_cgroup_that_does_not_exist_is_a_usage_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(tcptape_e2e::recorder::binary().unwrap())
        .args(["-o", dir.path().join("r.parquet").to_str().unwrap()])
        .args(["--cgroup", "/tcptape-no-such-cgroup"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("there is no cgroup") && err.contains("tcptape-no-such-cgroup"),
        "{err}"
    );
    assert!(!dir.path().join("r.parquet").exists());
}

/// The cgroup v2 id (directory inode) of a path below the root.
fn cgroup_id(cg: &TestCgroups, path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(cg.mount.join(&path[1..])).unwrap().ino()
}

#[test]
fn every_flow_is_attributed_to_the_cgroup_of_its_socket_and_the_report_splits_by_container() {
    if !should_run(
        "every_flow_is_attributed_to_the_cgroup_of_its_socket_and_the_report_splits_by_container",
    ) {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    let cg = TestCgroups::new(&["a", "a/inner", "b", "srv"]);
    let traffic_bin = env!("CARGO_BIN_EXE_tcptape-traffic");
    let (port, bytes) = ((PORT + 1).to_string(), BYTES.to_string());
    // Every 20th data packet dropped: retransmissions to attribute too.
    pair.receiver_input_rule(&format!(
        "tcp dport {} meta length > 200 numgen inc mod 20 == 0 drop",
        PORT + 1
    ))
    .expect("nft");
    let retrans = || tcptape_e2e::netns::tcp_counters_of(&pair.a).unwrap()["RetransSegs"];
    let retrans0 = retrans();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.parquet");
    let mut pids = (0u32, 0u32);
    tcptape_e2e::recorder::record_during(
        &[
            "-o",
            out.to_str().unwrap(),
            "--port",
            &port,
            "--budget",
            "off",
        ],
        |_| {
            // Server and clients are processes of their own, each moved into its cgroup.
            let mut server =
                cg.spawn_in(3, &pair.b, &[traffic_bin, "sink", &pair.addr_b, &port, "2"]);
            let client = [traffic_bin, "bulk", pair.addr_b.as_str(), &port, &bytes];
            let mut a = cg.spawn_in(1, &pair.a, &client);
            let mut b = cg.spawn_in(2, &pair.a, &client);
            pids = (a.id(), b.id());
            assert!(a.wait().unwrap().success(), "client a");
            assert!(b.wait().unwrap().success(), "client b");
            assert!(server.wait().unwrap().success(), "server");
        },
    );
    let retrans_kernel = retrans() - retrans0;
    let r = tcptape_e2e::recording::load(&out).unwrap();
    assert_eq!(r.lost(), 0);
    let (id_a, id_b, id_srv) = (
        cgroup_id(&cg, cg.path(1)),
        cgroup_id(&cg, cg.path(2)),
        cgroup_id(&cg, cg.path(3)),
    );
    let port_of = |pid: u32| {
        r.of("tx_sendmsg")
            .find(|w| w.pid == Some(pid))
            .and_then(|w| w.sport)
            .expect("the client's writes")
    };
    let (port_a, port_b) = (port_of(pids.0), port_of(pids.1));
    let server_port = PORT + 1;
    // Every socket event names its socket's cgroup: a client's side its client's, the server's
    // side (source port the server's) the server's, softirq events included.
    let mut checked = 0;
    for x in r.rows.iter().filter(|x| x.cgroup.is_some()) {
        let want = match (x.sport, x.dport) {
            (Some(p), _) if p == server_port => id_srv,
            (Some(p), _) if p == port_a => id_a,
            (Some(p), _) if p == port_b => id_b,
            _ => continue, // the client's socket before its port was chosen
        };
        assert_eq!(x.cgroup, Some(want), "{x:?}");
        checked += 1;
    }
    assert!(checked >= 50, "{checked} socket events checked");
    // The writes' task cgroups are the clients'.
    for w in r.of("tx_sendmsg") {
        let want = if w.pid == Some(pids.0) { id_a } else { id_b };
        assert_eq!(w.task_cgroup, Some(want), "{w:?}");
    }
    // The recording names them by path.
    let named = |id: u64| {
        r.meta
            .cgroups
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.path.clone())
    };
    assert_eq!(named(id_a).as_deref(), Some(cg.path(1)));
    assert_eq!(named(id_srv).as_deref(), Some(cg.path(3)));
    // The report: each container its own bytes; the server read both.
    let report = tcptape_e2e::analyzer::run(&["report", "--format", "json", out.to_str().unwrap()]);
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let share = |id: u64| {
        report["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cgroup"] == id)
            .unwrap_or_else(|| panic!("no cgroup {id} in {}", report["cgroups"]))
            .clone()
    };
    assert_eq!(share(id_a)["bytes_written"], BYTES);
    assert_eq!(share(id_b)["bytes_written"], BYTES);
    assert_eq!(share(id_srv)["bytes_read"], 2 * BYTES);
    assert_eq!(share(id_a)["path"], cg.path(1));
    // The retransmissions: each client's socket's, all that the kernel counted.
    let (ra, rb) = (
        share(id_a)["retransmitted_segments"].as_u64().unwrap(),
        share(id_b)["retransmitted_segments"].as_u64().unwrap(),
    );
    let of_port = |p: u16| -> u64 {
        r.of("retransmit")
            .filter(|x| x.sport == Some(p))
            .map(|x| x.segs.unwrap_or(1) as u64)
            .sum()
    };
    // The drops fall on either client's packets as the shared counter goes: the sum is > 0.
    assert!(ra + rb > 0, "the clients retransmitted: {ra} {rb}");
    assert_eq!((ra, rb), (of_port(port_a), of_port(port_b)));
    assert_eq!(
        ra + rb,
        retrans_kernel,
        "vs TcpRetransSegs of the clients' namespace"
    );
    assert!(
        r.of("retransmit").all(|x| x.cgroup.is_some()),
        "every retransmission names its socket's cgroup"
    );
    eprintln!(
        "{checked} socket events attributed; retransmitted a {ra}, b {rb}, TcpRetransSegs \
         {retrans_kernel}"
    );
    // --cgroup on the analyzer: a's tree is a's flow only.
    let only_a = tcptape_e2e::analyzer::run(&[
        "report",
        "--format",
        "json",
        out.to_str().unwrap(),
        "--cgroup",
        cg.path(0),
    ]);
    assert!(
        only_a.status.success(),
        "{}",
        String::from_utf8_lossy(&only_a.stderr)
    );
    let only_a: serde_json::Value = serde_json::from_slice(&only_a.stdout).unwrap();
    let flows: std::collections::BTreeSet<String> = only_a["stages_per_flow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flow"].as_str().unwrap().to_string())
        .collect();
    // a's flows: its connection, and any attempt refused before the server listened (the
    // client connects again), each a socket of a's cgroup; none of b's.
    let ports_of = |id: u64| -> std::collections::BTreeSet<u16> {
        r.rows
            .iter()
            .filter(|x| x.cgroup == Some(id) && x.dport == Some(server_port))
            .filter_map(|x| x.sport)
            .filter(|p| *p != 0)
            .collect()
    };
    let (ports_a, ports_b) = (ports_of(id_a), ports_of(id_b));
    let client_port = |f: &str| -> u16 {
        let client = f
            .split('-')
            .find(|end| !end.ends_with(&format!(":{server_port}")));
        client
            .and_then(|end| end.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("flow {f}"))
    };
    assert!(
        flows.iter().any(|f| client_port(f) == port_a),
        "{flows:?} has a's connection (port {port_a})"
    );
    for f in &flows {
        let p = client_port(f);
        assert!(
            ports_a.contains(&p) && !ports_b.contains(&p),
            "{f}: a's sockets had ports {ports_a:?}, b's {ports_b:?}"
        );
    }
}

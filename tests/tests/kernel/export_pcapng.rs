//! `tcptape export --format pcapng`, read by tshark (a tool tcptape did not write): a real
//! recording over veth, one packet per segment (TSO/GSO off), every 10th data packet dropped at
//! the receiver. tshark reads the file without a warning; its packets, connections, payload bytes
//! and retransmissions are those of the recording, of the report, and of the kernel's counters.

use std::collections::BTreeSet;
use std::process::Command;
use tcptape_e2e::netns::{link_counter, run_in, tcp_counters_of, Pair};
use tcptape_e2e::recorder::record_during;
use tcptape_e2e::{analyzer, should_run, traffic};

const PORT: u16 = 45_321;
const CONNS: usize = 3;
const BYTES: u64 = 400_000;

/// `tshark -r FILE ARGS`: its standard output, after checking it warned of nothing (the note
/// tshark prints when run as root aside).
fn tshark(file: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("tshark is installed (ci/test.sh installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user \"root\""))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "tshark {args:?}: {err}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tshark_reads_the_export_and_counts_what_the_recording_and_the_kernel_count() {
    if !should_run("tshark_reads_the_export_and_counts_what_the_recording_and_the_kernel_count") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    for (ns, dev) in [(&pair.a, "va"), (&pair.b, "vb")] {
        run_in(ns, "ethtool", &["-K", dev, "tso", "off", "gso", "off"]).expect("ethtool");
    }
    pair.receiver_input_rule(&format!(
        "tcp dport {PORT} meta length > 200 numgen inc mod 10 == 0 drop"
    ))
    .expect("nft");
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.parquet");
    let port = PORT.to_string();
    let retrans = || tcp_counters_of(&pair.a).unwrap()["RetransSegs"];
    let sent = || {
        link_counter(&pair.a, "va", "tx_packets").unwrap()
            + link_counter(&pair.b, "vb", "tx_packets").unwrap()
    };
    let (retrans0, sent0) = (retrans(), sent());
    record_during(
        &[
            "-o",
            rec.to_str().unwrap(),
            "--port",
            &port,
            "--budget",
            "off",
        ],
        |_| {
            let read = traffic::transfers(&pair, PORT, CONNS, BYTES, 64 << 10)
                .join()
                .unwrap();
            assert_eq!(read, CONNS as u64 * BYTES);
            pair.wait_until_quiet(PORT, std::time::Duration::from_secs(10))
                .expect("the connections are closed");
        },
    );
    let (retrans_kernel, sent_kernel) = (retrans() - retrans0, sent() - sent0);
    let r = tcptape_e2e::recording::load(&rec).unwrap();
    assert_eq!(r.lost(), 0);

    let pcap = dir.path().join("rec.pcapng");
    let out = analyzer::run(&[
        "export",
        rec.to_str().unwrap(),
        "--format",
        "pcapng",
        "--stage",
        "tx_driver",
        "-o",
        pcap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = analyzer::run(&["report", "--format", "json", rec.to_str().unwrap()]);
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();

    // Packets: one per transmitted TCP packet.
    let fields = tshark(
        &pcap,
        &[
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.len",
            "-e",
            "tcp.analysis.retransmission",
            "-e",
            "tcp.analysis.fast_retransmission",
            "-e",
            "tcp.analysis.spurious_retransmission",
            "-e",
            "tcp.analysis.out_of_order",
            "-e",
            "frame.comment",
        ],
    );
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.splitn(8, ',').collect()).collect();
    let tx_driver = r.of("tx_driver").count();
    assert_eq!(rows.len(), tx_driver, "tshark's packets vs the recording's");
    // The interfaces also sent what is not TCP (IPv6 neighbour discovery, a few).
    assert!(
        (rows.len() as u64..=rows.len() as u64 + 20).contains(&sent_kernel),
        "tshark's packets {} vs the interfaces' {sent_kernel}",
        rows.len()
    );
    let reported = report["stages_recorded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "tx_driver")
        .unwrap()["events"]
        .as_u64()
        .unwrap();
    assert_eq!(
        rows.len() as u64,
        reported,
        "tshark's packets vs the report's"
    );
    // Connections: tshark's TCP streams are the recording's.
    let streams: BTreeSet<&str> = rows.iter().map(|f| f[0]).collect();
    assert_eq!(streams.len(), CONNS, "{streams:?}");
    // Payload: the data direction carried every byte once, plus the retransmitted ones.
    // A segment tshark flags as sent again: retransmission, fast or spurious, or "out of order"
    // (its name for one that comes within 3 ms of the highest sequence sent; veth does not
    // reorder, so on this path only a retransmission goes back in sequence).
    let retransmitted = |f: &Vec<&str>| f[3..7].iter().any(|v| !v.is_empty());
    let data: Vec<&Vec<&str>> = rows.iter().filter(|f| f[1] != port).collect();
    let len = |f: &&Vec<&str>| f[2].parse::<u64>().unwrap_or(0);
    let first_time: u64 = data.iter().filter(|f| !retransmitted(f)).map(len).sum();
    assert_eq!(
        first_time,
        CONNS as u64 * BYTES,
        "bytes sent once, as tshark reads them"
    );
    // Retransmissions: tshark's analysis, the report's count and the kernel's agree.
    let tshark_retrans = rows.iter().filter(|f| retransmitted(f)).count() as u64;
    let report_retrans = report["retransmits"]["segments"].as_u64().unwrap();
    assert!(tshark_retrans > 0, "the drops caused retransmissions");
    assert_eq!(tshark_retrans, report_retrans, "tshark vs the report");
    assert_eq!(tshark_retrans, retrans_kernel, "tshark vs TcpRetransSegs");
    // By default (both driver stages) a packet sent and received on this host is one packet,
    // written where it was sent: the same packets.
    let default = dir.path().join("default.pcapng");
    let out = analyzer::run(&[
        "export",
        rec.to_str().unwrap(),
        "--format",
        "pcapng",
        "-o",
        default.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let frames = tshark(&default, &["-T", "fields", "-e", "frame.comment"]);
    assert_eq!(frames.lines().count(), rows.len());
    assert!(frames.lines().all(|l| l.contains("at tx_driver")));
    eprintln!(
        "tshark: {} packets (interfaces {sent_kernel}), {} streams, {first_time} bytes sent \
         once, {tshark_retrans} retransmitted (report {report_retrans}, TcpRetransSegs \
         {retrans_kernel})",
        rows.len(),
        streams.len()
    );
    // Every packet's comment names its stage, and most their journey.
    assert!(rows.iter().all(|f| f[7].contains("at tx_driver")));
    let in_journeys = rows.iter().filter(|f| f[7].contains("journey")).count();
    assert!(
        in_journeys * 10 >= rows.len() * 9,
        "{in_journeys} of {}",
        rows.len()
    );
}

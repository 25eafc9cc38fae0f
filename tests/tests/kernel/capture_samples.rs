//! The committed sample recordings (made by `samples/make-samples.sh` on a real kernel) are
//! readable, small, and show what they are named after. Needs no root.

use std::collections::HashMap;
use std::path::PathBuf;
use tcptape_e2e::recording::load;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
}

#[test]
fn bulk_loss_sample_has_retransmits_drops_and_whole_journeys() {
    let path = sample("bulk-loss.parquet");
    assert!(std::fs::metadata(&path).unwrap().len() <= 5 << 20);
    let r = load(&path).expect("sample opens");
    assert_eq!(r.meta.source, "live");
    assert!(r.closed);
    assert_eq!(r.lost(), 0);
    let counts = r.counts();
    for stage in [
        "retransmit",
        "drop",
        "tx_qdisc_enq",
        "rx_app",
        "cong_state",
        "state",
    ] {
        assert!(
            counts.get(stage).copied().unwrap_or(0) > 0,
            "no {stage}: {counts:?}"
        );
    }
    assert!(r
        .of("drop")
        .any(|d| d.drop_reason.as_deref() == Some("NETFILTER_DROP")));
    let crossing = r
        .journeys()
        .values()
        .filter(|s| s.contains("tx_dev_queue") && s.contains("rx_app"))
        .count();
    assert!(crossing > 50, "{crossing} sendmsg-to-app journeys");
    // samples/make-samples.sh: tcptape-traffic writes 8 MiB in 128 KiB writes, the sink reads
    // them all; each write is one event however often it blocked.
    r.assert_bytes("tx_sendmsg", 8 << 20);
    r.assert_bytes("rx_app", 8 << 20);
    assert_eq!(r.of("tx_sendmsg").count(), 64);
}

#[test]
fn slow_reader_sample_shows_the_reader_delay() {
    let path = sample("rr-slow-reader.parquet");
    assert!(std::fs::metadata(&path).unwrap().len() <= 5 << 20);
    let r = load(&path).expect("sample opens");
    // Requests go to port 5002; the server reads each one 20 ms after TCP queued it.
    // skb addresses are reused, so pair each read with the latest queueing before it.
    let mut rows: Vec<_> = r.rows.iter().collect();
    rows.sort_by_key(|x| x.ts_ns);
    let mut queued: HashMap<u64, u64> = HashMap::new();
    let mut waits = Vec::new();
    for x in rows {
        let Some(skb) = x.skb else { continue };
        match x.kind.as_str() {
            "rx_tcp_est" if x.dport == Some(5002) => {
                queued.insert(skb, x.ts_ns);
            }
            "rx_app" if x.sport == Some(5002) => {
                if let Some(t) = queued.remove(&skb) {
                    waits.push(x.ts_ns - t);
                }
            }
            _ => {}
        }
    }
    assert!(waits.len() > 100, "only {} matched reads", waits.len());
    waits.sort_unstable();
    let median = waits[waits.len() / 2];
    assert!(
        (15_000_000..60_000_000).contains(&median),
        "median queue-to-read time {median} ns, expected about 20 ms"
    );
}

/// The two sides of one exchange between two guests (samples/make-two-host-samples.sh): each
/// holds the applications' bytes, and together they are two hosts joined both ways.
#[test]
fn two_host_samples_are_two_hosts_joined_both_ways() {
    let (a, b) = (sample("two-hosts-a.parquet"), sample("two-hosts-b.parquet"));
    let (ra, rb) = (load(&a).expect("A opens"), load(&b).expect("B opens"));
    assert_eq!((ra.lost(), rb.lost()), (0, 0));
    assert_ne!(ra.meta.boot_id, rb.meta.boot_id);
    // The guest's traffic program wrote 96 KiB to port 5001 and 20 requests of 1000 bytes.
    let bytes = |r: &tcptape_e2e::recording::Loaded, kind: &str, port: u16| -> u64 {
        r.of(kind)
            .filter(|x| x.dport == Some(port) || x.sport == Some(port))
            .map(|x| u64::from(x.len.unwrap_or(0)))
            .sum()
    };
    assert_eq!(bytes(&ra, "tx_sendmsg", 5001), 98_304);
    assert_eq!(bytes(&rb, "rx_app", 5001), 98_304);
    assert_eq!(bytes(&ra, "tx_sendmsg", 5002), 20_000);
    assert_eq!(bytes(&rb, "rx_app", 5002), 20_000);
    let out = tcptape_e2e::analyzer::run(&[
        "report",
        "-q",
        "--format",
        "json",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<&str> = r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["host-a", "host-b"]);
    let p = &r["between_hosts"][0];
    assert!(p["segments_a_to_b"].as_u64() > Some(50), "{p}");
    assert!(p["segments_b_to_a"].as_u64() > Some(10), "{p}");
    assert!(p["clock_offset_ns"].is_i64(), "{p}");
    // The fastest segment of each direction sets the bounds: no wire time below zero.
    for w in p["wire"].as_array().unwrap() {
        assert!(w["min_ns"].as_u64() > Some(0), "{w}");
    }
    // A's data went through A's netem (20 ms delay): no write on A reaches its read on B sooner,
    // on the aligned clocks, up to the offset's uncertainty.
    let unc = p["clock_offset_uncertainty_ns"].as_u64().unwrap();
    let a_to_b = p["end_to_end"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from_host"] == "host-a")
        .expect("A to B end to end");
    assert!(a_to_b["count"].as_u64() > Some(50), "{a_to_b}");
    assert!(
        a_to_b["min_ns"].as_u64().unwrap() + unc >= 20_000_000,
        "{a_to_b}"
    );
}

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

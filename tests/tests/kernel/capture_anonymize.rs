//! `--anonymize` on a live recording: no address of the real traffic, no task name or pid, and no
//! kernel address reaches the file; flows and journeys stay intact.

use std::collections::HashSet;
use tcptape_e2e::netns::Pair;
use tcptape_e2e::recorder::record_during;
use tcptape_e2e::recording::load;
use tcptape_e2e::{should_run, traffic};

#[test]
fn anonymized_live_recording_hides_addresses_and_tasks() {
    if !should_run("anonymized_live_recording_hides_addresses_and_tasks") {
        return;
    }
    let port = 45_301u16;
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("anon.parquet");
    record_during(
        &[
            "-o",
            out.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "--anonymize",
        ],
        |_| {
            traffic::transfers(&pair, port, 1, 1 << 20, 16 << 10)
                .join()
                .unwrap();
        },
    );

    let r = load(&out).expect("recording");
    assert!(r.rows.len() > 50, "too few events: {}", r.rows.len());
    let real: HashSet<&str> = [pair.addr_a.as_str(), pair.addr_b.as_str()].into();
    let mut pseudonyms = HashSet::new();
    for row in &r.rows {
        for a in [&row.saddr, &row.daddr].into_iter().flatten() {
            assert!(
                !real.contains(a.as_str()),
                "a real address survived: {row:?}"
            );
            pseudonyms.insert(a.clone());
        }
        assert_eq!(
            (row.pid, row.comm.as_deref()),
            (None, None),
            "a task survived: {row:?}"
        );
        // Ports are kept by default, so the flow is still recognizable.
        assert!(row.sport.is_none() || row.sport == Some(port) || row.dport == Some(port));
        // No kernel address: skb ids are keyed hashes, sockets are cookies. A slab object's
        // address is in the kernel half and 256-byte aligned; a hash is both with odds 2^-25.
        for v in [row.skb, row.sock].into_iter().flatten() {
            assert!(
                v < 0xffff_8000_0000_0000 || v & 0xff != 0,
                "a kernel address in the file: {v:#x}"
            );
        }
    }
    // Prefix-preserving: the two hosts' pseudonyms share as many leading bits as their addresses.
    let bits = |a: &str| u32::from(a.parse::<std::net::Ipv4Addr>().unwrap());
    let shared = (bits(&pair.addr_a) ^ bits(&pair.addr_b)).leading_zeros();
    let pseudonyms: Vec<u32> = pseudonyms.iter().map(|p| bits(p)).collect();
    let pairs_sharing = pseudonyms
        .iter()
        .flat_map(|x| pseudonyms.iter().map(move |y| (x, y)))
        .filter(|(x, y)| x != y && (**x ^ **y).leading_zeros() == shared)
        .count();
    assert!(
        pairs_sharing > 0,
        "no two pseudonyms share the hosts' {shared}-bit prefix"
    );
    assert!(r.meta.anonymization.addresses && r.meta.anonymization.tasks);
    assert!(!r.journeys().is_empty());
}

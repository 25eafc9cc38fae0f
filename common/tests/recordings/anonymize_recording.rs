//! An anonymized recording has no original address, port or task left, keeps its structure
//! (prefixes, flows, journeys), and says what was anonymized.

use std::collections::HashSet;
use tcptape_common::anonymize::{anonymize_recording, AnonOptions, Anonymizer};
use tcptape_common::record::Record;
use tcptape_common::synth::{write_file, Mix, SynthConfig};
use tcptape_common::Recording;

fn rows(rec: &Recording) -> Vec<Record> {
    rec.batches(None)
        .flat_map(|b| Record::from_batch(&b.unwrap()).unwrap())
        .collect()
}

#[test]
fn anonymized_copy_hides_addresses_ports_and_tasks() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.parquet");
    write_file(&input, SynthConfig::new(Mix::Bulk, 20_000, 2)).unwrap();
    let original = Recording::open(&input).unwrap();
    let before = rows(&original);

    let anon = Anonymizer::new(
        &[9; 32],
        AnonOptions {
            ports: true,
            tasks: true,
        },
    );
    let out = d.path().join("out.parquet");
    let n = anonymize_recording(&original, &out, &anon).unwrap();
    assert_eq!(n, before.len() as u64);
    let rec = Recording::open(&out).unwrap();
    let after = rows(&rec);

    let orig_addrs: HashSet<_> = before
        .iter()
        .flat_map(|r| [r.saddr.clone(), r.daddr.clone()])
        .flatten()
        .collect();
    let orig_ports: HashSet<_> = before
        .iter()
        .flat_map(|r| [r.sport, r.dport])
        .flatten()
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (b.ts_ns, &b.kind, b.skb, b.sock, b.seq, b.len),
            (a.ts_ns, &a.kind, a.skb, a.sock, a.seq, a.len)
        );
        assert_eq!(a.pid, None);
        assert_eq!(a.comm, None);
        for addr in [&a.saddr, &a.daddr].into_iter().flatten() {
            assert!(!orig_addrs.contains(addr), "{addr} survived");
        }
        assert_eq!(a.saddr.is_some(), b.saddr.is_some());
        // One consistent mapping: the same original always gives the same pseudonym.
        assert_eq!(
            a.saddr,
            b.saddr
                .as_ref()
                .map(|s| anon.addresses().anonymize(s.parse().unwrap()).to_string())
        );
    }
    let new_ports: HashSet<_> = after
        .iter()
        .flat_map(|r| [r.sport, r.dport])
        .flatten()
        .collect();
    assert_eq!(new_ports.len(), orig_ports.len(), "ports map one to one");
    assert!(!new_ports.contains(&5201), "the server port was kept");

    let meta = rec.meta();
    assert!(meta.anonymization.addresses && meta.anonymization.ports && meta.anonymization.tasks);
    assert_ne!(meta.hostname, original.meta().hostname);
}

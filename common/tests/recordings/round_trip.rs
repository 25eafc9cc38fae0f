//! Every column and every metadata key written is read back identically.

use std::collections::BTreeMap;
use tcptape_common::encode::{BatchEncoder, EncodeContext, SkbHasher};
use tcptape_common::event::{valid, RawEvent, AF_INET6};
use tcptape_common::metadata::*;
use tcptape_common::parquet_file::write_file;
use tcptape_common::record::Record;
use tcptape_common::synth::{drop_reason_names, Mix, SynthConfig, SynthStream};
use tcptape_common::{Recording, Stage};

/// An event with every field set, IPv6, and values at their type's edges.
fn everything_event() -> RawEvent {
    let mut ev = RawEvent {
        ts_ns: u64::MAX - 1,
        skb: 0xffff_8880_dead_beef,
        sock: u64::MAX,
        seq: u32::MAX,
        len: 65_535,
        pid: 4_194_304,
        netns: 4_026_531_840,
        ifindex: 7,
        cpu: 1023,
        cwnd: 1,
        ssthresh: 0x7fff_ffff,
        srtt_us: 2,
        rttvar_us: 3,
        snd_wnd: 4,
        rcv_wnd: 5,
        packets_out: 6,
        retrans_out: 7,
        drop_reason: 9999,
        err: -105,
        valid: valid::ALL,
        sport: 65_535,
        dport: 1,
        family: AF_INET6,
        segs: 44,
        kind: Stage::Retransmit.code(),
        state: 13,
        old_state: 99,
        ca_state: 4,
        ..RawEvent::default()
    };
    ev.saddr = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    ev.daddr = "2001:db8::ff"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    ev.set_comm("tâche-ünïcode");
    ev
}

fn full_meta() -> RecordingMeta {
    let mut m = RecordingMeta::new("live");
    m.start_ns = 11;
    m.end_ns = 22;
    m.attach_plan = vec![StageAttach {
        stage: "rx_ip".into(),
        chosen: Some("tp_btf".into()),
        attempts: vec![
            AttachAttempt {
                mechanism: "fentry".into(),
                target: "ip_rcv".into(),
                error: Some("EPERM".into()),
            },
            AttachAttempt {
                mechanism: "tp_btf".into(),
                target: "netif_receive_skb".into(),
                error: None,
            },
        ],
    }];
    m.filters = Filters {
        ports: vec![443, 80],
        addrs: vec!["10.0.0.0/8".into()],
        pids: vec![1],
        netns: vec![2],
        ifaces: vec!["eth0".into()],
        stages: vec!["rx_app".into(), "retransmit".into()],
        cgroups: vec!["/system.slice/web.service".into()],
    };
    m.sampling = Sampling {
        one_in: 10,
        budget: Some(50_000),
        steps: vec![
            SamplingStep {
                from_ns: 1,
                one_in: 10,
            },
            SamplingStep {
                from_ns: 2_000,
                one_in: 64,
            },
        ],
    };
    m.ring_bytes = 1 << 24;
    m.lost = Lost {
        ring_per_cpu: vec![0, 5],
        writer_queue: 3,
        missed_runs: BTreeMap::from([("retransmit".to_string(), 2u64)]),
    };
    m.seen = BTreeMap::from([("rx_app".to_string(), 12345u64)]);
    m.anonymization = Anonymization {
        addresses: true,
        ports: false,
        tasks: true,
    };
    m.environment = Environment {
        kernel_release: "6.18.0".into(),
        congestion_control: "bbr".into(),
        tcp_rmem: "4096 131072 6291456".into(),
        tcp_wmem: "4096 16384 4194304".into(),
        interfaces: vec![InterfaceOffloads {
            name: "eth0".into(),
            ifindex: 2,
            gro: Some(true),
            tso: Some(false),
            gso: None,
        }],
    };
    m.segment = SegmentInfo {
        index: 0,
        last: true,
        stop_reason: Some("signal".into()),
        start_ns: Some(17),
        keep: Some("10m".into()),
        rolled_out: 3,
        trigger: Some(tcptape_common::metadata::Trigger {
            at_ns: 5,
            reason: "retrans>200/s".into(),
            condition: Some("retrans>200/s".into()),
            value: Some(250.0),
            after_ns: 30_000_000_000,
        }),
    };
    m.synth = Some(serde_json::json!({"seed": 1}));
    m
}

#[test]
fn every_column_and_metadata_key_round_trips() {
    let mut events: Vec<RawEvent> = SynthStream::new(SynthConfig::new(Mix::Bulk, 30_000, 7), 4096)
        .flatten()
        .collect();
    events.push(everything_event());
    events.push(RawEvent {
        ts_ns: 5,
        kind: Stage::RxNetif.code(),
        ..RawEvent::default()
    });
    let ctx = EncodeContext {
        skb_hasher: SkbHasher::new([7; 16]),
        drop_reasons: drop_reason_names(),
    };
    let mut enc = BatchEncoder::new(ctx.clone());
    let batches: Vec<_> = events.chunks(5000).map(|c| enc.encode(c)).collect();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    let meta = full_meta();
    write_file(&path, &batches, &meta).unwrap();

    let rec = Recording::open(&path).unwrap();
    assert_eq!(rec.meta(), meta);
    assert!(rec.closed());
    assert_eq!(rec.rows(), events.len() as u64);

    let mut read = Vec::new();
    for b in rec.batches(None) {
        read.extend(Record::from_batch(&b.unwrap()).unwrap());
    }
    let expected: Vec<Record> = events
        .iter()
        .map(|e| Record::from_raw(e, &ctx).unwrap())
        .collect();
    assert_eq!(read.len(), expected.len());
    for (i, (got, want)) in read.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {i}");
    }

    // Every column is exercised with a value somewhere, so "identical" covers all of them.
    let last = &read[read.len() - 2];
    let json = serde_json::to_value(last).unwrap();
    for (k, v) in json.as_object().unwrap() {
        assert!(!v.is_null(), "column {k} is null in the all-fields event");
    }
    assert_eq!(last.saddr.as_deref(), Some("fd00::1"));
    assert_eq!(
        last.comm.as_deref(),
        Some("tâche-ünïcod"),
        "comm is cut at 15 bytes as the kernel cuts it"
    );
    assert_eq!(last.state.as_deref(), Some("BOUND_INACTIVE"));
    assert_eq!(last.old_state.as_deref(), Some("UNKNOWN"));
    assert_eq!(last.drop_reason.as_deref(), Some("reason_9999"));
    assert_ne!(
        last.skb,
        Some(0xffff_8880_dead_beef),
        "skb addresses are hashed"
    );
}

#[test]
fn metadata_keys_are_one_per_field_and_parse_back() {
    let meta = full_meta();
    let kvs = meta.to_key_values();
    let json = serde_json::to_value(&meta).unwrap();
    assert_eq!(kvs.len(), json.as_object().unwrap().len());
    assert!(kvs.iter().all(|(k, _)| k.starts_with("tcptape.")));
    let back =
        RecordingMeta::from_key_values(kvs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))))
            .unwrap();
    assert_eq!(back, meta);
}

#[test]
fn skb_ids_link_a_journey_but_differ_between_recordings() {
    let ev = RawEvent {
        kind: 1,
        skb: 0xffff_8880_0000_1000,
        valid: valid::SKB,
        ..Default::default()
    };
    let a = SkbHasher::new([1; 16]);
    let b = SkbHasher::new([2; 16]);
    assert_eq!(a.hash(ev.skb), a.hash(ev.skb));
    assert_ne!(a.hash(ev.skb), b.hash(ev.skb));
}

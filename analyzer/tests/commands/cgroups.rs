//! Cgroups in the analyzer, on synthetic recordings whose socket → cgroup assignment is known
//! (`SYNTH_CGROUPS`: even flows' senders in a Docker container, odd flows' in a Kubernetes
//! pod's, every receiver in a systemd service): the report's per-cgroup section, and
//! `--cgroup`/`--container` on `report` and `replay`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tcptape_common::record::Record;
use tcptape_common::synth::{write_file, Mix, SynthConfig, SYNTH_CGROUPS};
use tcptape_common::Recording;

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

fn report(rec: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["report", "--format", "json", rec.to_str().unwrap()];
    args.extend(extra);
    let out = tcptape(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn synth(dir: &Path) -> PathBuf {
    let path = dir.join("containers.parquet");
    write_file(&path, SynthConfig::new(Mix::Bulk, 30_000, 11)).unwrap();
    path
}

fn rows(path: &Path) -> Vec<Record> {
    Recording::open(path)
        .unwrap()
        .batches(None)
        .flat_map(|b| Record::from_batch(&b.unwrap()).unwrap())
        .collect()
}

/// The connection of a row, either direction alike: its source port or destination port that
/// is not the server's.
fn client_port(r: &Record) -> Option<u16> {
    match (r.sport?, r.dport?) {
        (5201, p) | (p, 5201) => Some(p),
        _ => None,
    }
}

/// The flows (client ports) whose sender is in each cgroup, as the generator assigns them.
fn expected_flows(rows: &[Record]) -> BTreeMap<u64, BTreeSet<u16>> {
    let ports: BTreeSet<u16> = rows.iter().filter_map(client_port).collect();
    let mut m: BTreeMap<u64, BTreeSet<u16>> = BTreeMap::new();
    for p in ports {
        // Flow i has client port 40000 + 7 i.
        let i = ((p - 40_000) / 7) as usize;
        m.entry(SYNTH_CGROUPS[i % 2].0).or_default().insert(p);
    }
    m
}

#[test]
fn the_report_gives_each_cgroup_its_own_flows_bytes_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    let rec = synth(dir.path());
    let rows = rows(&rec);
    let flows = expected_flows(&rows);
    assert_eq!(flows.len(), 2, "both sender cgroups have flows");
    let r = report(&rec, &[]);
    let shares = r["cgroups"].as_array().expect("a per-cgroup section");
    let share = |id: u64| {
        shares
            .iter()
            .find(|s| s["cgroup"] == id)
            .unwrap_or_else(|| panic!("no cgroup {id} in {shares:?}"))
    };
    // Every sender cgroup: the bytes its flows' writes carried, counted here from the rows.
    for (&id, ports) in &flows {
        let written: u64 = rows
            .iter()
            .filter(|r| {
                r.kind == "tx_sendmsg" && client_port(r).is_some_and(|p| ports.contains(&p))
            })
            .map(|r| r.len.unwrap_or(0) as u64)
            .sum();
        let drops = rows
            .iter()
            .filter(|r| r.kind == "drop" && client_port(r).is_some_and(|p| ports.contains(&p)))
            .count() as u64;
        let retrans: u64 = rows
            .iter()
            .filter(|r| {
                r.kind == "retransmit" && client_port(r).is_some_and(|p| ports.contains(&p))
            })
            .map(|r| r.segs.unwrap_or(1) as u64)
            .sum();
        let s = share(id);
        // The seed gives every sender cgroup writes, drops and retransmissions to count.
        assert!(
            written > 0 && drops > 0 && retrans > 0,
            "{written} {drops} {retrans}"
        );
        assert_eq!(s["bytes_written"], written, "cgroup {id}");
        assert_eq!(s["bytes_read"], 0, "cgroup {id} only sends");
        assert_eq!(s["drops"], drops, "cgroup {id}");
        assert_eq!(s["retransmitted_segments"], retrans, "cgroup {id}");
        assert_eq!(s["sockets"], ports.len() as u64, "cgroup {id}");
        assert_eq!(s["flows"], ports.len() as u64, "cgroup {id}");
        // Its latency rows count its packets: the report's per-flow rows of its flows, summed.
        let per_flow: u64 = r["stages_per_flow"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["from"] == "tx_driver" && f["to"] == "rx_driver")
            .filter(|f| {
                let flow = f["flow"].as_str().unwrap();
                ports.iter().any(|p| flow.contains(&format!(":{p}")))
            })
            .map(|f| f["count"].as_u64().unwrap())
            .sum();
        let own = s["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["from"] == "tx_driver" && l["to"] == "rx_driver")
            .expect("a wire row");
        assert_eq!(own["count"], per_flow, "cgroup {id}");
    }
    // The receivers' service read everything the senders wrote and sent nothing.
    let unit = share(SYNTH_CGROUPS[2].0);
    assert_eq!(unit["workload"]["unit"], "iperf3.service");
    assert_eq!(unit["bytes_written"], 0);
    let read: u64 = rows
        .iter()
        .filter(|r| r.kind == "rx_app")
        .map(|r| r.len.unwrap_or(0) as u64)
        .sum();
    assert_eq!(unit["bytes_read"], read);
    // Named from the recording: the pod's container with its pod and QoS class.
    let pod = share(SYNTH_CGROUPS[1].0);
    assert_eq!(pod["workload"]["runtime"], "containerd");
    assert_eq!(pod["workload"]["qos"], "burstable");
    assert_eq!(
        pod["path"].as_str().unwrap(),
        SYNTH_CGROUPS[1].1,
        "the path as recorded"
    );
    // The text report shows the section with the workloads' names.
    let out = tcptape(&["report", rec.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Per cgroup"), "{text}");
    assert!(text.contains("docker container 5e1f7c0a9b3d"), "{text}");
}

#[test]
fn cgroup_and_container_keep_exactly_their_flows() {
    let dir = tempfile::tempdir().unwrap();
    let rec = synth(dir.path());
    let rows = rows(&rec);
    let flows = expected_flows(&rows);
    let ports_in = |r: &Value| -> BTreeSet<u16> {
        r["stages_per_flow"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| {
                let flow = f["flow"].as_str().unwrap();
                flow.split(['-', ':'])
                    .filter_map(|p| p.parse::<u16>().ok())
                    .find(|p| *p != 5201)
            })
            .collect()
    };
    // By container id prefix, pod UID, cgroup path; each keeps its flows and no other.
    let docker = &flows[&SYNTH_CGROUPS[0].0];
    let pod = &flows[&SYNTH_CGROUPS[1].0];
    assert_eq!(
        &ports_in(&report(&rec, &["--container", "5e1f7c0a9b3d"])),
        docker
    );
    assert_eq!(
        &ports_in(&report(
            &rec,
            &["--container", "7c9e6679-7425-40de-944b-e07fc1f90ae7"]
        )),
        pod
    );
    assert_eq!(
        &ports_in(&report(&rec, &["--cgroup", "/kubepods.slice"])),
        pod
    );
    let all: BTreeSet<u16> = docker.union(pod).copied().collect();
    assert_eq!(ports_in(&report(&rec, &["--cgroup", "system.slice/"])), all);
    // The selection is every command's: replay prints only the container's events.
    let out = tcptape(&[
        "replay",
        rec.to_str().unwrap(),
        "--format",
        "jsonl",
        "--container",
        "5e1f7c0a9b3d",
    ]);
    assert!(out.status.success());
    let replayed: BTreeSet<u16> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let r: Record = serde_json::from_str(l).ok()?;
            client_port(&r)
        })
        .collect();
    assert_eq!(&replayed, docker);
    // What the recording does not name: exit 2, one line listing what it names.
    let out = tcptape(&["report", rec.to_str().unwrap(), "--cgroup", "/nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/system.slice/iperf3.service"), "{err}");
    let out = tcptape(&["report", rec.to_str().unwrap(), "--container", "ffff"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_version_1_recording_reads_as_before_without_cgroups() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bulk-loss.parquet");
    let meta = Recording::open(Path::new(sample)).unwrap().meta();
    assert_eq!(
        meta.schema_version, 1,
        "the sample is a version 1 recording"
    );
    let r = report(Path::new(sample), &[]);
    assert!(r["stages"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(r.get("cgroups").is_none(), "no per-cgroup section");
    let rows = rows(Path::new(sample));
    assert!(rows.iter().all(|r| r.cgroup.is_none() && r.ack.is_none()));
    let out = tcptape(&["report", sample, "--cgroup", "/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no cgroup"));
}

#[test]
fn diff_compares_one_containers_flows_as_the_report_selects_them() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cand) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    write_file(&base, SynthConfig::new(Mix::Bulk, 30_000, 21)).unwrap();
    write_file(&cand, SynthConfig::new(Mix::Bulk, 30_000, 22)).unwrap();
    let out = tcptape(&[
        "diff",
        base.to_str().unwrap(),
        cand.to_str().unwrap(),
        "--format",
        "json",
        "--container",
        "5e1f7c0a9b3d",
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (path, side) in [(&base, "base"), (&cand, "cand")] {
        let r = report(path, &["--container", "5e1f7c0a9b3d"]);
        let mut from_diff: Vec<u64> = d["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|row| row[side]["count"].as_u64())
            .collect();
        let mut from_report: Vec<u64> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["count"].as_u64().unwrap())
            .collect();
        from_diff.sort_unstable();
        from_report.sort_unstable();
        assert!(!from_report.is_empty());
        assert_eq!(from_diff, from_report, "{side}");
    }
}

#[test]
fn in_a_set_a_host_without_the_container_contributes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    for (host, named) in [("a", true), ("b", false)] {
        let d = set.join(format!("host={host}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut cfg = SynthConfig::new(Mix::Bulk, 20_000, 31);
        cfg.hostname = Some(host.to_string());
        tcptape_common::synth::write_file_with_meta(&d.join("r.parquet"), cfg, |m| {
            if !named {
                m.cgroups.clear(); // b's recorder named no cgroup
            }
        })
        .unwrap();
    }
    let out = tcptape(&[
        "report",
        "--format",
        "json",
        set.to_str().unwrap(),
        "--container",
        "5e1f7c0a9b3d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = r["hosts"].as_array().expect("one report per host");
    let of = |h: &str| hosts.iter().find(|x| x["host"] == h).unwrap();
    assert!(!of("a")["stages"].as_array().unwrap().is_empty());
    assert!(of("b")["stages"].as_array().unwrap().is_empty());
    // No host names it: the one-line error of a single recording.
    let out = tcptape(&["report", set.to_str().unwrap(), "--container", "ffffffff"]);
    assert_eq!(out.status.code(), Some(2));
}

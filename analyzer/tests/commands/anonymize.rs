//! `tcptape anonymize`: an anonymized copy through the command line, consistent under a key file,
//! and one-line errors for bad keys and inputs.

use arrow_array::Array;
use std::process::Command;
use tcptape_common::synth::{write_file, Mix, SynthConfig};
use tcptape_common::Recording;

fn tcptape(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .unwrap()
}

fn addrs(path: &std::path::Path) -> Vec<Option<String>> {
    let rec = Recording::open(path).unwrap();
    rec.batches(Some(&["saddr"]))
        .flat_map(|b| {
            let b = b.unwrap();
            let col = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .clone();
            (0..col.len())
                .map(move |i| col.is_valid(i).then(|| col.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_key_file_gives_the_same_pseudonyms_to_two_recordings() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.parquet");
    write_file(&input, SynthConfig::new(Mix::Bulk, 5_000, 1)).unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let (a, b) = (d.path().join("a.parquet"), d.path().join("b.parquet"));
    for out in [&a, &b] {
        let o = tcptape(&[
            "anonymize".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--key-file".as_ref(),
            key.as_os_str(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("5000 events"));
    }
    let (orig, anon_a, anon_b) = (addrs(&input), addrs(&a), addrs(&b));
    assert_eq!(anon_a, anon_b);
    assert_eq!(orig.len(), anon_a.len());
    assert!(orig
        .iter()
        .zip(&anon_a)
        .all(|(o, x)| o.is_some() == x.is_some() && (o.is_none() || o != x)));

    // Without a key file, a fresh key: other pseudonyms.
    let c = d.path().join("c.parquet");
    assert!(tcptape(&[
        "anonymize".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        c.as_os_str()
    ])
    .status
    .success());
    assert_ne!(addrs(&c), anon_a);

    // Cgroup paths name services as `comm` names processes: gone, the ids kept.
    let (before, after) = (
        Recording::open(&input).unwrap().meta().cgroups,
        Recording::open(&c).unwrap().meta().cgroups,
    );
    assert!(!before.is_empty() && before.iter().all(|n| n.path.is_some()));
    assert_eq!(
        after.iter().map(|n| n.id).collect::<Vec<_>>(),
        before.iter().map(|n| n.id).collect::<Vec<_>>()
    );
    assert!(after
        .iter()
        .all(|n| n.path.is_none() && n.identity.is_none()));
}

#[test]
fn bad_keys_and_inputs_are_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.parquet");
    write_file(&input, SynthConfig::new(Mix::Bulk, 100, 1)).unwrap();
    let key = d.path().join("short-key");
    std::fs::write(&key, "abcd").unwrap();
    let notes = d.path().join("notes.parquet");
    std::fs::write(&notes, "not parquet").unwrap();
    let out = d.path().join("out.parquet");
    for args in [
        vec![
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--key-file".as_ref(),
            key.as_os_str(),
        ],
        vec![notes.as_os_str(), "-o".as_ref(), out.as_os_str()],
        vec![input.as_os_str(), "-o".as_ref(), input.as_os_str()],
    ] {
        let mut full = vec!["anonymize".as_ref()];
        full.extend(args);
        let o = tcptape(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!out.exists());
}

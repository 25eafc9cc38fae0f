//! `--no-fentry`: the attach plan never tries fentry, says so per stage, and still records
//! through the next mechanism (here `tp_btf`; kprobes on kernels that have them, see tests/vm).

use std::process::Command;
use tcptape_e2e::recorder::binary;
use tcptape_e2e::should_run;

#[test]
fn no_fentry_skips_fentry_and_falls_back() {
    if !should_run("no_fentry_skips_fentry_and_falls_back") {
        return;
    }
    let out = Command::new(binary().unwrap())
        .args(["check", "--json", "--no-fentry"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = doc["stages"].as_array().unwrap();
    let est = stages.iter().find(|s| s["stage"] == "rx_tcp_est").unwrap();
    let fentry = est["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mechanism"] == "fentry")
        .expect("the fentry attempt is listed");
    assert!(
        fentry["error"].as_str().unwrap().contains("--no-fentry"),
        "{fentry}"
    );
    assert!(!est["chosen"].is_null(), "rx_tcp_est still records: {est}");
    assert!(
        stages.iter().all(|s| s["chosen"] != "fentry"),
        "fentry was chosen somewhere"
    );
}

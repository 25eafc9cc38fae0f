//! A full disk stops a recording cleanly: one clear error, exit code 1, and every segment on
//! disk finished and readable, the last one saying why the recording stopped.
//! Needs root (it mounts a small tmpfs); elsewhere it says loudly that it is skipped.

use std::process::{Command, Stdio};
use tcptape_common::Recording;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_recording_with_every_segment_readable() {
    if unsafe { libc::geteuid() } != 0 {
        let why = "a_full_disk_stops_the_recording_with_every_segment_readable needs root to mount a tmpfs";
        assert!(std::env::var_os("TCPTAPE_E2E_REQUIRED").is_none(), "{why}");
        eprintln!("*** SKIPPED {why} ***");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tcptape-test"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mounting a tmpfs failed");
    let _guard = Tmpfs(mnt.clone());
    // Something else on the same file system takes most of the room while we record.
    std::fs::write(mnt.join("ballast"), vec![1u8; 6 << 20]).unwrap();

    let out = mnt.join("rec");
    let run = Command::new(env!("CARGO_BIN_EXE_tcptape-record"))
        .args(["synth", "-o"])
        .arg(&out)
        .args([
            "--events",
            "20000000",
            "--rate",
            "400000",
            "--segment-secs",
            "1",
            "-q",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line of error: {stderr}"
    );
    assert!(stderr.contains("disk"), "{stderr}");

    let rec = Recording::open(&out).unwrap();
    assert!(rec.rows() > 0);
    assert!(
        rec.unfinished.is_empty(),
        "an unfinished segment was left: {:?}",
        rec.unfinished
    );
    assert!(rec.closed());
    assert_eq!(rec.meta().segment.stop_reason.as_deref(), Some("disk-full"));
    for b in rec.batches(None) {
        b.unwrap();
    }
}

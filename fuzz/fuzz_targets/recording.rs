//! Any bytes as a recording file: opening and reading every row must not panic, and must not
//! allocate without bound because of what the file claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn scratch() -> &'static std::path::PathBuf {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        dir.join(format!("tcptape-fuzz-{}.parquet", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    // Decoder panics that the reader contains are errors, not crashes; any other panic aborts.
    tcptape_common::reader::quiet_contained_panics();
    let path = scratch();
    std::fs::write(path, data).expect("scratch file");
    if let Ok(rec) = tcptape_common::Recording::open(path) {
        let _ = rec.meta();
        for batch in rec.batches(None) {
            if batch.is_err() {
                break;
            }
        }
    }
});

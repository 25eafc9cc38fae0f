//! The hostile-input corpus (`tests/corpus/`, made by `make.py`; inputs the fuzz target found
//! are added as `any-fuzz-*.parquet`):
//! files named `bad-*` are refused with a one-line error, `any-*` may be read or refused, and
//! none makes the reader panic.

use tcptape_common::Recording;

fn outcome(path: &std::path::Path) -> Result<u64, String> {
    let rec = Recording::open(path).map_err(|e| e.to_string())?;
    let mut rows = 0;
    for b in rec.batches(None) {
        rows += b.map_err(|e| e.to_string())?.num_rows() as u64;
    }
    Ok(rows)
}

#[test]
fn corpus_files_are_refused_or_read_never_a_panic() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has {} files", files.len());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = std::panic::catch_unwind(|| outcome(&path))
            .unwrap_or_else(|_| panic!("the reader panicked on {name}"));
        match result {
            Ok(rows) => {
                assert!(
                    !name.starts_with("bad-"),
                    "{name} was accepted ({rows} rows)"
                );
                if name.starts_with("good-") {
                    assert!(rows > 0);
                }
            }
            Err(msg) => {
                assert!(!name.starts_with("good-"), "{name} was refused: {msg}");
                assert!(!msg.contains('\n'), "{name}: multi-line error: {msg}");
            }
        }
    }
}

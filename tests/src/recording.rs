//! Reading a recording back for assertions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use tcptape_common::metadata::RecordingMeta;
use tcptape_common::record::Record;
use tcptape_common::Recording;

/// A recording's rows and metadata.
pub struct Loaded {
    /// Metadata of the last segment.
    pub meta: RecordingMeta,
    /// Every row.
    pub rows: Vec<Record>,
    /// True when the recording was finished cleanly.
    pub closed: bool,
}

/// Opens and decodes a whole recording.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let rec = Recording::open(path).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for batch in rec.batches(None) {
        let batch = batch.map_err(|e| e.to_string())?;
        rows.extend(Record::from_batch(&batch)?);
    }
    Ok(Loaded {
        meta: rec.meta(),
        rows,
        closed: rec.closed(),
    })
}

impl Loaded {
    /// Rows per stage name.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            *m.entry(r.kind.clone()).or_default() += 1;
        }
        m
    }

    /// Rows of one stage.
    pub fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.rows.iter().filter(move |r| r.kind == kind)
    }

    /// Stages each skb id was seen at.
    pub fn journeys(&self) -> HashMap<u64, HashSet<String>> {
        let mut m: HashMap<u64, HashSet<String>> = HashMap::new();
        for r in &self.rows {
            if let Some(skb) = r.skb {
                m.entry(skb).or_default().insert(r.kind.clone());
            }
        }
        m
    }

    /// Total lost events (ring, writer and skipped program runs).
    pub fn lost(&self) -> u64 {
        self.meta.lost.total()
    }

    /// Events of `stage` that may be missing: every ring and writer loss (they are not
    /// attributed to stages) plus the stage's skipped program runs.
    pub fn stage_lost(&self, stage: &str) -> u64 {
        let l = &self.meta.lost;
        l.ring_per_cpu.iter().sum::<u64>()
            + l.writer_queue
            + l.missed_runs.get(stage).copied().unwrap_or(0)
    }

    /// Asserts that the `len` of `stage`'s events adds up to `bytes`: exactly when none of them
    /// can have been lost, else as an upper bound.
    pub fn assert_bytes(&self, stage: &str, bytes: u64) {
        let sum: u64 = self.of(stage).map(|x| u64::from(x.len.unwrap_or(0))).sum();
        match self.stage_lost(stage) {
            0 => assert_eq!(sum, bytes, "{stage} bytes"),
            n => {
                eprintln!("{n} {stage} events may be lost: bytes compared as a bound");
                assert!(sum <= bytes, "{stage} bytes {sum} > {bytes}");
            }
        }
    }
}

/// The flow key of a row, the same in both directions: (low port, high port).
pub fn port_pair(r: &Record) -> Option<(u16, u16)> {
    let (a, b) = (r.sport?, r.dport?);
    Some((a.min(b), a.max(b)))
}

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

    /// Segments of the retransmit events whose `err` passes `which`: `|e| e >= 0` for the
    /// attempts the kernel counts in `TcpRetransSegs` (it counts an attempt once it gets to
    /// transmit, qdisc drops included; one that exits early with a negative errno is not), `|e| e
    /// > 0` for the failed ones it counts in `TCPRetransFail`.
    pub fn retransmitted_segments(&self, which: impl Fn(i32) -> bool) -> u64 {
        self.of("retransmit")
            .filter(|x| which(x.err.unwrap_or(0)))
            .map(|x| u64::from(x.segs.unwrap_or(0)))
            .sum()
    }

    /// Segments the kernel counted in attempts it did not report to the tracepoint, carried by
    /// the socket's next retransmit event: its `segs` (the growth of the socket's retransmit
    /// total) above the segment count of its own skb (`len` in `mss`-sized segments). Such a
    /// surplus can move segments between a failed attempt and a successful one.
    pub fn unreported_retransmit_segments(&self, mss: u32) -> u64 {
        self.of("retransmit")
            .filter(|x| x.err.unwrap_or(0) >= 0)
            .map(|x| u64::from(x.segs.unwrap_or(0)).saturating_sub(u64::from(skb_segments(x, mss))))
            .sum()
    }

    /// Asserts that the retransmit events account for the `counted` segments of the kernel's
    /// `TcpRetransSegs` delta: exactly when no retransmit event can have been lost, else as an
    /// upper bound. Returns the segments recorded.
    pub fn assert_retransmitted(&self, counted: u64) -> u64 {
        let recorded = self.retransmitted_segments(|e| e >= 0);
        match self.stage_lost("retransmit") {
            0 => assert_counted_segments(recorded, counted),
            n => {
                eprintln!("{n} retransmit events may be lost: totals compared as a bound");
                assert!(
                    recorded <= counted,
                    "{recorded} segments recorded > {counted} counted"
                );
            }
        }
        recorded
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

/// The segments a retransmit event's own skb holds: its `len` in `mss`-sized segments, at least
/// one (a SYN or FIN).
pub fn skb_segments(r: &Record, mss: u32) -> u32 {
    r.len.unwrap_or(0).div_ceil(mss).max(1)
}

/// Asserts that `recorded` retransmitted segments equal the kernel's `counted` ones, when no
/// event was lost. A socket's retransmit event carries what the kernel counted since its previous
/// one, so segments of attempts the kernel counts without reporting them (rare: both this recorder
/// and bpftrace see the counter grow by more than the reported skb) still add up, unless they come
/// after the socket's last reported attempt. Those are never recorded, so a shortfall of at most 1 %
/// is accepted (13 of 11 948 in the worst run seen); a recording never has more.
pub fn assert_counted_segments(recorded: u64, counted: u64) {
    assert!(
        recorded <= counted && counted - recorded <= counted / 100,
        "retransmitted segments {recorded} vs TcpRetransSegs {counted}"
    );
    if recorded != counted {
        eprintln!(
            "{} counted segments came after their socket's last reported retransmission",
            counted - recorded
        );
    }
}

/// The flow key of a row, the same in both directions: (low port, high port).
pub fn port_pair(r: &Record) -> Option<(u16, u16)> {
    let (a, b) = (r.sport?, r.dport?);
    Some((a.min(b), a.max(b)))
}

/// The port on the other side of `port` in a row of a connection to or from `port` (a client's
/// port, for a server's `port`); `None` for other rows and for a listening socket's (port 0).
pub fn other_port(r: &Record, port: u16) -> Option<u16> {
    match (r.sport?, r.dport?) {
        (s, p) | (p, s) if s == port && p != 0 => Some(p),
        _ => None,
    }
}

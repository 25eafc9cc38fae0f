//! The flight recorder's conditions (`--trigger`), evaluated on the live stream four times a
//! second, each over the last second (in 50 ms slots): retransmitted segments per second, drops
//! per second (optionally of one reason), the smoothed RTT of any flow, and a stage pair's p99.
//!
//! They read the events as the drain loop hands them to the writer, so they see what the
//! recording holds (after the kernel's filters and sampling).

use rustc_hash::FxHashMap;
use tcptape_common::{RawEvent, Stage};

/// What a condition measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Retransmitted segments per second.
    Retransmits,
    /// Drops per second, of one kernel reason (by name) or all.
    Drops(Option<String>),
    /// The largest smoothed RTT any event carried in the second, ns.
    Srtt,
    /// The p99 of `from → to` of packets (by skb) in the second, ns.
    StageP99(Stage, Stage),
}

/// A condition: a measure above a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As given on the command line.
    pub text: String,
    /// What it measures.
    pub measure: Measure,
    /// Fires above this (per second, or ns).
    pub above: f64,
}

fn parse_duration_ns(s: &str) -> Result<f64, String> {
    humantime::parse_duration(s)
        .map(|d| d.as_nanos() as f64)
        .map_err(|e| format!("'{s}': {e} (examples: 500us, 20ms)"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s
        .strip_suffix("/s")
        .ok_or_else(|| format!("'{s}': a rate ends in /s (e.g. 200/s)"))?;
    n.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .ok_or_else(|| format!("'{s}': not a number per second"))
}

/// Parses `retrans>200/s`, `drops>50/s`, `drops[NETFILTER_DROP]>10/s`, `srtt>100ms`,
/// `stage:tx_qdisc_enq→tx_qdisc_deq:p99>20ms` (`->` works for `→`).
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let help = "conditions: retrans>N/s, drops>N/s, drops[REASON]>N/s, srtt>DURATION, \
                stage:FROM→TO:p99>DURATION";
    // `->` for `→`, before the threshold's `>` is looked for.
    let normal = text.replace("->", "→");
    let (what, above) = normal
        .split_once('>')
        .ok_or_else(|| format!("'{text}': no '>' ({help})"))?;
    let what = what.trim();
    let (measure, above) = if what == "retrans" {
        (Measure::Retransmits, parse_rate(above)?)
    } else if what == "drops" {
        (Measure::Drops(None), parse_rate(above)?)
    } else if let Some(reason) = what
        .strip_prefix("drops[")
        .and_then(|r| r.strip_suffix(']'))
    {
        (
            Measure::Drops(Some(reason.trim().to_ascii_uppercase())),
            parse_rate(above)?,
        )
    } else if what == "srtt" {
        (Measure::Srtt, parse_duration_ns(above)?)
    } else if let Some(pair) = what
        .strip_prefix("stage:")
        .and_then(|p| p.strip_suffix(":p99"))
    {
        let (from, to) = pair
            .split_once('→')
            .ok_or_else(|| format!("'{text}': a stage pair is FROM→TO"))?;
        let stage = |s: &str| {
            s.trim()
                .parse::<Stage>()
                .map_err(|_| format!("'{text}': unknown stage '{}'", s.trim()))
        };
        (
            Measure::StageP99(stage(from)?, stage(to)?),
            parse_duration_ns(above)?,
        )
    } else {
        return Err(format!("'{text}': unknown condition ({help})"));
    };
    Ok(Condition {
        text: text.to_string(),
        measure,
        above,
    })
}

/// Packets whose first stage is waiting for the second at most (a bound on memory).
const MAX_PENDING: usize = 1 << 20;
/// Durations kept per slot at most (a bound on memory; a p99 of 64 K packets is steady).
const MAX_DURATIONS: usize = 1 << 16;
/// The window the conditions look at: the last second, in slots of 50 ms.
pub const WINDOW_NS: u64 = 1_000_000_000;
const SLOT_NS: u64 = 50_000_000;

/// What the events of one 50 ms slot hold for the conditions.
#[derive(Default)]
struct Slot {
    /// Slot number (event time / 50 ms).
    n: u64,
    retransmits: u64,
    drops: FxHashMap<Option<String>, u64>,
    srtt_max_us: u32,
    /// Per stage-pair condition, the durations that ended in the slot.
    durations: Vec<Vec<u64>>,
}

/// What the conditions have seen over the last second.
pub struct Watch {
    conditions: Vec<Condition>,
    /// Drop reason names by the kernel's code.
    reasons: FxHashMap<u32, String>,
    slots: std::collections::VecDeque<Slot>,
    /// Per stage-pair condition: the `from` times by skb.
    pending: Vec<FxHashMap<u64, u64>>,
}

impl Watch {
    /// Watches `conditions`; `reasons` names the kernel's drop reasons as the recording's
    /// `drop_reason` column does ([`crate::drop_reasons::host_drop_reasons`]).
    pub fn new(
        conditions: Vec<Condition>,
        reasons: impl IntoIterator<Item = (u32, String)>,
    ) -> Watch {
        let n = conditions.len();
        let reasons = reasons.into_iter().collect();
        Watch {
            conditions,
            reasons,
            slots: Default::default(),
            pending: vec![FxHashMap::default(); n],
        }
    }

    /// The slot of event time `ts`, made when new (events come nearly in time order; one that
    /// is older than every slot kept counts in the oldest).
    fn slot(&mut self, ts: u64) -> &mut Slot {
        let n = ts / SLOT_NS;
        let i = match self.slots.iter().rposition(|s| s.n <= n) {
            Some(i) if self.slots[i].n == n => i,
            Some(i) if i + 1 < self.slots.len() || self.slots[i].n < n => {
                let slot = Slot {
                    n,
                    durations: vec![Vec::new(); self.conditions.len()],
                    ..Slot::default()
                };
                self.slots.insert(i + 1, slot);
                i + 1
            }
            Some(i) => i,
            None if self.slots.is_empty() => {
                self.slots.push_back(Slot {
                    n,
                    durations: vec![Vec::new(); self.conditions.len()],
                    ..Slot::default()
                });
                0
            }
            None => 0,
        };
        &mut self.slots[i]
    }

    /// Counts what `batch` holds for the conditions.
    pub fn add(&mut self, batch: &[RawEvent]) {
        for e in batch {
            if e.kind == Stage::Retransmit.code() && e.err == 0 {
                self.slot(e.ts_ns).retransmits += u64::from(e.segs.max(1));
            } else if e.kind == Stage::Drop.code() {
                let name = self.reasons.get(&e.drop_reason).cloned();
                let slot = self.slot(e.ts_ns);
                *slot.drops.entry(None).or_default() += 1;
                if name.is_some() {
                    *slot.drops.entry(name).or_default() += 1;
                }
            }
            if e.srtt_us > 0 {
                let slot = self.slot(e.ts_ns);
                slot.srtt_max_us = slot.srtt_max_us.max(e.srtt_us);
            }
            for i in 0..self.conditions.len() {
                let Measure::StageP99(from, to) = self.conditions[i].measure else {
                    continue;
                };
                if e.skb == 0 {
                    continue;
                }
                if e.kind == from.code() {
                    if self.pending[i].len() >= MAX_PENDING {
                        self.pending[i].clear();
                    }
                    self.pending[i].insert(e.skb, e.ts_ns);
                } else if e.kind == to.code() {
                    if let Some(t0) = self.pending[i].remove(&e.skb) {
                        let d = &mut self.slot(e.ts_ns).durations[i];
                        if d.len() < MAX_DURATIONS {
                            d.push(e.ts_ns.saturating_sub(t0));
                        }
                    }
                }
            }
        }
    }

    /// The conditions above their threshold over the second before `now_ns` (monotonic, the
    /// events' clock), with their values. Older slots are let go.
    pub fn evaluate(&mut self, now_ns: u64) -> Vec<(Condition, f64)> {
        let first = now_ns.saturating_sub(WINDOW_NS) / SLOT_NS;
        while self.slots.front().is_some_and(|s| s.n < first) {
            self.slots.pop_front();
        }
        let secs = WINDOW_NS as f64 / 1e9;
        let mut fired = Vec::new();
        for (i, c) in self.conditions.iter().enumerate() {
            let value = match &c.measure {
                Measure::Retransmits => {
                    Some(self.slots.iter().map(|s| s.retransmits).sum::<u64>() as f64 / secs)
                }
                Measure::Drops(reason) => Some(
                    self.slots
                        .iter()
                        .map(|s| s.drops.get(reason).copied().unwrap_or(0))
                        .sum::<u64>() as f64
                        / secs,
                ),
                Measure::Srtt => self
                    .slots
                    .iter()
                    .map(|s| s.srtt_max_us)
                    .max()
                    .map(|us| f64::from(us) * 1e3),
                Measure::StageP99(..) => {
                    let mut d: Vec<u64> = self
                        .slots
                        .iter()
                        .flat_map(|s| s.durations[i].iter().copied())
                        .collect();
                    // A p99 of a handful of packets is one packet: wait for ten.
                    (d.len() >= 10).then(|| {
                        d.sort_unstable();
                        d[((d.len() as f64 * 0.99).ceil() as usize).max(1) - 1] as f64
                    })
                }
            };
            if let Some(v) = value.filter(|v| *v > c.above) {
                fired.push((c.clone(), v));
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_as_documented() {
        let c = parse_condition("retrans>200/s").unwrap();
        assert_eq!((c.measure, c.above), (Measure::Retransmits, 200.0));
        let c = parse_condition("drops[netfilter_drop]>10/s").unwrap();
        assert_eq!(c.measure, Measure::Drops(Some("NETFILTER_DROP".into())));
        let c = parse_condition("srtt>100ms").unwrap();
        assert_eq!((c.measure, c.above), (Measure::Srtt, 100e6));
        let c = parse_condition("stage:tx_qdisc_enq->tx_qdisc_deq:p99>20ms").unwrap();
        assert_eq!(
            (c.measure, c.above),
            (
                Measure::StageP99(Stage::TxQdiscEnq, Stage::TxQdiscDeq),
                20e6
            )
        );
        for bad in [
            "retrans>200",
            "retrans",
            "stage:a→b:p99>1ms",
            "cpu>3/s",
            "srtt>soon",
        ] {
            assert!(parse_condition(bad).is_err(), "{bad}");
        }
    }

    fn ev(kind: Stage, ts_ns: u64, skb: u64) -> RawEvent {
        RawEvent {
            kind: kind.code(),
            ts_ns,
            skb,
            ..RawEvent::default()
        }
    }

    #[test]
    fn rates_are_over_the_last_second_and_the_window_slides() {
        let conds = ["retrans>5/s", "drops>1/s", "drops[NO_SOCKET]>100/s"]
            .iter()
            .map(|c| parse_condition(c).unwrap())
            .collect();
        let mut w = Watch::new(conds, [(2u32, "NO_SOCKET".to_string())]);
        let mut r = ev(Stage::Retransmit, 0, 0);
        r.segs = 4;
        let mut failed = r;
        failed.err = -105;
        let mut d = ev(Stage::Drop, 0, 0);
        d.drop_reason = 2;
        // At 10.1 s: 12 segments and 3 drops; at 10.7 s, 3 more drops.
        let at = |mut e: RawEvent, ts: u64| {
            e.ts_ns = ts;
            e
        };
        let t = 10_100_000_000;
        w.add(&[at(r, t), at(r, t), at(r, t), at(failed, t)]);
        w.add(&[at(d, t), at(d, t), at(d, t)]);
        w.add(&[at(d, t + 600_000_000); 3]);
        let fired = |w: &mut Watch, now: u64| -> Vec<(String, f64)> {
            w.evaluate(now)
                .into_iter()
                .map(|(c, v)| (c.text, v))
                .collect()
        };
        // Over the second before 10.8 s: 12 segments, 6 drops.
        assert_eq!(
            fired(&mut w, 10_800_000_000),
            vec![("retrans>5/s".into(), 12.0), ("drops>1/s".into(), 6.0)]
        );
        // A second on, the first burst has slid out of the window: 3 drops are left.
        assert_eq!(
            fired(&mut w, 11_400_000_000),
            vec![("drops>1/s".into(), 3.0)]
        );
        assert!(fired(&mut w, 12_000_000_000).is_empty());
    }

    #[test]
    fn a_stage_pair_p99_joins_packets_by_skb() {
        let c = parse_condition("stage:tx_qdisc_enq→tx_qdisc_deq:p99>20ms").unwrap();
        let mut w = Watch::new(vec![c], []);
        let mut batch = Vec::new();
        // 100 packets: 99 wait 1 ms, one 50 ms; p99 (nearest rank) is the 99th: 1 ms.
        for skb in 1..=100u64 {
            let wait = if skb == 100 { 50_000_000 } else { 1_000_000 };
            batch.push(ev(Stage::TxQdiscEnq, skb * 10, skb));
            batch.push(ev(Stage::TxQdiscDeq, skb * 10 + wait, skb));
        }
        w.add(&batch);
        assert!(w.evaluate(500_000_000).is_empty());
        // Two seconds later, 2 in 100 wait 50 ms: the p99 of that second is 50 ms.
        batch.clear();
        let t = 3_000_000_000;
        for skb in 1..=100u64 {
            let wait = if skb > 98 { 50_000_000 } else { 1_000_000 };
            batch.push(ev(Stage::TxQdiscEnq, t, skb));
            batch.push(ev(Stage::TxQdiscDeq, t + wait, skb));
        }
        w.add(&batch);
        let fired = w.evaluate(t + 100_000_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].1, 50e6);
    }
}

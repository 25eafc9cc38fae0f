//! The live view on a terminal, redrawn once a second: events/s in all and per stage, events
//! lost, bytes on disk, the busiest flows and the time left before a limit stops the recording.
//! Nothing is drawn when stderr is not a terminal or with `-q` (only the final summary is
//! printed then).

use crate::write_pipeline::WriterStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tcptape_common::encode::ip_from_bytes;
use tcptape_common::RawEvent;

/// The busiest flows shown.
const TOP_FLOWS: usize = 3;

/// A connection, its two ends in a fixed order so that both directions count as one.
type Conn = (u16, [u8; 16], u16, [u8; 16], u16);

/// Events per connection since the last redraw (only kept while the view is drawn).
#[derive(Default)]
pub struct FlowTally(FxHashMap<Conn, u64>);

impl FlowTally {
    /// Counts the events of `batch` that name a flow.
    pub fn add(&mut self, batch: &[RawEvent]) {
        for e in batch {
            if e.sport == 0 && e.dport == 0 {
                continue;
            }
            let a = (e.saddr, e.sport);
            let b = (e.daddr, e.dport);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            *self
                .0
                .entry((e.family, lo.0, lo.1, hi.0, hi.1))
                .or_default() += 1;
        }
    }

    /// The busiest connections, most events first, as text; resets the counts.
    fn take_top(&mut self) -> Vec<(String, u64)> {
        let mut v: Vec<(Conn, u64)> = self.0.drain().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(TOP_FLOWS)
            .map(|((family, sa, sp, da, dp), n)| {
                (
                    format!("{} ⇄ {}", end(family, sa, sp), end(family, da, dp)),
                    n,
                )
            })
            .collect()
    }
}

/// An address and port as people write them (`[::1]:80` for IPv6).
fn end(family: u16, addr: [u8; 16], port: u16) -> String {
    match ip_from_bytes(family, &addr) {
        Some(IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
        None => format!("?:{port}"),
    }
}

/// What limits the recording, to say how much time is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--max-size`, bytes.
    pub max_size: u64,
    /// `--max-events`.
    pub max_events: Option<u64>,
}

/// The figures of one redraw.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Time recorded so far.
    pub elapsed: Duration,
    /// Events received so far, and per second over the last interval.
    pub events: u64,
    /// Events per second over the last interval.
    pub rate: f64,
    /// Events per second per stage over the last interval, by stage name.
    pub per_stage: Vec<(String, f64)>,
    /// Events lost so far (rings and writer queue).
    pub lost: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Bytes written per second over the last interval.
    pub byte_rate: f64,
    /// The busiest connections over the last interval, with events per second.
    pub flows: Vec<(String, f64)>,
    /// The flow sampling in force (1 in N; 1 = every flow).
    pub one_in: u32,
}

/// Time left before the first limit stops the recording, and which; `None` with no limit in
/// reach (the size and event limits are projected at the current rates).
pub fn time_left(s: &Snapshot, l: &Limits) -> Option<(Duration, &'static str)> {
    let mut left: Vec<(Duration, &'static str)> = Vec::new();
    if let Some(d) = l.duration {
        left.push((d.saturating_sub(s.elapsed), "--duration"));
    }
    if s.byte_rate > 0.0 && l.max_size < u64::MAX {
        let secs = l.max_size.saturating_sub(s.bytes) as f64 / s.byte_rate;
        left.push((Duration::from_secs_f64(secs.min(1e9)), "--max-size"));
    }
    if let (Some(m), true) = (l.max_events, s.rate > 0.0) {
        let secs = m.saturating_sub(s.events) as f64 / s.rate;
        left.push((Duration::from_secs_f64(secs.min(1e9)), "--max-events"));
    }
    left.into_iter().min_by_key(|(d, _)| *d)
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The view's lines for a snapshot.
pub fn render(s: &Snapshot, l: &Limits) -> String {
    let sampled = if s.one_in > 1 {
        format!(", 1 in {} flows", s.one_in)
    } else {
        String::new()
    };
    let mut out = format!(
        "{} recorded · {:.0} events/s ({} in all{sampled}) · {} lost · {} on disk",
        clock(s.elapsed),
        s.rate,
        s.events,
        s.lost,
        bytesize::ByteSize::b(s.bytes),
    );
    match time_left(s, l) {
        Some((d, why)) => out += &format!(" · {} left ({why})", clock(d)),
        None => out += " · until Ctrl-C",
    }
    let mut stages: Vec<&(String, f64)> = s.per_stage.iter().filter(|(_, r)| *r > 0.0).collect();
    stages.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if !stages.is_empty() {
        out += "\n  per stage/s: ";
        out += &stages
            .iter()
            .map(|(n, r)| format!("{n} {r:.0}"))
            .collect::<Vec<_>>()
            .join(" · ");
    }
    for (flow, r) in &s.flows {
        out += &format!("\n  {flow}  {r:.0} events/s");
    }
    out
}

/// The view, or nothing.
pub struct LiveView {
    bar: Option<ProgressBar>,
    limits: Limits,
    last: Option<(Duration, u64, u64, BTreeMap<String, u64>)>,
}

impl LiveView {
    /// A view drawn on stderr when `enabled`.
    pub fn new(enabled: bool, limits: Limits) -> LiveView {
        let bar = enabled.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("static template is valid"),
            );
            b
        });
        LiveView {
            bar,
            limits,
            last: None,
        }
    }

    /// True when the view is drawn (and wants a [`FlowTally`]).
    pub fn drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Redraws with the latest figures: `seen` is the kernel's per-stage count, cumulative;
    /// `tally` the flows counted since the last redraw; `one_in` the flow sampling in force.
    pub fn update(
        &mut self,
        (events, elapsed, one_in): (u64, Duration, u32),
        stats: &WriterStats,
        lost: u64,
        seen: &BTreeMap<String, u64>,
        tally: Option<&mut FlowTally>,
    ) {
        let Some(bar) = &self.bar else { return };
        let bytes = stats.bytes.load(Ordering::Relaxed);
        let (t0, e0, b0, s0) = self
            .last
            .take()
            .unwrap_or((Duration::ZERO, 0, 0, BTreeMap::new()));
        let dt = (elapsed.saturating_sub(t0)).as_secs_f64().max(1e-3);
        let per_stage = seen
            .iter()
            .map(|(n, v)| {
                let before = s0.get(n).copied().unwrap_or(0);
                (n.clone(), v.saturating_sub(before) as f64 / dt)
            })
            .collect();
        let flows = tally
            .map(|t| t.take_top())
            .unwrap_or_default()
            .into_iter()
            .map(|(f, n)| (f, n as f64 / dt))
            .collect();
        let snap = Snapshot {
            elapsed,
            events,
            rate: events.saturating_sub(e0) as f64 / dt,
            per_stage,
            lost: lost + stats.queue_lost.load(Ordering::Relaxed),
            bytes,
            byte_rate: bytes.saturating_sub(b0) as f64 / dt,
            flows,
            one_in,
        };
        bar.set_message(render(&snap, &self.limits));
        bar.tick();
        self.last = Some((elapsed, events, bytes, seen.clone()));
    }

    /// Removes the view.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            elapsed: Duration::from_secs(12),
            events: 120_000,
            rate: 10_000.0,
            per_stage: vec![
                ("rx_app".into(), 100.0),
                ("tx_driver".into(), 4_000.0),
                ("drop".into(), 0.0),
            ],
            lost: 3,
            bytes: 10 << 20,
            byte_rate: (1 << 20) as f64,
            flows: vec![("10.0.0.1:5201 ⇄ 10.0.0.2:40000".into(), 9_000.0)],
            one_in: 1,
        }
    }

    #[test]
    fn the_first_limit_in_reach_says_the_time_left() {
        let l = Limits {
            duration: Some(Duration::from_secs(60)),
            max_size: 20 << 20,
            max_events: None,
        };
        // 10 MiB to go at 1 MiB/s: the size limit comes first, in 10 s.
        assert_eq!(
            time_left(&snap(), &l),
            Some((Duration::from_secs(10), "--max-size"))
        );
        let l = Limits {
            duration: None,
            max_size: u64::MAX,
            max_events: Some(150_000),
        };
        assert_eq!(
            time_left(&snap(), &l),
            Some((Duration::from_secs(3), "--max-events"))
        );
        let none = Limits {
            duration: None,
            max_size: u64::MAX,
            max_events: None,
        };
        assert_eq!(time_left(&snap(), &none), None);
    }

    #[test]
    fn the_view_lists_busy_stages_first_and_the_busiest_flows() {
        let l = Limits {
            duration: Some(Duration::from_secs(60)),
            max_size: u64::MAX,
            max_events: None,
        };
        let text = render(&snap(), &l);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("0:00:12 recorded · 10000 events/s (120000 in all) · 3 lost · 10.0 MiB on disk · 0:00:48 left (--duration)"), "{text}");
        assert_eq!(lines[1], "  per stage/s: tx_driver 4000 · rx_app 100");
        assert_eq!(lines[2], "  10.0.0.1:5201 ⇄ 10.0.0.2:40000  9000 events/s");
        // Under a budget's sampling, the rate in force beside the events.
        let sampled = Snapshot {
            one_in: 16,
            ..snap()
        };
        assert!(
            render(&sampled, &l).starts_with(
                "0:00:12 recorded · 10000 events/s (120000 in all, 1 in 16 flows) · 3 lost"
            ),
            "{}",
            render(&sampled, &l)
        );
    }

    #[test]
    fn both_directions_of_a_connection_are_one_flow() {
        let mut a = RawEvent {
            family: libc::AF_INET as u16,
            sport: 5201,
            dport: 40000,
            ..RawEvent::default()
        };
        a.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        a.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut b = a;
        std::mem::swap(&mut b.saddr, &mut b.daddr);
        std::mem::swap(&mut b.sport, &mut b.dport);
        let none = RawEvent::default();
        let mut t = FlowTally::default();
        t.add(&[a, b, a, none]);
        assert_eq!(
            t.take_top(),
            vec![("10.0.0.1:5201 ⇄ 10.0.0.2:40000".to_string(), 3)]
        );
        assert!(t.take_top().is_empty(), "the counts start again");
    }
}

//! `--budget`: holds the recorded event rate under a budget by keeping fewer flows, in the
//! kernel, while the recording runs.
//!
//! The programs keep a flow when its flow hash is below a threshold (`KEEP_BELOW`), so a kept
//! flow has every stage of its packets, both directions and both ends on one host. The recorder
//! moves the threshold by powers of two: up at once when the rate is over the budget (as many
//! halvings as the excess needs), down one step at a time after a calm spell long enough to
//! double the rate safely. Halving a threshold keeps a subset of the flows, so the flows kept at
//! a lower rate are kept at every higher one, and the analyzer scales a count by the rate in
//! force at each event's time (stored as steps in the metadata).
//!
//! Two measures of the rate: the kernel's per-stage counters (before sampling, read at once)
//! divided by the rate in force predict it within a few tens of milliseconds, before the rings
//! overflow, and cut a storm (past twice the budget) in 25 ms; over 200 ms, the larger of that
//! prediction and the events that actually arrived (late by the staging and the ring; they
//! differ from the prediction when a few large flows carry the traffic) must stay under it.

use std::time::Duration;
use tcptape_common::metadata::SamplingStep;

/// The budget when `--budget` is not given: about 3.3 % of one CPU for the recorder at the
/// ~330 ns per event `check --cost` assumes, and about 1 MB/s of disk at 10.5 bytes per event.
pub const DEFAULT_BUDGET: u64 = 100_000;

/// The window of the prediction from the kernel's counters.
const FAST_WINDOW: Duration = Duration::from_millis(25);
/// The window of the events received: longer, as they arrive in batches.
const SLOW_WINDOW: Duration = Duration::from_millis(200);
/// Over a fast window, only a rate past this many budgets cuts at once: a burst of a few
/// milliseconds over the budget is not a reason to keep half the flows.
const STORM: f64 = 2.0;
/// The calm spell before the first step down; doubled after each step down that had to be
/// taken back, up to [`MAX_DOWN_WAIT`], so traffic whose rate doubling would exceed the budget
/// (a large flow that comes back with the step) does not flap.
const DOWN_WAIT: Duration = Duration::from_secs(1);
const MAX_DOWN_WAIT: Duration = Duration::from_secs(64);
/// A step down doubles the rate: taken only when twice the calm spell's rate stays under this
/// share of the budget.
const DOWN_HEADROOM: f64 = 0.8;

/// `--budget` as given: events per second, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(pub Option<u64>);

impl Default for Budget {
    fn default() -> Self {
        Budget(Some(DEFAULT_BUDGET))
    }
}

/// Parses `--budget`: `off`, or events per second with an optional `k` or `M` (`50000`, `50k`).
pub fn parse_budget(s: &str) -> Result<Budget, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(Budget(None));
    }
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1_000),
        Some(b'M' | b'm') => (&t[..t.len() - 1], 1_000_000),
        _ => (t, 1),
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("{s:?} is not a budget: events per second (e.g. 50000, 50k, 2M) or `off`")
    })?;
    match n.checked_mul(mult) {
        Some(v) if v >= 100 => Ok(Budget(Some(v))),
        _ => Err(format!(
            "--budget {s}: at least 100 events per second (or `off`)"
        )),
    }
}

/// The flow-hash threshold of 1 flow in `one_in` as `--sample` applies it: a flow is kept when
/// `hash * one_in < 2^32`, i.e. `hash < ceil(2^32 / one_in)`.
pub fn threshold_of_sample(one_in: u32) -> u64 {
    (1u64 << 32).div_ceil(one_in.max(1) as u64)
}

/// Counts at the start of a measuring window: (events received, events seen by the kernel,
/// monotonic time).
#[derive(Debug, Clone, Copy)]
struct Mark {
    received: u64,
    seen: u64,
    at_ns: u64,
}

impl Mark {
    fn rates(&self, received: u64, seen: u64, now_ns: u64, one_in: u32) -> (f64, f64) {
        let ns = now_ns.saturating_sub(self.at_ns);
        (
            per_second(received.saturating_sub(self.received), ns),
            per_second(seen.saturating_sub(self.seen), ns) / one_in as f64,
        )
    }
}

/// The rate the budget sets in force, and when.
#[derive(Debug)]
pub struct BudgetControl {
    budget: u64,
    /// The fixed `--sample`: the budget only ever keeps fewer flows than it.
    sample: u32,
    /// Halvings of the threshold; at its lowest, 2^level is at most `--sample`, which then
    /// decides alone.
    level: u32,
    fast: Mark,
    slow: Mark,
    /// Since when the rate has stayed the same.
    calm: Mark,
    /// The first slow window after a step has not closed yet.
    settling: bool,
    down_wait: Duration,
    /// When the last step down was taken.
    last_down: Option<u64>,
    /// Every rate in force since the start (a step every few seconds at most, see
    /// [`MAX_DOWN_WAIT`]), and how many were taken by [`BudgetControl::take_steps`].
    steps: Vec<SamplingStep>,
    taken: usize,
}

impl BudgetControl {
    /// A controller for `budget` events per second on top of `--sample`, starting at `now_ns`
    /// with every flow `--sample` keeps.
    pub fn new(budget: u64, sample: u32, now_ns: u64) -> BudgetControl {
        let sample = sample.max(1);
        let start = Mark {
            received: 0,
            seen: 0,
            at_ns: now_ns,
        };
        let mut c = BudgetControl {
            budget,
            sample,
            level: sample.ilog2(),
            fast: start,
            slow: start,
            calm: start,
            settling: false,
            down_wait: DOWN_WAIT,
            last_down: None,
            steps: Vec::new(),
            taken: 0,
        };
        c.steps.push(SamplingStep {
            from_ns: now_ns,
            one_in: c.one_in(),
        });
        c
    }

    /// The threshold the programs keep flows below now.
    pub fn threshold(&self) -> u64 {
        threshold_of_sample(self.sample).min((1u64 << 32) >> self.level.min(32))
    }

    /// 1 flow in this many is kept now.
    pub fn one_in(&self) -> u32 {
        let halved = 1u64 << self.level.min(32);
        halved.max(self.sample as u64).min(u32::MAX as u64) as u32
    }

    /// Every rate in force so far, from the start.
    pub fn steps(&self) -> &[SamplingStep] {
        &self.steps
    }

    /// The rates set in force since the last call (the first call includes the start's).
    pub fn take_steps(&mut self) -> Vec<SamplingStep> {
        let new = self.steps[self.taken..].to_vec();
        self.taken = self.steps.len();
        new
    }

    /// Looks at the events received so far (recorded or lost for want of room), `received`,
    /// and the events the kernel saw before sampling, `seen`, at monotonic time `now_ns`;
    /// returns the new threshold when the rate must change.
    pub fn tick(&mut self, received: u64, seen: u64, now_ns: u64) -> Option<u64> {
        let now = Mark {
            received,
            seen,
            at_ns: now_ns,
        };
        let one_in = self.one_in();
        // The rate that counts: over a fast window only a storm (the prediction past
        // STORM × the budget: the rings would overflow before a slow window closes), over a
        // slow one the larger of the prediction and what arrived.
        let mut rate = None::<f64>;
        if now_ns - self.fast.at_ns >= FAST_WINDOW.as_nanos() as u64 {
            let predicted = self.fast.rates(received, seen, now_ns, one_in).1;
            rate = (predicted > STORM * self.budget as f64).then_some(predicted);
            self.fast = now;
        }
        if now_ns - self.slow.at_ns >= SLOW_WINDOW.as_nanos() as u64 {
            let (actual, predicted) = self.slow.rates(received, seen, now_ns, one_in);
            // Right after a step, events kept before it are still arriving: only the
            // prediction counts then.
            let slow = if self.settling {
                predicted
            } else {
                actual.max(predicted)
            };
            self.settling = false;
            rate = Some(rate.map_or(slow, |r| r.max(slow)));
            self.slow = now;
        }
        let rate = rate?;
        let before = self.level;
        if rate > self.budget as f64 {
            // As many halvings as the excess needs, at once: a storm is cut in one step.
            let target = one_in as f64 * rate / self.budget as f64;
            self.level = (target.log2().ceil() as u32).max(self.level + 1).min(32);
            // A step down taken back soon: wait longer before the next.
            if self
                .last_down
                .is_some_and(|t| now_ns - t < 2 * self.down_wait.as_nanos() as u64)
            {
                self.down_wait = (self.down_wait * 2).min(MAX_DOWN_WAIT);
            }
            self.calm = now;
        } else if now_ns - self.calm.at_ns >= self.down_wait.as_nanos() as u64 {
            let (actual, predicted) = self.calm.rates(received, seen, now_ns, one_in);
            if self.level > self.sample.ilog2()
                && 2.0 * actual.max(predicted) < DOWN_HEADROOM * self.budget as f64
            {
                self.level -= 1;
                self.last_down = Some(now_ns);
            }
            self.calm = now;
        }
        if self.level == before {
            return None;
        }
        // The windows start again at the new rate.
        (self.fast, self.slow, self.calm) = (now, now, now);
        self.settling = true;
        let one_in = self.one_in();
        if self.steps.last().is_some_and(|s| s.one_in == one_in) {
            // Under a coarser --sample the step changed nothing the programs do.
            return None;
        }
        self.steps.push(SamplingStep {
            from_ns: now_ns,
            one_in,
        });
        Some(self.threshold())
    }
}

fn per_second(events: u64, ns: u64) -> f64 {
    events as f64 * 1e9 / ns.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn budgets_parse_with_units_and_off() {
        assert_eq!(parse_budget("off").unwrap(), Budget(None));
        assert_eq!(parse_budget("50000").unwrap(), Budget(Some(50_000)));
        assert_eq!(parse_budget("50k").unwrap(), Budget(Some(50_000)));
        assert_eq!(parse_budget("2M").unwrap(), Budget(Some(2_000_000)));
        assert!(parse_budget("10").unwrap_err().contains("at least 100"));
        assert!(parse_budget("fast").unwrap_err().contains("not a budget"));
    }

    #[test]
    fn sample_thresholds_match_the_programs_modulus_rule() {
        // The programs keep `h` when h * N >> 32 == 0.
        for n in [1u32, 2, 3, 7, 10, 100, 1 << 20] {
            let t = threshold_of_sample(n);
            let kept = |h: u64| (h * n as u64) >> 32 == 0;
            assert!(kept(t - 1), "N={n}");
            assert!(t == 1 << 32 || !kept(t), "N={n}");
        }
    }

    /// Offers `offered` events/s (before sampling, many small flows: the rate received is the
    /// offered one over the rate in force) for `secs` from `*t`, ticking every 25 ms.
    fn run(c: &mut BudgetControl, offered: f64, secs: u64, t: &mut u64, counts: &mut (f64, f64)) {
        let end = *t + secs * 1000 * MS;
        while *t < end {
            *t += 25 * MS;
            counts.1 += offered * 0.025;
            counts.0 += offered * 0.025 / c.one_in() as f64;
            let _ = c.tick(counts.0 as u64, counts.1 as u64, *t);
        }
    }

    #[test]
    fn a_rate_five_times_the_budget_is_cut_within_one_fast_window_and_held() {
        let mut c = BudgetControl::new(10_000, 1, 0);
        // 25 ms at 50 000 events/s seen: 2.3 halvings needed → 1 in 8.
        assert_eq!(c.tick(0, 1_250, 25 * MS), Some((1u64 << 32) >> 3));
        assert_eq!(c.one_in(), 8);
        let (mut t, mut counts) = (25 * MS, (0.0, 1_250.0));
        run(&mut c, 50_000.0, 10, &mut t, &mut counts);
        // 50 000 / 8 = 6 250 < 10 000 but twice that is over 80 %: it stays.
        assert_eq!(c.one_in(), 8);
        assert_eq!(c.steps().len(), 2);
    }

    #[test]
    fn a_quiet_spell_steps_down_one_halving_at_a_time() {
        let mut c = BudgetControl::new(10_000, 1, 0);
        // 200 000 events/s: 20 times the budget → 1 in 32.
        c.tick(0, 5_000, 25 * MS);
        assert_eq!(c.one_in(), 32);
        let (mut t, mut counts) = (25 * MS, (0.0, 5_000.0));
        // 1 000 events/s offered: each second's calm allows one halving.
        run(&mut c, 1_000.0, 7, &mut t, &mut counts);
        assert_eq!(c.one_in(), 1, "{:?}", c.steps());
        let ones: Vec<u32> = c.steps().iter().map(|s| s.one_in).collect();
        assert_eq!(ones, [1, 32, 16, 8, 4, 2, 1]);
        assert!(c.steps()[2..]
            .windows(2)
            .all(|w| w[1].from_ns - w[0].from_ns >= 1000 * MS));
    }

    #[test]
    fn events_received_over_the_budget_step_up_when_the_prediction_does_not() {
        // 40 000/s seen: 1 in 4, a predicted 10 000/s; but a large flow that is kept brings
        // 15 000/s.
        let mut c = BudgetControl::new(10_000, 1, 0);
        c.tick(0, 1_000, 25 * MS);
        assert_eq!(c.one_in(), 4);
        let mut t = 25 * MS;
        let (mut received, mut seen) = (0u64, 1_000u64);
        let mut changed = None;
        while t < 1000 * MS && changed.is_none() {
            t += 25 * MS;
            seen += 1_000;
            received += 375;
            changed = c.tick(received, seen, t).map(|_| t);
        }
        assert_eq!(c.one_in(), 8);
        // Not in the first slow window after the step (events from before it may still be
        // arriving then), in the second.
        assert!(changed.unwrap() <= 25 * MS + 400 * MS, "{changed:?}");
        assert!(changed.unwrap() > 25 * MS + 200 * MS, "{changed:?}");
    }

    #[test]
    fn a_step_down_taken_back_makes_the_next_wait_longer() {
        // 30 000/s seen. At 1 in 8 the flows kept bring 500/s (predicted 3 750: twice is under
        // 80 % of the budget); at 1 in 4 a large flow comes in and brings 12 000/s.
        let mut c = BudgetControl::new(10_000, 1, 0);
        c.tick(0, 750, 25 * MS);
        assert_eq!(c.one_in(), 4);
        let (mut received, mut seen, mut t) = (0u64, 750u64, 25 * MS);
        let mut downs = Vec::new();
        while t < 60_000 * MS {
            t += 25 * MS;
            seen += 750;
            received += if c.one_in() == 8 { 12 } else { 300 };
            let before = c.one_in();
            c.tick(received, seen, t);
            if before == 8 && c.one_in() == 4 {
                downs.push(t);
            }
        }
        // Without the backoff it would step down about every 1.2 s (50 times in a minute).
        assert!(downs.len() <= 7, "{} steps down: {downs:?}", downs.len());
        let gaps: Vec<u64> = downs.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    }

    #[test]
    fn a_coarser_fixed_sample_bounds_the_rate_from_below() {
        let mut c = BudgetControl::new(10_000, 10, 0);
        assert_eq!(c.one_in(), 10);
        assert_eq!(c.threshold(), threshold_of_sample(10));
        // 150 000/s seen, 15 000/s at 1 in 10: 1.5 times over, no storm: the slow window
        // cuts it (→ 1 in 16), not the fast one.
        assert_eq!(c.tick(0, 3_750, 25 * MS), None);
        assert_eq!(c.tick(0, 30_000, 200 * MS), Some((1u64 << 32) >> 4));
        assert_eq!(c.one_in(), 16);
        // 640 000/s seen, 40 000/s at 1 in 16: 4 times over, a storm → 1 in 64 at once.
        assert_eq!(
            c.tick(0, 30_000 + 16_000, 225 * MS),
            Some((1u64 << 32) >> 6)
        );
        // A long calm: back to 1 in 16, then to --sample's 1 in 10, never below.
        let (mut t, mut counts) = (225 * MS, (0.0, 46_000.0));
        run(&mut c, 1_000.0, 10, &mut t, &mut counts);
        assert_eq!(c.one_in(), 10);
        assert_eq!(c.threshold(), threshold_of_sample(10));
        let ones: Vec<u32> = c.steps().iter().map(|s| s.one_in).collect();
        assert_eq!(ones, [10, 16, 64, 32, 16, 10]);
    }
}

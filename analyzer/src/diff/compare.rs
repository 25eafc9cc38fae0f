//! Comparing two recordings: the report's per-stage figures side by side, a Mann–Whitney test
//! per pair of stages on the packets behind those figures, and the `--fail-on` thresholds.

use super::environment;
use super::model::*;
use super::stats::{blocks, mann_whitney, mean, nearest_rank, quantile_ci, z_of, MannWhitney};
use super::threshold::{Limit, Metric, Threshold};
use crate::model::{Report, StageLatency};
use crate::per_packet::{self, Pair};
use crate::progress::Steps;
use crate::queries::journey_rank;
use crate::report::{self, Options};
use std::collections::{BTreeMap, BTreeSet};
use tcptape_common::{Recording, Stage};

/// Time blocks per side for a test, at most.
pub const MAX_BLOCKS: usize = 30;
/// Packets per block for a test on medians, at least.
pub const MIN_BLOCK: usize = 20;
/// Blocks per side for a test, at least (with fewer, no verdict).
pub const MIN_BLOCKS: usize = 5;
/// Fewer packets than this on either side give no verdict.
pub const MIN_PACKETS: usize = MIN_BLOCK * MIN_BLOCKS;

/// The medians of the time blocks of samples given in time order.
fn block_medians(by_time: &[i64]) -> Vec<i64> {
    blocks(by_time, MIN_BLOCK, MAX_BLOCKS, |b| {
        nearest_rank(b, 0.5).unwrap_or(0)
    })
}

fn sorted(v: &[i64]) -> Vec<i64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// One recording, analyzed.
pub struct Side {
    /// The recording.
    pub rec: Recording,
    /// Its report, as `tcptape report` builds it.
    pub report: Report,
    /// Stage delays per pair in time order, the packets behind `report.stages`.
    pub stages: BTreeMap<Pair, Vec<i64>>,
    /// Whole-journey durations per pair in time order, behind `report.end_to_end`.
    pub end_to_end: BTreeMap<Pair, Vec<i64>>,
}

/// Analyzes one recording for a comparison.
pub fn load(rec: Recording, opts: &Options, steps: &Steps) -> anyhow::Result<Side> {
    let recs = std::slice::from_ref(&rec);
    let report = report::build(recs, opts, steps)?;
    let j = per_packet::journeys(recs, &opts.selection, opts.max_hop_gap_ns)?;
    let stages = per_packet::stage_samples(&j)?;
    let end_to_end = per_packet::end_to_end_samples(&j)?;
    Ok(Side {
        rec,
        report,
        stages,
        end_to_end,
    })
}

fn pair_of(l: &StageLatency) -> Option<Pair> {
    Some((l.from.parse().ok()?, l.to.parse().ok()?))
}

fn order(p: &Pair) -> (u8, u8) {
    (
        journey_rank(p.0).unwrap_or(u8::MAX),
        journey_rank(p.1).unwrap_or(u8::MAX),
    )
}

fn changes(b: &StageLatency, c: &StageLatency) -> Changes {
    let ch = |x: u64, y: u64| Change::of(x as f64, y as f64);
    Changes {
        count: ch(b.count, c.count),
        mean_ns: Change::of(b.mean_ns, c.mean_ns),
        p50_ns: ch(b.p50_ns, c.p50_ns),
        p90_ns: ch(b.p90_ns, c.p90_ns),
        p99_ns: ch(b.p99_ns, c.p99_ns),
        p999_ns: ch(b.p999_ns, c.p999_ns),
        max_ns: ch(b.max_ns, c.max_ns),
    }
}

/// Compares rows of one kind (stages or whole journeys).
fn rows(
    base: &[StageLatency],
    cand: &[StageLatency],
    bs: &BTreeMap<Pair, Vec<i64>>,
    cs: &BTreeMap<Pair, Vec<i64>>,
    settings: &Settings,
) -> Vec<StageDiff> {
    let find = |v: &[StageLatency], p: Pair| v.iter().find(|l| pair_of(l) == Some(p)).cloned();
    let mut pairs: Vec<Pair> = base
        .iter()
        .chain(cand)
        .filter_map(pair_of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    pairs.sort_by_key(order);
    let tested = pairs
        .iter()
        .filter(|p| {
            bs.get(p).map_or(0, Vec::len) >= MIN_PACKETS
                && cs.get(p).map_or(0, Vec::len) >= MIN_PACKETS
        })
        .count()
        .max(1);
    let z = z_of(settings.confidence);
    pairs
        .into_iter()
        .map(|p| {
            let (b, c) = (find(base, p), find(cand, p));
            let empty = Vec::new();
            let (sb, sc) = (bs.get(&p).unwrap_or(&empty), cs.get(&p).unwrap_or(&empty));
            let ch = match (&b, &c) {
                (Some(b), Some(c)) => Some(changes(b, c)),
                _ => None,
            };
            let (test, test_blocks, verdict) = match &ch {
                None => (None, None, Verdict::OneSideOnly),
                Some(_) if sb.len() < MIN_PACKETS || sc.len() < MIN_PACKETS => {
                    (None, None, Verdict::TooFewPackets)
                }
                Some(ch) => {
                    let (mb, mc) = (block_medians(sb), block_medians(sc));
                    let t = mann_whitney(&mb, &mc);
                    (
                        t,
                        Some([mb.len(), mc.len()]),
                        verdict(t, ch.p50_ns, tested, settings),
                    )
                }
            };
            let p50_ci = match (
                quantile_ci(&sorted(sb), 0.5, z),
                quantile_ci(&sorted(sc), 0.5, z),
            ) {
                (Some(x), Some(y)) => Some([x, y]),
                _ => None,
            };
            StageDiff {
                from: p.0.name().into(),
                to: p.1.name().into(),
                base: b,
                cand: c,
                changes: ch,
                p50_ci_ns: p50_ci,
                test,
                test_blocks,
                verdict,
            }
        })
        .collect()
}

/// A shift is real when the test rejects "same distribution" at `alpha / tests` (Bonferroni:
/// the chance of any false alarm over all pairs stays below `alpha`) and the median moved by
/// at least the minimum effect, relative and absolute, in the direction the test found.
fn verdict(t: Option<MannWhitney>, p50: Change, tests: usize, s: &Settings) -> Verdict {
    let Some(t) = t else {
        // Every delay identical on both sides: a change is then exact, not noise.
        return if p50.abs == 0.0 {
            Verdict::NoChange
        } else if big_enough(p50, s) {
            if p50.abs > 0.0 {
                Verdict::Slower
            } else {
                Verdict::Faster
            }
        } else {
            Verdict::NoChange
        };
    };
    let significant = t.p_value < s.alpha / tests as f64;
    if !significant || !big_enough(p50, s) {
        return Verdict::NoChange;
    }
    match (t.z > 0.0, p50.abs > 0.0) {
        (true, true) => Verdict::Slower,
        (false, false) => Verdict::Faster,
        // The median and the ranks disagree: the shape changed, not the location.
        _ => Verdict::NoChange,
    }
}

fn big_enough(p50: Change, s: &Settings) -> bool {
    let rel = p50.rel.map_or(p50.abs != 0.0, |r| r.abs() >= s.min_effect);
    rel && p50.abs.abs() >= s.min_shift_ns as f64
}

fn side_summary(s: &Side) -> super::model::Side {
    let r = &s.report;
    super::model::Side {
        path: s.rec.path.display().to_string(),
        host: r.host.clone(),
        source: s.rec.meta().source,
        events: r.events,
        duration_ns: r.duration_ns,
        lost_events: r.lost_events,
        journeys: r.journeys.total,
    }
}

/// Retransmission attempts that left the host (a GSO packet counts once, like a sent packet).
fn retransmitted(r: &Report) -> u64 {
    r.tcp
        .retransmits
        .attempts
        .saturating_sub(r.tcp.retransmits.failed_attempts)
}

/// Packets transmitted: journeys that start on the TX path.
fn packets_sent(r: &Report) -> u64 {
    r.journeys.matched_to_write + r.journeys.tx_unmatched
}

fn rate(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// Two-proportion z statistic (pooled), 0 when undefined.
fn proportion_z(s1: u64, n1: u64, s2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 0.0;
    }
    let (p1, p2) = (rate(s1, n1), rate(s2, n2));
    let p = rate(s1 + s2, n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        0.0
    } else {
        (p2 - p1) / se
    }
}

fn latency_value(l: &StageLatency, m: Metric) -> f64 {
    match m {
        Metric::Percentile(500) => l.p50_ns as f64,
        Metric::Percentile(900) => l.p90_ns as f64,
        Metric::Percentile(990) => l.p99_ns as f64,
        Metric::Percentile(_) => l.p999_ns as f64,
        Metric::Max => l.max_ns as f64,
        Metric::Mean => l.mean_ns,
        Metric::Count => l.count as f64,
        Metric::RetransmitRate | Metric::Lost => f64::NAN,
    }
}

fn unit(m: Metric) -> &'static str {
    if m.is_duration() {
        "ns"
    } else if m == Metric::RetransmitRate {
        "fraction"
    } else {
        "count"
    }
}

/// A statistic of one block of sorted samples.
type BlockStat = Box<dyn Fn(&[i64]) -> i64>;

/// Why a crossed latency threshold is within noise, if it is.
///
/// The figure is computed per time block on each side and the blocks are compared with the
/// Mann–Whitney test at `alpha`: a threshold fires only when the blocks of the candidate are
/// shifted the way it says. A percentile needs blocks of at least `5 / (1 − q)` packets (500
/// for p99); with fewer than [`MIN_BLOCKS`] such blocks per side, the distribution-free
/// confidence intervals of the quantile must not overlap instead.
fn latency_noise(t: &Threshold, sb: &[i64], sc: &[i64], s: &Settings) -> Option<String> {
    if matches!(t.limit, Limit::Level(_)) {
        return None;
    }
    let (min_block, stat): (usize, BlockStat) = match t.metric {
        Metric::Percentile(q) => {
            let q = q as f64 / 1000.0;
            (
                ((5.0 / (1.0 - q)).ceil() as usize).max(MIN_BLOCK),
                Box::new(move |b: &[i64]| nearest_rank(b, q).unwrap_or(0)),
            )
        }
        Metric::Mean => (MIN_BLOCK, Box::new(mean)),
        _ => return None,
    };
    let (bb, bc) = (
        blocks(sb, min_block, MAX_BLOCKS, &stat),
        blocks(sc, min_block, MAX_BLOCKS, &stat),
    );
    if bb.len() >= MIN_BLOCKS && bc.len() >= MIN_BLOCKS {
        let m = mann_whitney(&bb, &bc);
        let shifted = m.is_some_and(|m| m.p_value < s.alpha && (m.z > 0.0) == t.above);
        return (!shifted).then(|| {
            format!(
                "within noise: the {} time blocks of each side do not differ \
                 (Mann–Whitney p = {})",
                bb.len().min(bc.len()),
                super::render::p_value(m.map(|m| m.p_value))
            )
        });
    }
    let Metric::Percentile(q) = t.metric else {
        return Some("within noise: too few packets to test the mean".into());
    };
    let z = z_of(s.confidence);
    let q = q as f64 / 1000.0;
    let (b, c) = (
        quantile_ci(&sorted(sb), q, z)?,
        quantile_ci(&sorted(sc), q, z)?,
    );
    let apart = if t.above { c.0 > b.1 } else { c.1 < b.0 };
    (!apart).then(|| {
        format!(
            "within noise: the {:.0}% intervals of the quantile overlap \
             (base {}..{} ns, candidate {}..{} ns)",
            s.confidence * 100.0,
            b.0,
            b.1,
            c.0,
            c.1
        )
    })
}

/// Checks every threshold; an error for one whose scope matches no row of either recording.
fn check_thresholds(
    ts: &[Threshold],
    d: &Diff,
    base: &Side,
    cand: &Side,
) -> anyhow::Result<Vec<ThresholdCheck>> {
    let mut out = Vec::new();
    let mut to_test = Vec::new();
    let mut evaluated = 0usize;
    for t in ts {
        if !t.metric.is_latency() {
            let (b, c) = (&base.report, &cand.report);
            let (change, noise) = match t.metric {
                Metric::RetransmitRate => {
                    let (s1, n1) = (retransmitted(b), packets_sent(b));
                    let (s2, n2) = (retransmitted(c), packets_sent(c));
                    let z = proportion_z(s1, n1, s2, n2);
                    let crit = z_of(1.0 - d.settings.alpha);
                    let noisy = !matches!(t.limit, Limit::Level(_))
                        && if t.above { z < crit } else { z > -crit };
                    (
                        d.retransmits.rate,
                        noisy.then(|| format!("within noise: two-proportion z = {z:.2}")),
                    )
                }
                _ => (d.lost.events, None),
            };
            let crossed = t.crossed(change.base, change.cand);
            out.push(ThresholdCheck {
                expr: t.text.clone(),
                row: if t.metric == Metric::Lost {
                    "lost events".into()
                } else {
                    "retransmits".into()
                },
                change: Some(change),
                unit: unit(t.metric),
                failed: crossed && noise.is_none(),
                note: if crossed { noise } else { None },
            });
            continue;
        }
        let mut any = false;
        for (rows, e2e, bs, cs) in [
            (&d.stages, false, &base.stages, &cand.stages),
            (&d.end_to_end, true, &base.end_to_end, &cand.end_to_end),
        ] {
            for row in rows {
                let (Ok(f), Ok(to)) = (row.from.parse::<Stage>(), row.to.parse::<Stage>()) else {
                    continue;
                };
                if !t.covers(f, to, e2e) {
                    continue;
                }
                any = true;
                let name = if e2e {
                    format!("end to end {}", row.name())
                } else {
                    row.name()
                };
                let (Some(b), Some(c)) = (&row.base, &row.cand) else {
                    out.push(ThresholdCheck {
                        expr: t.text.clone(),
                        row: name,
                        change: None,
                        unit: unit(t.metric),
                        failed: false,
                        note: Some("recorded on one side only".into()),
                    });
                    continue;
                };
                let change = Change::of(latency_value(b, t.metric), latency_value(c, t.metric));
                let crossed = t.crossed(change.base, change.cand);
                evaluated += 1;
                if crossed {
                    to_test.push((out.len(), t, bs.get(&(f, to)), cs.get(&(f, to))));
                }
                out.push(ThresholdCheck {
                    expr: t.text.clone(),
                    row: name,
                    change: Some(change),
                    unit: unit(t.metric),
                    failed: crossed,
                    note: None,
                });
            }
        }
        anyhow::ensure!(
            any,
            "--fail-on '{}': no such pair of stages in either recording",
            t.text
        );
    }
    // Each crossed latency threshold is tested at alpha over the number of rows checked
    // (Bonferroni), so the chance that noise fails any of them stays below alpha.
    let settings = Settings {
        alpha: d.settings.alpha / evaluated.max(1) as f64,
        ..d.settings.clone()
    };
    let empty = Vec::new();
    for (i, t, sb, sc) in to_test {
        let noise = latency_noise(t, sb.unwrap_or(&empty), sc.unwrap_or(&empty), &settings);
        out[i].failed = noise.is_none();
        out[i].note = noise;
    }
    Ok(out)
}

/// Compares `base` with `cand`.
pub fn compare(
    base: &Side,
    cand: &Side,
    thresholds: &[Threshold],
    settings: Settings,
) -> anyhow::Result<Diff> {
    let (b, c) = (&base.report, &cand.report);
    let stages = rows(&b.stages, &c.stages, &base.stages, &cand.stages, &settings);
    let end_to_end = rows(
        &b.end_to_end,
        &c.end_to_end,
        &base.end_to_end,
        &cand.end_to_end,
        &settings,
    );
    let one_side = |want_base: bool| {
        stages
            .iter()
            .chain(&end_to_end)
            .filter(|r| r.verdict == Verdict::OneSideOnly && r.base.is_some() == want_base)
            .map(StageDiff::name)
            .collect::<Vec<_>>()
    };
    let (only_in_base, only_in_cand) = (one_side(true), one_side(false));
    let retransmits = RetransmitDiff {
        packets: [retransmitted(b), retransmitted(c)],
        segments: [b.tcp.retransmits.segments, c.tcp.retransmits.segments],
        packets_sent: [packets_sent(b), packets_sent(c)],
        rate: Change::of(
            rate(retransmitted(b), packets_sent(b)),
            rate(retransmitted(c), packets_sent(c)),
        ),
    };
    let lost = LostDiff {
        events: Change::of(b.lost_events as f64, c.lost_events as f64),
        rate: Change::of(
            rate(b.lost_events, b.events + b.lost_events),
            rate(c.lost_events, c.events + c.lost_events),
        ),
    };
    let mut d = Diff {
        schema: DIFF_SCHEMA,
        base: side_summary(base),
        cand: side_summary(cand),
        environment: environment::differences(&base.rec.meta(), &cand.rec.meta()),
        settings,
        stages,
        end_to_end,
        only_in_base,
        only_in_cand,
        retransmits,
        lost,
        thresholds: Vec::new(),
        regressions: Vec::new(),
        regression: false,
    };
    d.thresholds = check_thresholds(thresholds, &d, base, cand)?;
    d.regressions = if thresholds.is_empty() {
        d.stages
            .iter()
            .map(|r| (r, ""))
            .chain(d.end_to_end.iter().map(|r| (r, "end to end ")))
            .filter(|(r, _)| {
                r.verdict == Verdict::Slower
                    && r.changes.is_some_and(|c| {
                        c.p50_ns.rel.is_none_or(|rel| rel >= d.settings.fail_effect)
                            && c.p50_ns.abs >= d.settings.fail_shift_ns as f64
                    })
            })
            .map(|(r, what)| {
                let ch = r.changes.expect("both sides").p50_ns;
                format!(
                    "{what}{} slower: median {} → {} ({}), Mann–Whitney p = {}",
                    r.name(),
                    crate::units::ns(ch.base),
                    crate::units::ns(ch.cand),
                    super::render::percent(ch.rel),
                    super::render::p_value(r.test.map(|t| t.p_value))
                )
            })
            .collect()
    } else {
        d.thresholds
            .iter()
            .filter(|t| t.failed)
            .map(|t| {
                let ch = t.change.expect("a failed check has figures");
                format!(
                    "{} on {}: {} → {}",
                    t.expr,
                    t.row,
                    super::render::figure(t.unit, ch.base),
                    super::render::figure(t.unit, ch.cand)
                )
            })
            .collect()
    };
    d.regression = !d.regressions.is_empty();
    Ok(d)
}

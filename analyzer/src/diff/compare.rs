//! Comparing two recordings: the report's per-stage figures side by side, a Mann–Whitney test
//! per pair of stages on the packets behind those figures, and the `--fail-on` thresholds.

use super::environment;
use super::model::*;
use super::stats::{
    blocks, mann_whitney, mean, nearest_rank, permutation_mann_whitney, quantile_ci,
    quantile_ci_bounded, smallest_p, sorted, welch_log, z_of, PERMUTATIONS,
};
use super::threshold::{Limit, Metric, Threshold};
use crate::journeys::per_packet::{self, Pair};
use crate::progress::Steps;
use crate::queries::journey_rank;
use crate::report::model::{Report, StageLatency};
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

/// One side of the comparison, analyzed: one recording, or several runs of one scenario.
pub struct Side {
    /// The recordings (one per run), in time order.
    pub recs: Vec<Recording>,
    /// Its report over every run, as `tcptape report` builds it.
    pub report: Report,
    /// Stage delays per pair in time order, the packets behind `report.stages` (runs one after
    /// the other).
    pub stages: BTreeMap<Pair, Vec<i64>>,
    /// Whole-journey durations per pair in time order, behind `report.end_to_end`.
    pub end_to_end: BTreeMap<Pair, Vec<i64>>,
    /// With several runs: each run's median per pair (stages, then whole journeys).
    pub runs: Vec<[BTreeMap<Pair, i64>; 2]>,
}

fn medians(m: &BTreeMap<Pair, Vec<i64>>) -> BTreeMap<Pair, i64> {
    m.iter()
        .filter_map(|(p, v)| Some((*p, nearest_rank(&sorted(v), 0.5)?)))
        .collect()
}

/// Analyzes one side: its recordings are runs of one scenario on one host.
pub fn load(recs: Vec<Recording>, opts: &Options, steps: &Steps) -> anyhow::Result<Side> {
    // The report's own journeys give the packets behind its figures; with runs, each run's
    // journeys give its medians.
    let (report, j) = report::build_with_journeys(&recs, opts, steps)?;
    let (stages, end_to_end) = (
        per_packet::stage_samples(&j)?,
        per_packet::end_to_end_samples(&j)?,
    );
    drop(j);
    let mut runs = Vec::new();
    if recs.len() > 1 {
        for rec in &recs {
            let j = per_packet::journeys(
                std::slice::from_ref(rec),
                &opts.selection,
                opts.max_hop_gap_ns,
            )?;
            runs.push([
                medians(&per_packet::stage_samples(&j)?),
                medians(&per_packet::end_to_end_samples(&j)?),
            ]);
        }
    }
    Ok(Side {
        recs,
        report,
        stages,
        end_to_end,
        runs,
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

/// A pair recorded on one side only matters (is undecided, not just listed) from this many
/// packets...
pub const ONE_SIDE_MIN_PACKETS: u64 = 10;
/// ...and this share of the side's most frequent pair.
pub const ONE_SIDE_MIN_SHARE: f64 = 0.05;

/// One row to compare: its name, each side's figures and the samples behind them.
pub struct RowInput<'a> {
    /// Earlier stage (or host and stage).
    pub from: String,
    /// Later stage.
    pub to: String,
    /// Base figures.
    pub base: Option<StageLatency>,
    /// Candidate figures.
    pub cand: Option<StageLatency>,
    /// Base samples, time order.
    pub sb: &'a [i64],
    /// Candidate samples, time order.
    pub sc: &'a [i64],
    /// Each run's median, base and candidate (empty with one run a side).
    pub runs: [Vec<i64>; 2],
}

/// The rows of pairs of stages (whole journeys with `end_to_end`) of both sides.
fn pair_rows<'a>(base: &'a Side, cand: &'a Side, end_to_end: bool) -> Vec<RowInput<'a>> {
    let k = end_to_end as usize;
    let (bl, cl, bs, cs) = if end_to_end {
        (
            &base.report.end_to_end,
            &cand.report.end_to_end,
            &base.end_to_end,
            &cand.end_to_end,
        )
    } else {
        (
            &base.report.stages,
            &cand.report.stages,
            &base.stages,
            &cand.stages,
        )
    };
    let find = |v: &[StageLatency], p: Pair| v.iter().find(|l| pair_of(l) == Some(p)).cloned();
    let mut pairs: Vec<Pair> = bl
        .iter()
        .chain(cl)
        .filter_map(pair_of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    pairs.sort_by_key(order);
    let run_medians =
        |s: &Side, p: &Pair| s.runs.iter().filter_map(|r| r[k].get(p).copied()).collect();
    pairs
        .into_iter()
        .map(|p| RowInput {
            from: p.0.name().into(),
            to: p.1.name().into(),
            base: find(bl, p),
            cand: find(cl, p),
            sb: bs.get(&p).map_or(&[][..], Vec::as_slice),
            sc: cs.get(&p).map_or(&[][..], Vec::as_slice),
            runs: [run_medians(base, &p), run_medians(cand, &p)],
        })
        .collect()
}

/// Compares rows of one kind (stages, whole journeys, or the wire between hosts).
pub fn rows(inputs: Vec<RowInput>, settings: &Settings) -> Vec<StageDiff> {
    // Every pair recorded on both sides is tested (Bonferroni over them all).
    let tested = inputs
        .iter()
        .filter(|r| r.base.is_some() && r.cand.is_some())
        .count()
        .max(1);
    let level = settings.alpha / tested as f64;
    let most = |side: usize| {
        inputs
            .iter()
            .filter_map(|r| {
                if side == 0 {
                    r.base.as_ref()
                } else {
                    r.cand.as_ref()
                }
            })
            .map(|l| l.count)
            .max()
            .unwrap_or(0)
    };
    let most = [most(0), most(1)];
    let z = z_of(settings.confidence);
    inputs
        .into_iter()
        .map(|r| {
            let (sb, sc) = (r.sb, r.sc);
            let ch = match (&r.base, &r.cand) {
                (Some(b), Some(c)) => Some(changes(b, c)),
                _ => None,
            };
            let mut row = StageDiff {
                from: r.from,
                to: r.to,
                base: r.base,
                cand: r.cand,
                changes: ch,
                p50_ci_ns: None,
                test: None,
                method: None,
                runs_p50_ns: None,
                runs_test: None,
                test_blocks: None,
                verdict: Verdict::NoChange,
            };
            row.verdict = match &ch {
                None => {
                    let (count, side) = match (&row.base, &row.cand) {
                        (Some(b), _) => (b.count, 0),
                        (_, Some(c)) => (c.count, 1),
                        _ => (0, 0),
                    };
                    let matters = count >= ONE_SIDE_MIN_PACKETS
                        && count as f64 >= ONE_SIDE_MIN_SHARE * most[side] as f64;
                    if matters {
                        Verdict::Undecided
                    } else {
                        Verdict::OneSideOnly
                    }
                }
                Some(ch) if r.runs[0].len() >= 2 && r.runs[1].len() >= 2 => {
                    // Runs: the change against how much the runs of each side differ.
                    let w = welch_log(&r.runs[0], &r.runs[1]);
                    row.method = Some("runs");
                    row.runs_test = w;
                    row.runs_p50_ns = Some(r.runs.clone());
                    verdict_of(w.map(|w| (w.p_value, w.t)), ch.p50_ns, level, settings)
                }
                Some(ch) if sb.len() >= MIN_PACKETS && sc.len() >= MIN_PACKETS => {
                    let (mb, mc) = (block_medians(sb), block_medians(sc));
                    let t = mann_whitney(&mb, &mc);
                    row.method = Some("time blocks");
                    row.test = t;
                    row.test_blocks = Some([mb.len(), mc.len()]);
                    verdict_of(t.map(|t| (t.p_value, t.z)), ch.p50_ns, level, settings)
                }
                Some(ch) if smallest_p(sb.len(), sc.len()) < level => {
                    // Too few for time blocks: each packet is one observation.
                    let t = permutation_mann_whitney(sb, sc, PERMUTATIONS);
                    row.method = Some("packets");
                    row.test = t;
                    verdict_of(t.map(|t| (t.p_value, t.z)), ch.p50_ns, level, settings)
                }
                Some(ch) if fails(ch.p50_ns, settings) => Verdict::Undecided,
                Some(_) => Verdict::TooFewPackets,
            };
            if let (Some(x), Some(y)) = (
                quantile_ci(&sorted(sb), 0.5, z),
                quantile_ci(&sorted(sc), 0.5, z),
            ) {
                row.p50_ci_ns = Some([x, y]);
            }
            row
        })
        .collect()
}

/// A rise of the median that fails a build without `--fail-on`, if real.
pub fn fails(p50: Change, s: &Settings) -> bool {
    p50.rel.is_none_or(|rel| rel >= s.fail_effect) && p50.abs >= s.fail_shift_ns as f64
}

/// A shift is real when the test (p-value, and the sign of its statistic: positive when the
/// candidate is slower) rejects "same distribution" at `level` (alpha over the pairs tested,
/// Bonferroni: the chance of any false alarm over all pairs stays below alpha) and the median
/// moved by at least the minimum effect, relative and absolute, in the direction the test
/// found.
fn verdict_of(t: Option<(f64, f64)>, p50: Change, level: f64, s: &Settings) -> Verdict {
    let Some((p_value, stat)) = t else {
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
    if p_value >= level || !big_enough(p50, s) {
        return Verdict::NoChange;
    }
    match (stat > 0.0, p50.abs > 0.0) {
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
    let paths: Vec<String> = s
        .recs
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    super::model::Side {
        path: paths.first().cloned().unwrap_or_default(),
        paths,
        host: r.host.clone(),
        source: s.recs.first().map(|r| r.meta().source).unwrap_or_default(),
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
/// for p99); with fewer than [`MIN_BLOCKS`] such blocks per side, a median or mean is tested on
/// the packets (the permutation test), and another quantile's distribution-free confidence
/// intervals must not overlap. Too few packets for either: undecided.
/// What the noise check of a crossed threshold found.
enum Noise {
    /// The crossing is real.
    Real,
    /// Within noise: why.
    Within(String),
    /// Too few packets to tell: why.
    Undecided(String),
}

fn latency_noise(t: &Threshold, sb: &[i64], sc: &[i64], s: &Settings) -> Noise {
    match latency_noise_note(t, sb, sc, s) {
        None => Noise::Real,
        Some(n) if n.starts_with("undecided") => Noise::Undecided(n),
        Some(n) => Noise::Within(n),
    }
}

fn latency_noise_note(t: &Threshold, sb: &[i64], sc: &[i64], s: &Settings) -> Option<String> {
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
    // A median or a mean from too few packets for time blocks: the packets themselves, with
    // the permutation test of the verdicts (a shift of location).
    if matches!(t.metric, Metric::Percentile(500) | Metric::Mean) {
        if smallest_p(sb.len(), sc.len()) >= s.alpha {
            return Some(format!(
                "undecided: {} and {} packets are too few for any test at this level",
                sb.len(),
                sc.len()
            ));
        }
        let m = permutation_mann_whitney(sb, sc, PERMUTATIONS);
        let shifted = m.is_some_and(|m| m.p_value < s.alpha && (m.z > 0.0) == t.above);
        return (!shifted).then(|| {
            format!(
                "within noise: the packets of the two sides do not differ (permutation \
                 Mann–Whitney p = {})",
                super::render::p_value(m.map(|m| m.p_value))
            )
        });
    }
    let Metric::Percentile(q) = t.metric else {
        return None;
    };
    let z = z_of(s.confidence);
    let q = q as f64 / 1000.0;
    // An interval that runs into the smallest or largest packet says nothing on that side:
    // the sample is too small for this quantile at this confidence.
    if let Some(n) = [sb.len(), sc.len()]
        .into_iter()
        .find(|&n| !quantile_ci_bounded(n, q, z))
    {
        return Some(format!(
            "undecided: {n} packets are too few to bound the {}th percentile at {:.0}% \
             confidence",
            q * 100.0,
            s.confidence * 100.0
        ));
    }
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

/// Checks every threshold; with `strict`, an error for one whose scope matches no row of
/// either recording (one host of several may lack a pair another has).
fn check_thresholds(
    ts: &[Threshold],
    d: &Diff,
    base: &Side,
    cand: &Side,
    strict: bool,
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
                undecided: false,
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
                        undecided: false,
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
                    undecided: false,
                });
            }
        }
        anyhow::ensure!(
            any || !strict,
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
        match latency_noise(t, sb.unwrap_or(&empty), sc.unwrap_or(&empty), &settings) {
            Noise::Real => out[i].failed = true,
            Noise::Within(n) => {
                out[i].failed = false;
                out[i].note = Some(n);
            }
            Noise::Undecided(n) => {
                out[i].failed = false;
                out[i].undecided = true;
                out[i].note = Some(n);
            }
        }
    }
    Ok(out)
}

/// Why each undecided row matters. With `--fail-on`, only rows a threshold covers count.
pub fn undecided(
    stages: &[StageDiff],
    end_to_end: &[StageDiff],
    thresholds: &[ThresholdCheck],
) -> Vec<String> {
    stages
        .iter()
        .map(|r| (r, ""))
        .chain(end_to_end.iter().map(|r| (r, "end to end ")))
        .filter(|(r, what)| {
            r.verdict == Verdict::Undecided
                && (thresholds.is_empty()
                    || thresholds
                        .iter()
                        .any(|t| t.row == format!("{what}{}", r.name())))
        })
        .map(|(r, what)| undecided_reason(r, what))
        .chain(thresholds.iter().filter(|t| t.undecided).map(|t| {
            format!(
                "--fail-on '{}' on {}: {}",
                t.expr,
                t.row,
                t.note.as_deref().unwrap_or("")
            )
        }))
        .collect()
}

/// One sentence on an undecided row.
pub fn undecided_reason(r: &StageDiff, what: &str) -> String {
    match (&r.base, &r.cand, &r.changes) {
        (Some(b), Some(c), Some(ch)) => format!(
            "{what}{}: median {} → {} ({}), but {} and {} packets are too few for any test at \
             this level",
            r.name(),
            crate::units::ns(ch.p50_ns.base),
            crate::units::ns(ch.p50_ns.cand),
            super::render::percent(ch.p50_ns.rel),
            b.count,
            c.count
        ),
        (Some(b), None, _) => format!(
            "{what}{}: {} packets in the base, none in the candidate",
            r.name(),
            b.count
        ),
        (None, Some(c), _) => format!(
            "{what}{}: {} packets in the candidate, none in the base",
            r.name(),
            c.count
        ),
        _ => format!("{what}{}", r.name()),
    }
}

/// Compares `base` with `cand`; with `strict`, a threshold that matches no row is an error.
pub fn compare(
    base: &Side,
    cand: &Side,
    thresholds: &[Threshold],
    settings: Settings,
    strict: bool,
) -> anyhow::Result<Diff> {
    let (b, c) = (&base.report, &cand.report);
    let stages = rows(pair_rows(base, cand, false), &settings);
    let end_to_end = rows(pair_rows(base, cand, true), &settings);
    let one_side = |want_base: bool| {
        stages
            .iter()
            .chain(&end_to_end)
            .filter(|r| r.base.is_some() != r.cand.is_some() && r.base.is_some() == want_base)
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
        environment: environment::differences(&base.recs[0].meta(), &cand.recs[0].meta()),
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
        undecided: Vec::new(),
    };
    d.thresholds = check_thresholds(thresholds, &d, base, cand, strict)?;
    d.regressions = if thresholds.is_empty() {
        d.stages
            .iter()
            .map(|r| (r, ""))
            .chain(d.end_to_end.iter().map(|r| (r, "end to end ")))
            .filter(|(r, _)| {
                r.verdict == Verdict::Slower
                    && r.changes.is_some_and(|c| fails(c.p50_ns, &d.settings))
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
    d.undecided = undecided(&d.stages, &d.end_to_end, &d.thresholds);
    Ok(d)
}

//! The statistics behind `diff`'s verdicts: the Mann–Whitney U test, time blocks, and
//! distribution-free confidence intervals of a quantile from order statistics.
//!
//! These are rank methods: they make no assumption about the shape of a latency distribution
//! (skewed, multi-modal, heavy-tailed). Neighbouring packets are not independent, though: in a
//! real recording a queue that is long for one packet is long for the next, so a test that
//! counts each packet as one observation finds "significant" differences between two runs of
//! the same scenario. Tests therefore compare statistics of contiguous time blocks ([`blocks`]):
//! the blocks are nearly independent, and their number, not the number of packets, sets the
//! strength of the evidence.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::function::gamma::ln_gamma;

/// The result of a two-sided Mann–Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MannWhitney {
    /// U of the candidate sample: pairs (base, cand) with cand > base, ties counting half.
    pub u: f64,
    /// Probability that a candidate delay exceeds a base delay (`U / (n1·n2)`; 0.5 = no shift).
    pub p_superiority: f64,
    /// Standardized U (normal approximation with tie and continuity corrections).
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Mann–Whitney U test of `base` against `cand`, both sorted ascending. `None` when either is
/// empty or every value is the same (no ranking to test).
///
/// Ranks are assigned by merging the two sorted samples, ties getting their average rank; the
/// variance is corrected for ties. With the sample sizes of a recording (hundreds to millions of
/// packets) the normal approximation is exact for practical purposes.
pub fn mann_whitney(base: &[i64], cand: &[i64]) -> Option<MannWhitney> {
    let (n1, n2) = (base.len() as f64, cand.len() as f64);
    if base.is_empty() || cand.is_empty() {
        return None;
    }
    let n = n1 + n2;
    let (mut i, mut j) = (0usize, 0usize);
    let mut rank_sum_cand = 0.0;
    let mut ties = 0.0; // Σ (t³ − t) over groups of equal values
    let mut next_rank = 1.0;
    while i < base.len() || j < cand.len() {
        let v = match (base.get(i), cand.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        let mut in_base = 0.0;
        while base.get(i) == Some(&v) {
            in_base += 1.0;
            i += 1;
        }
        let mut in_cand = 0.0;
        while cand.get(j) == Some(&v) {
            in_cand += 1.0;
            j += 1;
        }
        let t: f64 = in_base + in_cand;
        let avg = next_rank + (t - 1.0) / 2.0;
        rank_sum_cand += avg * in_cand;
        ties += t * t * t - t;
        next_rank += t;
    }
    let u = rank_sum_cand - n2 * (n2 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    if var <= 0.0 {
        return None;
    }
    let d = u - mean;
    let corrected = (d.abs() - 0.5).max(0.0) * d.signum();
    let z = corrected / var.sqrt();
    let normal = Normal::standard();
    let p_value = (2.0 * normal.sf(z.abs())).min(1.0);
    Some(MannWhitney {
        u,
        p_superiority: u / (n1 * n2),
        z,
        p_value,
    })
}

/// The nearest-rank quantile of a sorted sample (index ⌈n·q⌉ − 1), the method of the report
/// ([`crate::queries::QUANTILE`]).
pub fn nearest_rank(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[k - 1])
}

/// A distribution-free confidence interval of the `q` quantile of a sorted sample: the order
/// statistics whose ranks bound the binomial count of values below the quantile, at the
/// two-sided level of `z` (2.576 for 99%). `None` for an empty sample.
pub fn quantile_ci(sorted: &[i64], q: f64, z: f64) -> Option<(i64, i64)> {
    let n = sorted.len() as f64;
    if sorted.is_empty() {
        return None;
    }
    let half = z * (n * q * (1.0 - q)).sqrt();
    let lo = (n * q - half).floor().max(1.0) as usize;
    let hi = (n * q + half).ceil().min(n) as usize;
    Some((sorted[lo.max(1) - 1], sorted[hi.max(1) - 1]))
}

/// Whether [`quantile_ci`] of `q` over `n` packets is bounded by order statistics on both sides
/// (not clamped to the smallest or largest packet).
pub fn quantile_ci_bounded(n: usize, q: f64, z: f64) -> bool {
    let n = n as f64;
    let half = z * (n * q * (1.0 - q)).sqrt();
    n > 0.0 && (n * q - half).floor() >= 1.0 && (n * q + half).ceil() <= n
}

/// A statistic of each of up to `max_blocks` contiguous blocks of at least `min_block`
/// samples (given in time order), sorted ascending; empty when there are too few samples for
/// one block. The statistic gets each block's samples sorted.
pub fn blocks(
    by_time: &[i64],
    min_block: usize,
    max_blocks: usize,
    stat: impl Fn(&[i64]) -> i64,
) -> Vec<i64> {
    let n = by_time.len();
    let k = (n / min_block.max(1)).min(max_blocks);
    let mut out: Vec<i64> = (0..k)
        .map(|b| {
            let mut block = by_time[b * n / k..(b + 1) * n / k].to_vec();
            block.sort_unstable();
            stat(&block)
        })
        .collect();
    out.sort_unstable();
    out
}

/// The mean of sorted samples, rounded.
pub fn mean(sorted: &[i64]) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    (sorted.iter().map(|&v| v as i128).sum::<i128>() / sorted.len() as i128) as i64
}

/// Random relabellings of a permutation test: p-values down to 1 / 100 001.
pub const PERMUTATIONS: usize = 100_000;
/// A permutation test stops once this many relabellings were as extreme as the sample.
const STOP_AFTER_EXTREME: usize = 200;

/// Mann–Whitney U of `base` against `cand` (any order) with a two-sided p-value from a
/// permutation test: the share of random relabellings of the pooled packets (up to `permutations`,
/// seeded, so a run repeats) whose U lies at least as far from its mean as the observed one.
/// Valid at any sample size, ties included, where the normal approximation of
/// [`mann_whitney`] is not. `None` when either side is empty or every value is the same.
pub fn permutation_mann_whitney(
    base: &[i64],
    cand: &[i64],
    permutations: usize,
) -> Option<MannWhitney> {
    let normal = mann_whitney(&sorted(base), &sorted(cand))?;
    let (n1, n2) = (base.len(), cand.len());
    // Ranks of the pooled packets, ties averaged, doubled to stay integers.
    let mut pooled: Vec<i64> = base.iter().chain(cand).copied().collect();
    pooled.sort_unstable();
    let ranks2: Vec<u64> = {
        let mut r = Vec::with_capacity(pooled.len());
        let mut i = 0;
        while i < pooled.len() {
            let j = pooled[i..].partition_point(|&v| v == pooled[i]) + i;
            // Ranks i+1 ..= j share their mean (i + 1 + j) / 2; doubled: i + 1 + j.
            r.extend(std::iter::repeat_n((i + 1 + j) as u64, j - i));
            i = j;
        }
        r
    };
    let rank2_of = |v: i64| ranks2[pooled.partition_point(|&x| x < v)];
    let observed: u64 = cand.iter().map(|&v| rank2_of(v)).sum();
    // E[rank sum of cand] doubled = n2 (N + 1).
    let mean2 = (n2 * (n1 + n2 + 1)) as i64;
    let dev = (observed as i64 - mean2).abs();
    let mut rng = SmallRng::seed_from_u64(0x7c9_7a9e);
    let mut extreme = 0usize;
    let mut done = 0usize;
    // Each relabelling draws the candidate's n2 ranks by a partial Fisher–Yates shuffle (the
    // first n2 places of the pool), in place: no allocation per permutation.
    let mut pool = ranks2.clone();
    let n = pool.len();
    while done < permutations {
        let mut s = 0u64;
        for i in 0..n2 {
            let j = rng.random_range(i..n);
            pool.swap(i, j);
            s += pool[i];
        }
        done += 1;
        if (s as i64 - mean2).abs() >= dev {
            extreme += 1;
            // Sequential stopping (Besag and Clifford): once this many relabellings are as
            // extreme, p is known well enough to be far above any level a verdict uses.
            if extreme == STOP_AFTER_EXTREME {
                break;
            }
        }
    }
    let p_value = if extreme == STOP_AFTER_EXTREME {
        extreme as f64 / done as f64
    } else {
        (extreme + 1) as f64 / (done + 1) as f64
    };
    Some(MannWhitney { p_value, ..normal })
}

/// A sorted copy of samples.
pub fn sorted(v: &[i64]) -> Vec<i64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// The smallest two-sided p-value any rank test can reach with `n1` and `n2` packets: every
/// packet of one side above every packet of the other, `2 / C(n1 + n2, n1)`. When it is not
/// below the level asked, no outcome can be significant: the sample cannot decide.
pub fn smallest_p(n1: usize, n2: usize) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let ln_c =
        ln_gamma((n1 + n2 + 1) as f64) - ln_gamma((n1 + 1) as f64) - ln_gamma((n2 + 1) as f64);
    (2.0 * (-ln_c).exp()).min(1.0)
}

/// A t test on the logarithms of per-run figures (a run's median): whether the
/// candidate's runs sit above or below the base's by more than the runs of each side differ
/// among themselves. Logarithms make the test about ratios (a 20% shift is 20% whatever the
/// stage's scale). `None` with fewer than two runs on a side.
pub fn welch_log(base: &[i64], cand: &[i64]) -> Option<Welch> {
    if base.len() < 2 || cand.len() < 2 {
        return None;
    }
    let logs = |v: &[i64]| {
        v.iter()
            .map(|&x| (x.max(1) as f64).ln())
            .collect::<Vec<_>>()
    };
    let (b, c) = (logs(base), logs(cand));
    let m = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var =
        |v: &[f64], mu: f64| v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    let (mb, mc) = (m(&b), m(&c));
    let (vb, vc) = (var(&b, mb) / b.len() as f64, var(&c, mc) / c.len() as f64);
    let se2 = vb + vc;
    let ratio = (mc - mb).exp();
    if se2 == 0.0 {
        // Every run of each side alike: any difference is exact.
        let p = if mc == mb { 1.0 } else { 0.0 };
        return Some(Welch {
            t: 0.0,
            df: 0.0,
            p_value: p,
            ratio,
        });
    }
    let t = (mc - mb) / se2.sqrt();
    // With as many runs on each side, t is Student's as well, and Student's test is robust to
    // unequal spreads at equal sizes: its n1 + n2 − 2 degrees of freedom hold. Otherwise
    // Welch–Satterthwaite's (as few as n − 1, which at 3 runs would need a shift of 20 spreads).
    let df = if b.len() == c.len() {
        (b.len() + c.len() - 2) as f64
    } else {
        se2 * se2
            / (vb * vb / (b.len() - 1) as f64 + vc * vc / (c.len() - 1) as f64)
                .max(f64::MIN_POSITIVE)
    };
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(Welch {
        t,
        df,
        p_value: (2.0 * dist.sf(t.abs())).min(1.0),
        ratio,
    })
}

/// The result of [`welch_log`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Welch {
    /// t statistic (positive: the candidate's runs are slower).
    pub t: f64,
    /// Degrees of freedom: n1 + n2 − 2 with as many runs a side, else Welch–Satterthwaite's.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Geometric mean of the candidate's runs over the base's.
    pub ratio: f64,
}

/// z of a two-sided confidence level (0.99 → 2.576).
pub fn z_of(level: f64) -> f64 {
    Normal::standard().inverse_cdf(0.5 + level / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_counts_pairs_with_ties_as_half() {
        // Pairs (b, c) with c > b: 3 > 1, 3 > 2, 4 > 1, 4 > 2, 4 > 3; 3 = 3 counts ½.
        let m = mann_whitney(&[1, 2, 3], &[3, 4]).unwrap();
        assert_eq!(m.u, 5.5);
        assert!((m.p_superiority - 5.5 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn identical_samples_are_not_significant_and_shifted_ones_are() {
        let a: Vec<i64> = (0..2000).collect();
        let m = mann_whitney(&a, &a).unwrap();
        assert!(m.p_value > 0.99, "{m:?}");
        assert_eq!(m.p_superiority, 0.5);
        let b: Vec<i64> = (100..2100).collect();
        let m = mann_whitney(&a, &b).unwrap();
        assert!(m.p_value < 1e-6 && m.z > 0.0, "{m:?}");
        let m = mann_whitney(&b, &a).unwrap();
        assert!(m.z < 0.0);
    }

    #[test]
    fn matches_the_textbook_z_without_ties() {
        // n1 = n2 = 10, cand entirely above base: U = 100, mean 50, σ² = 100·21/12 = 175.
        let a: Vec<i64> = (0..10).collect();
        let b: Vec<i64> = (10..20).collect();
        let m = mann_whitney(&a, &b).unwrap();
        assert_eq!(m.u, 100.0);
        assert!((m.z - 49.5 / 175f64.sqrt()).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn constant_or_empty_samples_have_no_test() {
        assert!(mann_whitney(&[5, 5], &[5, 5, 5]).is_none());
        assert!(mann_whitney(&[], &[1]).is_none());
    }

    #[test]
    fn blocks_are_contiguous_in_time_and_bounded_in_number() {
        let v: Vec<i64> = (0..100).rev().collect();
        let med = |b: &[i64]| nearest_rank(b, 0.5).unwrap();
        // 4 blocks of 25: 99..75, 74..50, 49..25, 24..0; medians sorted.
        assert_eq!(blocks(&v, 25, 30, med), [12, 37, 62, 87]);
        assert_eq!(blocks(&v, 10, 3, med).len(), 3);
        assert!(blocks(&v, 101, 30, med).is_empty());
        assert_eq!(blocks(&v, 50, 30, mean), [24, 74]);
    }

    #[test]
    fn the_permutation_test_is_exact_enough_at_small_sizes() {
        // 3 against 3, fully separated: 2 of the 20 splits are as extreme, p = 0.1.
        let m = permutation_mann_whitney(&[1, 2, 3], &[4, 5, 6], PERMUTATIONS).unwrap();
        assert!((m.p_value - 0.1).abs() < 0.01, "{m:?}");
        assert!((smallest_p(3, 3) - 0.1).abs() < 1e-12);
        // 10 against 10, fully separated: 2 / C(20, 10) = 1.08e-5, about what 100 000
        // relabellings resolve.
        let a: Vec<i64> = (0..10).collect();
        let b: Vec<i64> = (10..20).collect();
        let m = permutation_mann_whitney(&a, &b, PERMUTATIONS).unwrap();
        assert!(m.p_value < 1e-4 && m.z > 0.0, "{m:?}");
        assert!((smallest_p(10, 10) - 2.0 / 184_756.0).abs() < 1e-15);
        // Interleaved samples are not significant; ties are allowed.
        let m = permutation_mann_whitney(&[1, 3, 5, 7, 7], &[2, 4, 6, 7, 8], PERMUTATIONS).unwrap();
        assert!(m.p_value > 0.5, "{m:?}");
    }

    #[test]
    fn welch_tells_a_shift_of_runs_from_their_spread() {
        // Runs within ±2% of 1 ms, then +30%: a clear shift. Runs spread ±40%: no shift.
        let base = [1_000_000, 1_020_000, 980_000, 1_010_000];
        let cand = [1_300_000, 1_320_000, 1_280_000, 1_310_000];
        let w = welch_log(&base, &cand).unwrap();
        assert!(
            w.p_value < 1e-4 && w.t > 0.0 && (w.ratio - 1.3).abs() < 0.01,
            "{w:?}"
        );
        let noisy = [600_000, 1_400_000, 900_000, 1_500_000];
        let w = welch_log(&base, &noisy).unwrap();
        assert!(w.p_value > 0.05, "{w:?}");
        assert!(welch_log(&base[..1], &cand).is_none());
    }

    #[test]
    fn nearest_rank_matches_the_report_method() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&v, 0.999), Some(100));
        assert_eq!(nearest_rank(&v, 0.0), Some(1));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn quantile_intervals_hold_the_quantile_and_narrow_with_n() {
        let z = z_of(0.99);
        assert!((z - 2.5758).abs() < 1e-3);
        let small: Vec<i64> = (1..=100).collect();
        let big: Vec<i64> = (1..=10_000).map(|v| v / 100).collect();
        let (lo, hi) = quantile_ci(&small, 0.5, z).unwrap();
        assert!(lo < 50 && hi > 50 && hi - lo < 30, "{lo} {hi}");
        let (lo, hi) = quantile_ci(&big, 0.5, z).unwrap();
        assert!(lo <= 50 && hi >= 50 && hi - lo <= 3, "{lo} {hi}");
        let (lo, hi) = quantile_ci(&small, 0.999, z).unwrap();
        assert_eq!(hi, 100);
        assert!(lo >= 90);
        // A median from 10 packets runs into the extremes at 99%; from 20 it does not. A p99
        // needs a thousand.
        assert!(!quantile_ci_bounded(10, 0.5, z) && quantile_ci_bounded(20, 0.5, z));
        assert!(!quantile_ci_bounded(500, 0.99, z) && quantile_ci_bounded(1000, 0.99, z));
    }
}

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

use statrs::distribution::{ContinuousCDF, Normal};

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
    }
}

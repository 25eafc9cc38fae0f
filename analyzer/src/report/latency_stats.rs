//! The latency figures of stage pairs, grouped several ways, from one sort.
//!
//! Every grouping of the report (per stage pair, per flow, per CPU, per second) is a subset of
//! one stage pair. So the pair rows are sorted once by (pair, duration), with a radix sort of a
//! packed integer key; each grouping then walks that order once, and every group sees its own
//! durations in ascending order: its nearest-rank percentiles are the values at known positions,
//! and its maximum is the last one. No group is sorted on its own: the key and the row number are
//! sorted, and the CPU, flow and time of each row are then put in that order once, so every
//! grouping reads memory in sequence.

use crate::journeys::hop_table::Flows;
use crate::journeys::journey::PairRows;
use crate::journeys::radix::radix_sort;
use crate::queries::select::Flow;

/// The figures of one group: count, mean, max and the requested percentiles (ns).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Durations in the group.
    pub count: u64,
    /// Their mean (exact sum over count).
    pub mean_ns: f64,
    /// The largest.
    pub max_ns: i64,
    /// The percentiles, in the order requested.
    pub quantiles_ns: Vec<i64>,
}

/// The pair rows of a report, sorted by (pair, duration).
pub struct PairSamples {
    /// (from, to) stage codes of each pair index.
    pairs: Vec<(u8, u8)>,
    /// Each flow id as a flow (`None` where a part is unknown).
    flows: Vec<Option<Flow>>,
    /// Sorted keys: the pair index above the duration minus `dt_min`.
    sorted: Vec<u64>,
    dt_bits: u32,
    dt_min: i64,
    /// CPU, flow and time of each row, in sorted order.
    cpu: Vec<u16>,
    flow: Vec<u32>,
    ts: Vec<u64>,
}

/// Where in a sorted group of `n` the percentile `q` is: the nearest rank, as the queries'
/// [`crate::queries::QUANTILE`] (a test there holds the two equal), the same formula as SQL's
/// `quantile_disc`.
pub(crate) fn rank_index(n: usize, q: f64) -> usize {
    ((n as f64 * q).ceil() - 1.0).max(0.0) as usize
}

/// A log time axis from 1 ns, cut into `per_decade` bins per power of ten: bin `k` holds
/// `[10^(k/per_decade), 10^((k+1)/per_decade))` ns (edges rounded up to whole ns; bins whose
/// edges round alike hold nothing), and bin -1 everything under 1 ns (0 and the negative
/// durations two CPUs' clocks can give).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBins {
    /// Bins per decade.
    pub per_decade: i32,
}

impl LogBins {
    /// The HTML report's histograms: four bins per decade.
    pub const PICTURES: LogBins = LogBins { per_decade: 4 };
    /// Pooling several hosts' figures: 100 bins per decade, each at most 2.33 % wide.
    pub const POOLING: LogBins = LogBins { per_decade: 100 };

    /// The bin of a duration.
    pub fn bin(self, ns: i64) -> i32 {
        if ns < 1 {
            return -1;
        }
        let mut k = ((ns as f64).log10() * self.per_decade as f64).floor() as i32;
        // Exact at the edges, where the floating-point logarithm may land a hair off.
        while k > 0 && self.lo(k) > ns as u64 {
            k -= 1;
        }
        while self.lo(k + 1) <= ns as u64 {
            k += 1;
        }
        k
    }

    /// The lower edge of bin `k`, ns (0 for bin -1).
    pub fn lo(self, k: i32) -> u64 {
        if k < 0 {
            0
        } else {
            10f64.powf(k as f64 / self.per_decade as f64).ceil() as u64
        }
    }
}

/// Bins per decade of the HTML report's histograms.
pub const BINS_PER_DECADE: i32 = LogBins::PICTURES.per_decade;

/// The bin of a duration on the HTML report's axis ([`LogBins::PICTURES`]).
pub fn log_bin(ns: i64) -> i32 {
    LogBins::PICTURES.bin(ns)
}

/// The lower edge of bin `k` of [`log_bin`], ns (0 for bin -1).
pub fn bin_lo(k: i32) -> u64 {
    LogBins::PICTURES.lo(k)
}

/// The values of a per-row column in sorted order.
fn in_order<T: Copy>(sorted: &[(u64, u32)], v: &[T]) -> Vec<T> {
    sorted.iter().map(|&(_, r)| v[r as usize]).collect()
}

impl Stats {
    /// The figures of durations sorted in ascending order (at least one), with the
    /// percentiles `qs`.
    pub fn of_sorted(v: &[i64], qs: &[f64]) -> Stats {
        let n = v.len().max(1);
        Stats {
            count: v.len() as u64,
            mean_ns: v.iter().map(|&d| d as i128).sum::<i128>() as f64 / n as f64,
            max_ns: v.last().copied().unwrap_or(0),
            quantiles_ns: qs
                .iter()
                .map(|&q| v.get(rank_index(n, q)).copied().unwrap_or(0))
                .collect(),
        }
    }
}

/// Sorts rows by (pair, duration): returns (key, row), the key being the pair index above the
/// duration minus `dt_min` (over `dt_bits` bits). Rows are put in pair order in one counting
/// pass, and each pair's durations are then sorted on the span of that pair alone (fewer radix
/// passes than the span of all), the pairs split between two threads.
fn sort_by_pair(
    dt: &[i64],
    pair: &[u8],
    pairs: usize,
    dt_min: i64,
    dt_bits: u32,
) -> Vec<(u64, u32)> {
    let mut start = vec![0usize; pairs + 1];
    let (mut lo, mut hi) = (vec![i64::MAX; pairs], vec![i64::MIN; pairs]);
    for (&d, &p) in dt.iter().zip(pair) {
        let p = p as usize;
        start[p + 1] += 1;
        lo[p] = lo[p].min(d);
        hi[p] = hi[p].max(d);
    }
    for p in 0..pairs {
        start[p + 1] += start[p];
    }
    let mut out = vec![(0u64, 0u32); dt.len()];
    let mut at = start.clone();
    for (i, (&d, &p)) in dt.iter().zip(pair).enumerate() {
        let p = p as usize;
        out[at[p]] = (d.abs_diff(lo[p]), i as u32);
        at[p] += 1;
    }
    // The pair boundary nearest the middle.
    let half = start.partition_point(|&s| s < dt.len() / 2).min(pairs);
    let (first, second) = out.split_at_mut(start[half]);
    let sort_pairs = |part: &mut [(u64, u32)], range: std::ops::Range<usize>| {
        let base = start[range.start];
        for p in range {
            let rows = &mut part[start[p] - base..start[p + 1] - base];
            let bits = 64 - hi[p].abs_diff(lo[p]).leading_zeros();
            radix_sort(rows, bits);
            let offset = lo[p].abs_diff(dt_min);
            for (k, _) in rows.iter_mut() {
                *k = ((p as u64) << dt_bits) | (*k + offset);
            }
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| sort_pairs(first, 0..half));
        sort_pairs(second, half..pairs);
    });
    out
}

impl PairSamples {
    /// Sorts the pair rows of journeys; `flows` names their flow ids.
    pub fn new(rows: PairRows, flows: &Flows) -> anyhow::Result<PairSamples> {
        let flows = flows.all().to_vec();
        let PairRows {
            from,
            to,
            dt,
            ts,
            cpu,
            flow,
        } = rows;
        let mut pair_of = [[u8::MAX; 256]; 256];
        let mut pairs: Vec<(u8, u8)> = Vec::new();
        let pair: Vec<u8> = from
            .iter()
            .zip(&to)
            .map(|(&f, &t)| {
                let p = &mut pair_of[f as usize][t as usize];
                if *p == u8::MAX {
                    *p = pairs.len() as u8;
                    pairs.push((f, t));
                }
                *p
            })
            .collect();
        drop((from, to));
        let dt_min = dt.iter().copied().min().unwrap_or(0);
        let dt_max = dt.iter().copied().max().unwrap_or(0);
        let span = dt_max.abs_diff(dt_min);
        let dt_bits = 64 - span.leading_zeros();
        let pair_bits = 64 - (pairs.len() as u64).leading_zeros();
        anyhow::ensure!(
            dt_bits + pair_bits <= 64,
            "durations span more than 2^{} ns",
            64 - pair_bits
        );
        anyhow::ensure!(dt.len() < u32::MAX as usize, "too many stage pairs");
        let sorted = sort_by_pair(&dt, &pair, pairs.len(), dt_min, dt_bits);
        drop((dt, pair));
        let (cpu, flow, ts) = std::thread::scope(|scope| {
            let ts = scope.spawn(|| in_order(&sorted, &ts));
            let (cpu, flow) = (in_order(&sorted, &cpu), in_order(&sorted, &flow));
            (cpu, flow, ts.join().expect("a gather does not panic"))
        });
        Ok(PairSamples {
            pairs,
            flows,
            sorted: sorted.into_iter().map(|(k, _)| k).collect(),
            dt_bits,
            dt_min,
            cpu,
            flow,
            ts,
        })
    }

    /// A flow id as a flow, when all four parts are known.
    pub fn flow(&self, id: u32) -> Option<&Flow> {
        self.flows[id as usize].as_ref()
    }

    /// The (from, to) codes of a pair index.
    pub fn pair(&self, id: usize) -> (u8, u8) {
        self.pairs[id]
    }

    /// Packets per bin of `axis`, per pair: `(pair index, [(bin, count)])`, bins ascending;
    /// pairs and bins without packets are left out.
    pub fn histograms(&self, axis: LogBins) -> Vec<(usize, Vec<(i32, u64)>)> {
        let mut out: Vec<(usize, Vec<(i32, u64)>)> = Vec::new();
        let mask = if self.dt_bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.dt_bits) - 1
        };
        // Rows are sorted by (pair, duration): each pair's bins come in order, in one pass.
        for &key in &self.sorted {
            let pair = if self.dt_bits == 64 {
                0
            } else {
                (key >> self.dt_bits) as usize
            };
            let bin = axis.bin((key & mask) as i64 + self.dt_min);
            if out.last().is_none_or(|(p, _)| *p != pair) {
                out.push((pair, Vec::new()));
            }
            let bins = &mut out.last_mut().expect("pushed above").1;
            match bins.last_mut() {
                Some((b, n)) if *b == bin => *n += 1,
                _ => bins.push((bin, 1)),
            }
        }
        out
    }

    /// The CPU of every row, in sorted order (as `grouped` numbers rows).
    pub fn cpus(&self) -> &[u16] {
        &self.cpu
    }

    /// The flow index of every row, in sorted order.
    pub fn flows(&self) -> &[u32] {
        &self.flow
    }

    /// The time (`ts_ns`) of every row, in sorted order.
    pub fn times(&self) -> &[u64] {
        &self.ts
    }

    /// Figures per (group, pair), for groups numbered `0..groups` by `group_of(row)` (rows in
    /// sorted order): returns
    /// `(group, pair index, stats)` for each non-empty one, with the percentiles `qs`
    /// (ascending).
    pub fn grouped(
        &self,
        groups: usize,
        group_of: impl Fn(usize) -> usize,
        qs: &[f64],
    ) -> Vec<(usize, usize, Stats)> {
        let np = self.pairs.len().max(1);
        let slots = groups * np;
        let mask = if self.dt_bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.dt_bits) - 1
        };
        let pair_of = |key: u64| {
            if self.dt_bits == 64 {
                0
            } else {
                (key >> self.dt_bits) as usize
            }
        };
        let mut count = vec![0u64; slots];
        for (i, &key) in self.sorted.iter().enumerate() {
            count[group_of(i) * np + pair_of(key)] += 1;
        }
        let nq = qs.len();
        let mut seen = vec![0u64; slots];
        let mut next = vec![0u8; slots];
        let mut sum = vec![0i128; slots];
        let mut max = vec![0i64; slots];
        let mut vals = vec![0i64; slots * nq];
        let targets: Vec<usize> = (0..slots)
            .flat_map(|s| qs.iter().map(move |&q| (s, q)))
            .map(|(s, q)| rank_index(count[s] as usize, q))
            .collect();
        for (i, &key) in self.sorted.iter().enumerate() {
            let s = group_of(i) * np + pair_of(key);
            let d = (key & mask) as i64 + self.dt_min;
            let k = seen[s] as usize;
            seen[s] += 1;
            sum[s] += d as i128;
            max[s] = d;
            while (next[s] as usize) < nq && targets[s * nq + next[s] as usize] == k {
                vals[s * nq + next[s] as usize] = d;
                next[s] += 1;
            }
        }
        (0..slots)
            .filter(|&s| count[s] > 0)
            .map(|s| {
                (
                    s / np,
                    s % np,
                    Stats {
                        count: count[s],
                        mean_ns: sum[s] as f64 / count[s] as f64,
                        max_ns: max[s],
                        quantiles_ns: vals[s * nq..(s + 1) * nq].to_vec(),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(dt: &[i64], cpu: &[u16]) -> PairRows {
        let n = dt.len();
        PairRows {
            from: vec![8; n],
            to: vec![9; n],
            dt: dt.to_vec(),
            ts: vec![0; n],
            cpu: cpu.to_vec(),
            flow: vec![0; n],
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_per_group() {
        // Pair (8, 9): 1..=10 on CPU 0 and 100, 200 on CPU 1.
        let mut dt: Vec<i64> = (1..=10).rev().collect();
        dt.extend([200, 100]);
        let mut cpu = vec![0u16; 10];
        cpu.extend([1, 1]);
        let s = PairSamples::new(rows(&dt, &cpu), &Flows::default()).unwrap();
        let all = s.grouped(1, |_| 0, &[0.5, 0.9, 0.99]);
        assert_eq!(all.len(), 1);
        assert_eq!(s.pair(all[0].1), (8, 9));
        let st = &all[0].2;
        assert_eq!((st.count, st.max_ns), (12, 200));
        assert_eq!(st.quantiles_ns, vec![6, 100, 200]);
        assert_eq!(st.mean_ns, 355.0 / 12.0);
        let mut sorted = dt.clone();
        sorted.sort_unstable();
        assert_eq!(&Stats::of_sorted(&sorted, &[0.5, 0.9, 0.99]), st);
        let per_cpu = s.grouped(2, |r| s.cpus()[r] as usize, &[0.5, 0.9]);
        let stats: Vec<_> = per_cpu
            .iter()
            .map(|(g, _, st)| (*g, st.count, st.quantiles_ns.clone(), st.max_ns))
            .collect();
        assert_eq!(
            stats,
            vec![(0, 10, vec![5, 9], 10), (1, 2, vec![100, 200], 200)]
        );
    }

    #[test]
    fn log_bins_cover_every_duration_once_and_in_order() {
        assert_eq!(log_bin(-5), -1);
        assert_eq!(log_bin(0), -1);
        assert_eq!(log_bin(1), 0);
        for ns in [
            1i64,
            2,
            9,
            10,
            17,
            18,
            99,
            100,
            101,
            999,
            1000,
            31_622,
            31_623,
            1 << 40,
        ] {
            let k = log_bin(ns);
            assert!(
                bin_lo(k) <= ns as u64 && (ns as u64) < bin_lo(k + 1),
                "{ns} in bin {k}"
            );
        }
        assert_eq!(log_bin(10), 4);
        assert_eq!(log_bin(1000), 12);
    }

    #[test]
    fn histograms_count_each_pair_once_per_row() {
        // Pair (8, 9) only: 1..=10 and 100, 200.
        let mut dt: Vec<i64> = (1..=10).collect();
        dt.extend([200, 100]);
        let cpu = vec![0u16; dt.len()];
        let s = PairSamples::new(rows(&dt, &cpu), &Flows::default()).unwrap();
        let h = s.histograms(LogBins::PICTURES);
        assert_eq!(h.len(), 1);
        let total: u64 = h[0].1.iter().map(|b| b.1).sum();
        assert_eq!(total, 12);
        // 1 (bin 0), 2..=3 (bin 1), 4..=5 (bin 2), 6..=9 (bin 3), 10 (bin 4), 100, 200.
        assert_eq!(
            h[0].1,
            vec![(0, 1), (1, 2), (2, 2), (3, 4), (4, 1), (8, 1), (9, 1)]
        );
    }

    #[test]
    fn pooling_bins_are_narrow_and_exact_at_their_edges() {
        let axis = LogBins::POOLING;
        for ns in [
            1i64,
            7,
            99,
            100,
            1_000,
            4_999_999,
            5_000_000,
            123_456_789,
            1 << 40,
        ] {
            let k = axis.bin(ns);
            let (lo, hi) = (axis.lo(k), axis.lo(k + 1));
            assert!(lo <= ns as u64 && (ns as u64) < hi, "{ns} in [{lo}, {hi})");
            // What pooling reports for a value in this bin, `hi - 1`, is under 10^(1/100) times
            // the value.
            assert!(
                ((hi - 1) as f64) < ns as f64 * 10f64.powf(0.01),
                "{ns}: [{lo}, {hi})"
            );
        }
    }
}

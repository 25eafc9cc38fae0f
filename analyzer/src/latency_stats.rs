//! The latency figures of stage pairs, grouped several ways, from one sort.
//!
//! Every grouping of the report (per stage pair, per flow, per CPU, per second) is a subset of
//! one stage pair. So the pair rows are sorted once by (pair, duration), with a radix sort of a
//! packed integer key; each grouping then walks that order once, and every group sees its own
//! durations in ascending order: its nearest-rank percentiles are the values at known positions,
//! and its maximum is the last one. No group is sorted on its own, and nothing but the key and
//! the row number is moved.

use crate::queries::QUANTILE;
use crate::radix::radix_sort;
use polars::prelude::*;

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

/// A flow's columns as they are in the pair frames (addresses as text).
pub type FlowLabel = (Option<String>, Option<u64>, Option<String>, Option<u64>);

/// The pair rows of a report, sorted by (pair, duration).
pub struct PairSamples {
    /// (from, to) stage codes of each pair index.
    pairs: Vec<(u8, u8)>,
    /// Flow columns of each flow index.
    flows: Vec<FlowLabel>,
    /// Sorted (key, row): key = pair index above the duration minus `dt_min`.
    sorted: Vec<(u64, u32)>,
    dt_bits: u32,
    dt_min: i64,
    cpu: Vec<u16>,
    flow: Vec<u32>,
    ts: Vec<u64>,
}

/// Where in a sorted group of `n` the percentile `q` is: polars' nearest rank
/// ([`QUANTILE`]), the same formula as SQL's `quantile_disc`.
fn rank_index(n: usize, q: f64) -> usize {
    debug_assert!(matches!(QUANTILE, QuantileMethod::Equiprobable));
    ((n as f64 * q).ceil() - 1.0).max(0.0) as usize
}

/// The physical integer values of a column (category ids for categorical text), nulls kept.
fn physical(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<u64>>> {
    let c = df
        .column(name)?
        .to_physical_repr()
        .cast(&DataType::UInt64)?;
    Ok(c.u64()?.iter().collect())
}

impl PairSamples {
    /// Reads the rows with a previous stage of frames shaped like
    /// [`crate::queries::journey::hop_pairs`] and sorts them.
    pub fn new(frames: &[DataFrame]) -> anyhow::Result<PairSamples> {
        let mut pair_of = [[u8::MAX; 256]; 256];
        let mut pairs: Vec<(u8, u8)> = Vec::new();
        let mut flow_of: std::collections::HashMap<[Option<u64>; 4], u32> = Default::default();
        let mut flow_rows: Vec<(usize, usize)> = Vec::new();
        let (mut pair, mut dt, mut cpu, mut flow, mut ts) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (f, df) in frames.iter().enumerate() {
            let from = df.column("from")?.u8()?;
            let to = df.column("to")?.u8()?;
            let d = df.column("dt_ns")?.i64()?;
            let c = df.column("cpu")?.cast(&DataType::UInt16)?;
            let c = c.u16()?;
            let t = df.column("ts_ns")?.u64()?;
            let keys = [
                physical(df, "saddr")?,
                physical(df, "sport")?,
                physical(df, "daddr")?,
                physical(df, "dport")?,
            ];
            let mut last: Option<([Option<u64>; 4], u32)> = None;
            for (i, (((fr, to), d), (c, t))) in from
                .iter()
                .zip(to.iter())
                .zip(d.iter())
                .zip(c.iter().zip(t.iter()))
                .enumerate()
            {
                let (Some(fr), Some(to), Some(d)) = (fr, to, d) else {
                    continue;
                };
                let p = &mut pair_of[fr as usize][to as usize];
                if *p == u8::MAX {
                    *p = pairs.len() as u8;
                    pairs.push((fr, to));
                }
                let k = [keys[0][i], keys[1][i], keys[2][i], keys[3][i]];
                // Consecutive hops are mostly of one journey, hence one flow.
                let id = match last {
                    Some((lk, id)) if lk == k => id,
                    _ => {
                        let n = flow_of.len() as u32;
                        let id = *flow_of.entry(k).or_insert_with(|| {
                            flow_rows.push((f, i));
                            n
                        });
                        last = Some((k, id));
                        id
                    }
                };
                pair.push(*p);
                dt.push(d);
                cpu.push(c.unwrap_or(0));
                flow.push(id);
                ts.push(t.unwrap_or(0));
            }
        }
        let flows = flow_rows
            .iter()
            .map(|&(f, i)| {
                // The one row only: casting a whole column of categories to text would build
                // millions of strings.
                let row = frames[f].slice(i as i64, 1);
                let s = |c: &str| -> PolarsResult<Option<String>> {
                    Ok(row
                        .column(c)?
                        .cast(&DataType::String)?
                        .str()?
                        .get(0)
                        .map(Into::into))
                };
                let u = |c: &str| -> PolarsResult<Option<u64>> {
                    Ok(row.column(c)?.cast(&DataType::UInt64)?.u64()?.get(0))
                };
                Ok((s("saddr")?, u("sport")?, s("daddr")?, u("dport")?))
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        let dt_min = dt.iter().copied().min().unwrap_or(0);
        let dt_max = dt.iter().copied().max().unwrap_or(0);
        let span = dt_max.abs_diff(dt_min);
        let dt_bits = 64 - span.leading_zeros();
        let pair_bits = 64 - (pairs.len() as u64).leading_zeros();
        let mut sorted: Vec<(u64, u32)> = Vec::with_capacity(dt.len());
        if dt_bits + pair_bits <= 64 && dt.len() < u32::MAX as usize {
            sorted.extend(dt.iter().zip(&pair).enumerate().map(|(i, (&d, &p))| {
                let key = ((p as u64) << dt_bits) | d.abs_diff(dt_min);
                (key, i as u32)
            }));
            drop((dt, pair));
            radix_sort(&mut sorted, dt_bits + pair_bits);
        } else {
            anyhow::bail!("durations span more than 2^{} ns", 64 - pair_bits);
        }
        Ok(PairSamples {
            pairs,
            flows,
            sorted,
            dt_bits,
            dt_min,
            cpu,
            flow,
            ts,
        })
    }

    /// The flow columns of a flow index.
    pub fn flow(&self, id: u32) -> &FlowLabel {
        &self.flows[id as usize]
    }

    /// The (from, to) codes of a pair index.
    pub fn pair(&self, id: usize) -> (u8, u8) {
        self.pairs[id]
    }

    /// The CPU of every row.
    pub fn cpus(&self) -> &[u16] {
        &self.cpu
    }

    /// The flow index of every row.
    pub fn flows(&self) -> &[u32] {
        &self.flow
    }

    /// The time (`ts_ns`) of every row.
    pub fn times(&self) -> &[u64] {
        &self.ts
    }

    /// Figures per (group, pair), for groups numbered `0..groups` by `group_of(row)`: returns
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
        let rows = self.sorted.len();
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
        // The slot of every row, by row number.
        let mut slot = vec![0u32; rows];
        let mut count = vec![0u64; slots];
        for &(key, row) in &self.sorted {
            let s = group_of(row as usize) * np + pair_of(key);
            slot[row as usize] = s as u32;
            count[s] += 1;
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
        for &(key, row) in &self.sorted {
            let s = slot[row as usize] as usize;
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

    fn frame(from: &[Option<u8>], dt: &[Option<i64>], cpu: &[u16]) -> DataFrame {
        let n = from.len();
        DataFrame::new_infer_height(vec![
            Column::new("from".into(), from.to_vec()),
            Column::new("to".into(), vec![Some(9u8); n]),
            Column::new("dt_ns".into(), dt.to_vec()),
            Column::new("ts_ns".into(), vec![0u64; n]),
            Column::new("cpu".into(), cpu.to_vec()),
            Column::new("saddr".into(), vec!["10.0.0.1"; n]),
            Column::new("sport".into(), vec![1u16; n]),
            Column::new("daddr".into(), vec!["10.0.0.2"; n]),
            Column::new("dport".into(), vec![2u16; n]),
        ])
        .unwrap()
    }

    #[test]
    fn percentiles_are_nearest_rank_per_group() {
        // Pair (8, 9): 1..=10 on CPU 0 and 100, 200 on CPU 1; a first hop (no `from`) is left
        // out.
        let mut from = vec![Some(8u8); 12];
        from.push(None);
        let mut dt: Vec<Option<i64>> = (1..=10).rev().map(Some).collect();
        dt.extend([Some(200), Some(100), None]);
        let mut cpu = vec![0u16; 10];
        cpu.extend([1, 1, 0]);
        let s = PairSamples::new(&[frame(&from, &dt, &cpu)]).unwrap();
        let all = s.grouped(1, |_| 0, &[0.5, 0.9, 0.99]);
        assert_eq!(all.len(), 1);
        assert_eq!(s.pair(all[0].1), (8, 9));
        let st = &all[0].2;
        assert_eq!((st.count, st.max_ns), (12, 200));
        assert_eq!(st.quantiles_ns, vec![6, 100, 200]);
        assert_eq!(st.mean_ns, 355.0 / 12.0);
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
}

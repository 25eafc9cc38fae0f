//! Splitting hop events into journeys: the rules of [`crate::queries::journey`]'s module doc, in
//! one pass over the rows in (packet id, time) order.
//!
//! The order is found by a radix sort of the packet id alone with the row number, which is
//! stable, so rows of one id stay in their recorded order; the few ids whose rows were recorded
//! out of time order are then sorted by time. Only then are the wide rows gathered, once, into
//! the segmented frame.

use crate::queries::{RANK, STAGE};
use crate::radix::radix_sort;
use polars::prelude::*;
use tcptape_common::Stage;

/// The segmented hop frame of collected hop events (the columns of
/// [`crate::queries::scan::HOP_COLUMNS`] with `stage` and `rank`): the events in (`skb`,
/// `ts_ns`) order without repeated stages, each hop with the flow of its journey's first hop
/// (null when that one names none), and `new` (first hop of a journey), `last` (last hop), `jid`
/// (journey number from 1), `from` (previous stage in the journey, null on a first hop) and
/// `dt_ns` (time since that stage).
pub fn segment(mut hops: DataFrame, max_gap_ns: u64) -> anyhow::Result<DataFrame> {
    // One contiguous array per column: the gathers below then index it directly.
    hops.rechunk_mut_par();
    let skb = hops.column("skb")?.cast(&DataType::UInt64)?;
    let skb = skb.u64()?;
    let ts = hops.column("ts_ns")?.cast(&DataType::UInt64)?;
    let ts: Vec<u64> = ts.u64()?.iter().map(|t| t.unwrap_or(0)).collect();
    let stage: Vec<u8> = crate::frame::u64s(&hops, STAGE)?
        .into_iter()
        .map(|s| s.unwrap_or(0) as u8)
        .collect();
    let rank: Vec<u8> = crate::frame::u64s(&hops, RANK)?
        .into_iter()
        .map(|r| r.unwrap_or(u8::MAX as u64) as u8)
        .collect();
    anyhow::ensure!(hops.height() < u32::MAX as usize, "too many hop events");
    let mut order: Vec<(u64, u32)> = skb
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((s?, i as u32)))
        .collect();
    radix_sort(&mut order, 64);
    // Rows of one id out of time order: sort that id's rows by time.
    let mut a = 0;
    while a < order.len() {
        let mut b = a + 1;
        let mut sorted = true;
        while b < order.len() && order[b].0 == order[a].0 {
            sorted &= ts[order[b - 1].1 as usize] <= ts[order[b].1 as usize];
            b += 1;
        }
        if !sorted {
            order[a..b].sort_by_key(|&(_, r)| ts[r as usize]);
        }
        a = b;
    }

    let named_flow: Vec<bool> = hops
        .column("sport")?
        .is_not_null()
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect();
    let tx_done = Stage::TxDone.code();
    let n = order.len();
    let mut keep: Vec<IdxSize> = Vec::with_capacity(n);
    let mut flow_row: Vec<Option<IdxSize>> = Vec::with_capacity(n);
    let mut new = Vec::with_capacity(n);
    let mut jid: Vec<u32> = Vec::with_capacity(n);
    let mut from: Vec<Option<u8>> = Vec::with_capacity(n);
    let mut dt: Vec<Option<i64>> = Vec::with_capacity(n);
    let (mut j, mut first) = (0u32, None);
    for k in 0..n {
        let (id, r) = (order[k].0, order[k].1 as usize);
        // The previous row, repeats included (as the rules compare with it).
        let starts = match k.checked_sub(1).map(|p| (order[p].0, order[p].1 as usize)) {
            None => true,
            Some((pid, p)) => {
                pid != id
                    || ts[r] as i64 - ts[p] as i64 > max_gap_ns as i64
                    || stage[p] == tx_done
                    || rank[r] < rank[p]
            }
        };
        if !starts {
            let p = order[k - 1].1 as usize;
            if stage[r] == stage[p] {
                continue; // A repeat keeps the first time.
            }
        }
        if starts {
            j += 1;
            first = named_flow[r].then_some(r as IdxSize);
            from.push(None);
            dt.push(None);
        } else {
            // The previous kept row is the previous hop of this journey.
            let p = *keep.last().expect("a journey's earlier hop") as usize;
            from.push(Some(stage[p]));
            dt.push(Some(ts[r] as i64 - ts[p] as i64));
        }
        keep.push(r as IdxSize);
        flow_row.push(first);
        new.push(starts);
        jid.push(j);
    }
    drop(order);
    let last: Vec<bool> = (0..jid.len())
        .map(|k| jid.get(k + 1) != Some(&jid[k]))
        .collect();

    let flow = ["saddr", "sport", "daddr", "dport"];
    let others: Vec<&str> = hops
        .get_column_names()
        .into_iter()
        .map(|c| c.as_str())
        .filter(|c| !flow.contains(c))
        .collect();
    let keep = IdxCa::from_vec("keep".into(), keep);
    let mut seg = hops.select(others)?.take(&keep)?;
    let flow_row = IdxCa::from_iter_options("flow".into(), flow_row.into_iter());
    for c in hops
        .select(flow)?
        .take(&flow_row)?
        .columns()
        .iter()
        .cloned()
    {
        seg.with_column(c)?;
    }
    drop(hops);
    seg.with_column(Column::new("new".into(), new))?;
    seg.with_column(Column::new("jid".into(), jid))?;
    seg.with_column(Column::new("from".into(), from))?;
    seg.with_column(Column::new("dt_ns".into(), dt))?;
    seg.with_column(Column::new("last".into(), last))?;
    Ok(seg)
}

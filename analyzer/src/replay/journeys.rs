//! `replay --journeys`: each packet's path with the time between hops, from the report's own
//! journeys ([`crate::journeys::per_packet`]), so the times printed are the report's stage deltas.

use super::pace::Pace;
use super::text::{exact, flow_of, seconds};
use crate::journeys::per_packet::Packet;
use serde::Serialize;
use std::io::Write;

/// One hop in the JSON lines output.
#[derive(Serialize)]
struct HopJson {
    stage: &'static str,
    ts_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<u64>,
    /// Time since the previous hop, ns (absent on the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    dt_ns: Option<i64>,
}

/// One journey in the JSON lines output.
#[derive(Serialize)]
struct JourneyJson {
    journey: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    complete: bool,
    hops: Vec<HopJson>,
}

/// Writes journeys as text blocks or JSON lines, paced by their first hop.
pub fn write(
    packets: &[Packet],
    start_ns: u64,
    jsonl: bool,
    pace: &mut Pace,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for (n, p) in packets.iter().enumerate() {
        pace.wait(p.hops[0].ts_ns);
        if jsonl {
            let j = JourneyJson {
                journey: n as u64 + 1,
                flow: p.flow.as_ref().map(|f| f.to_string()),
                skb: p.skb,
                seq: p.seq,
                complete: p.complete,
                hops: p
                    .hops
                    .iter()
                    .map(|h| HopJson {
                        stage: h.stage.name(),
                        ts_ns: h.ts_ns,
                        cpu: h.cpu,
                        dt_ns: h.dt_ns,
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &j)?;
            writeln!(out)?;
        } else {
            let first = p.hops[0].ts_ns;
            let last = p.hops[p.hops.len() - 1].ts_ns;
            let mut head = format!(
                "journey {}  {}",
                n + 1,
                p.flow.as_ref().map_or("-".into(), flow_of)
            );
            if let Some(s) = p.seq {
                head += &format!("  seq={s}");
            }
            if let Some(s) = p.skb {
                head += &format!("  skb={s:#018x}");
            }
            writeln!(
                out,
                "{head}  {}, {} hops, {}",
                if p.complete { "complete" } else { "incomplete" },
                p.hops.len(),
                exact(last as i64 - first as i64)
            )?;
            for h in &p.hops {
                let cpu = h.cpu.map_or("-".into(), |c| c.to_string());
                let dt = h.dt_ns.map_or(String::new(), |d| format!("+{}", exact(d)));
                let line = format!(
                    "  {:>16} cpu {cpu:<3} {:<12} {dt}",
                    seconds(h.ts_ns, start_ns),
                    h.stage.name()
                );
                writeln!(out, "{}", line.trim_end())?;
            }
        }
        if pace.active() {
            out.flush()?;
        }
    }
    Ok(())
}

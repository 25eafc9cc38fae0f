//! The HTML report's first picture: the packet path as recorded, lane by lane (TX, the hand-over
//! from TX to RX on one host, RX; and across the wire when several hosts were recorded), each hop
//! with its median and p99, sized by its median, the hop that takes most time marked.
//!
//! Drawn with HTML and CSS rather than SVG so that its text stays readable and wraps in a narrow
//! window. Every figure carries, in `data-json`, the JSON Pointer of the value it shows in
//! `tcptape report --format json` (a test holds the two equal).

use crate::journeys::cross_host::HostPair;
use crate::report::model::{Report, StageLatency};
use crate::units::ns;
use std::io::Write;
use tcptape_common::stage::Path as StagePath;
use tcptape_common::Stage;

/// One hop of a lane: its figures and where they are in the JSON report.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// Label of the earlier end (`tx_qdisc_enq`, `host-a tx_driver`).
    pub from: String,
    /// Label of the later end.
    pub to: String,
    /// Packets measured.
    pub count: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// JSON Pointer of the row (`/stages/3`), whose `count`, `p50_ns`, `p99_ns` are shown.
    pub pointer: String,
}

/// A lane: the hops one after another along the path, and the hops recorded beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// What the lane is (`TX: sending`).
    pub title: String,
    /// The path: each hop starts where the previous one ends.
    pub path: Vec<Hop>,
    /// Hops between the same stages by another way (say, packets that skipped the qdisc).
    pub beside: Vec<Hop>,
    /// The end-to-end row over the whole lane, when the report has one.
    pub end_to_end: Option<Hop>,
}

fn stage_of(name: &str) -> Option<Stage> {
    name.parse().ok()
}

fn hop(l: &StageLatency, pointer: String) -> Hop {
    Hop {
        from: l.from.clone(),
        to: l.to.clone(),
        count: l.count,
        p50_ns: l.p50_ns,
        p99_ns: l.p99_ns,
        pointer,
    }
}

/// Splits hops into a path and the rest: from the earliest start, each step takes the hop with
/// the most packets out of the stage reached.
fn chain(mut hops: Vec<Hop>) -> (Vec<Hop>, Vec<Hop>) {
    let mut path = Vec::new();
    let Some(first) = hops.first().map(|h| h.from.clone()) else {
        return (path, hops);
    };
    let mut at = first;
    while let Some(i) = hops
        .iter()
        .enumerate()
        .filter(|(_, h)| h.from == at)
        .max_by_key(|(i, h)| (h.count, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
    {
        let h = hops.remove(i);
        at = h.to.clone();
        path.push(h);
    }
    (path, hops)
}

/// The lanes of one host's report; `base` is the report's JSON Pointer (`""` or `/hosts/0`).
pub fn lanes(r: &Report, base: &str) -> Vec<Lane> {
    let path = |name: &str| stage_of(name).map(|s| s.path());
    let kinds = [
        (
            "TX: the sending application to the NIC",
            StagePath::Tx,
            StagePath::Tx,
        ),
        (
            "TX to RX on this host (veth, loopback)",
            StagePath::Tx,
            StagePath::Rx,
        ),
        (
            "RX: the NIC to the reading application",
            StagePath::Rx,
            StagePath::Rx,
        ),
    ];
    let mut out = Vec::new();
    for (title, from, to) in kinds {
        // The report lists its stage rows in packet order.
        let hops: Vec<Hop> = r
            .stages
            .iter()
            .enumerate()
            .filter(|(_, l)| path(&l.from) == Some(from) && path(&l.to) == Some(to))
            .map(|(i, l)| hop(l, format!("{base}/stages/{i}")))
            .collect();
        if hops.is_empty() {
            continue;
        }
        let (path, beside) = chain(hops);
        let (first, last) = (
            path.first().map(|h| h.from.clone()),
            path.last().map(|h| h.to.clone()),
        );
        let end_to_end = (path.len() > 1)
            .then(|| {
                r.end_to_end
                    .iter()
                    .enumerate()
                    .find(|(_, l)| Some(&l.from) == first.as_ref() && Some(&l.to) == last.as_ref())
                    .map(|(i, l)| hop(l, format!("{base}/end_to_end/{i}")))
            })
            .flatten();
        out.push(Lane {
            title: title.to_string(),
            path,
            beside,
            end_to_end,
        });
    }
    out
}

/// The lanes across hosts: for each pair and direction with a wire figure, the sender's TX path,
/// the wire, and the receiver's RX path. `reports` are in the order of the JSON's `hosts`.
pub fn cross_host_lanes(reports: &[&Report], pairs: &[HostPair]) -> Vec<Lane> {
    let index = |host: &str| reports.iter().position(|r| r.host == host);
    let prefixed = |hops: Vec<Hop>, host: &str| -> Vec<Hop> {
        hops.into_iter()
            .map(|h| Hop {
                from: format!("{host} {}", h.from),
                to: format!("{host} {}", h.to),
                ..h
            })
            .collect()
    };
    let mut out = Vec::new();
    for (p, pair) in pairs.iter().enumerate() {
        for (w, wire) in pair.wire.iter().enumerate() {
            let (Some(a), Some(b)) = (index(&wire.from_host), index(&wire.to_host)) else {
                continue;
            };
            let of = |i: usize, path: StagePath| -> Vec<Hop> {
                lanes(reports[i], &format!("/hosts/{i}"))
                    .into_iter()
                    .filter(|l| {
                        l.path
                            .first()
                            .and_then(|h| stage_of(&h.from))
                            .map(|s| s.path())
                            == Some(path)
                            && l.path
                                .last()
                                .and_then(|h| stage_of(&h.to))
                                .map(|s| s.path())
                                == Some(path)
                    })
                    .flat_map(|l| l.path)
                    .collect()
            };
            let mut path = prefixed(of(a, StagePath::Tx), &wire.from_host);
            path.push(Hop {
                from: format!("{} tx_driver", wire.from_host),
                to: format!("{} rx_driver", wire.to_host),
                count: wire.count,
                p50_ns: wire.p50_ns,
                p99_ns: wire.p99_ns,
                pointer: format!("/between_hosts/{p}/wire/{w}"),
            });
            path.extend(prefixed(of(b, StagePath::Rx), &wire.to_host));
            let end_to_end = pair
                .end_to_end
                .iter()
                .enumerate()
                .find(|(_, e)| e.from_host == wire.from_host && e.to_host == wire.to_host)
                .map(|(e, l)| Hop {
                    from: format!("{} tx_sendmsg", l.from_host),
                    to: format!("{} rx_app", l.to_host),
                    count: l.count,
                    p50_ns: l.p50_ns,
                    p99_ns: l.p99_ns,
                    pointer: format!("/between_hosts/{p}/end_to_end/{e}"),
                });
            out.push(Lane {
                title: format!("{} → {}: across the wire", wire.from_host, wire.to_host),
                path,
                beside: Vec::new(),
                end_to_end,
            });
        }
    }
    out
}

fn esc(s: &str) -> String {
    super::html::esc(s)
}

/// A figure with the JSON Pointer of the value it shows.
fn figure(pointer: &str, field: &str, text: String) -> String {
    format!(
        "<span class=\"num\" data-json=\"{}/{field}\">{}</span>",
        esc(pointer),
        esc(&text)
    )
}

fn hop_figures(h: &Hop) -> String {
    format!(
        "p50 {} · p99 {} · {} packets",
        figure(&h.pointer, "p50_ns", ns(h.p50_ns as f64)),
        figure(&h.pointer, "p99_ns", ns(h.p99_ns as f64)),
        figure(&h.pointer, "count", h.count.to_string()),
    )
}

/// Colours of the path's segments, in turn; the dominant hop is always [`DOMINANT`].
const PALETTE: [&str; 4] = ["#4e79a7", "#76b7b2", "#59a14f", "#9c755f"];

/// The colour that marks the hop taking most time (a test looks for it in a screenshot).
pub const DOMINANT: &str = "#d62728";

/// What the drawing shows, said once above it.
pub const LEGEND: &str = "Each bar is a lane of the path as recorded, cut into its hops in \
    proportion to their medians; the hop taking most time is <b class=\"dom\">red</b>. Below, \
    each hop's median (solid) and p99 (line), on the lane's scale.";

/// Writes the drawing of `lanes` (nothing when there is none).
pub fn write(lanes: &[Lane], out: &mut impl Write) -> std::io::Result<()> {
    if lanes.iter().all(|l| l.path.is_empty()) {
        return Ok(());
    }
    writeln!(out, "<div class=\"drawing\">")?;
    for lane in lanes.iter().filter(|l| !l.path.is_empty()) {
        writeln!(out, "<div class=\"lane\">")?;
        write!(out, "<h3>{}", esc(&lane.title))?;
        if let Some(e) = &lane.end_to_end {
            write!(
                out,
                " <small>end to end ({} → {}): {}</small>",
                esc(&e.from),
                esc(&e.to),
                hop_figures(e)
            )?;
        }
        writeln!(out, "</h3>")?;
        // A lane of one hop has nothing to compare.
        let dominant = lane
            .path
            .iter()
            .enumerate()
            .max_by_key(|(i, h)| (h.p50_ns, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
            .filter(|_| lane.path.len() > 1);
        let total: u64 = lane.path.iter().map(|h| h.p50_ns).sum::<u64>().max(1);
        write!(out, "<div class=\"stack\">")?;
        for (i, h) in lane.path.iter().enumerate() {
            let colour = if Some(i) == dominant {
                DOMINANT
            } else {
                PALETTE[i % PALETTE.len()]
            };
            // Every hop keeps a sliver, so that none disappears.
            let share = (h.p50_ns as f64 / total as f64 * 100.0).max(0.6);
            write!(
                out,
                "<span style=\"flex:{share:.3} 1 0;background:{colour}\" title=\"{} → {}: p50 {}\">{}</span>",
                esc(&h.from),
                esc(&h.to),
                ns(h.p50_ns as f64),
                if share >= 12.0 {
                    format!("{} → {}", esc(&h.from), esc(&h.to))
                } else {
                    String::new()
                },
            )?;
        }
        writeln!(out, "</div>")?;
        let scale = lane
            .path
            .iter()
            .chain(&lane.beside)
            .map(|h| h.p99_ns.max(h.p50_ns))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let rows = lane
            .path
            .iter()
            .enumerate()
            .map(|(i, h)| (h, Some(i) == dominant, false))
            .chain(lane.beside.iter().map(|h| (h, false, true)));
        for (h, is_dominant, beside) in rows {
            let class = match (is_dominant, beside) {
                (true, _) => "hop dominant",
                (_, true) => "hop beside",
                _ => "hop",
            };
            writeln!(
                out,
                "<div class=\"{class}\"><span class=\"name\">{} → {}{}</span>\
                 <span class=\"figures\">{}</span><span class=\"track\">\
                 <span class=\"p50\" style=\"width:{:.2}%\"></span>\
                 <span class=\"p99\" style=\"left:{:.2}%;width:{:.2}%\"></span></span></div>",
                esc(&h.from),
                esc(&h.to),
                match (is_dominant, beside) {
                    (true, _) => " <b class=\"dom\">most time</b>",
                    (_, true) => " <i>(beside the path)</i>",
                    _ => "",
                },
                hop_figures(h),
                h.p50_ns as f64 / scale * 100.0,
                h.p50_ns as f64 / scale * 100.0,
                h.p99_ns.saturating_sub(h.p50_ns) as f64 / scale * 100.0,
            )?;
        }
        writeln!(out, "</div>")?;
    }
    writeln!(out, "</div>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(from: &str, to: &str, count: u64, p50: u64) -> Hop {
        Hop {
            from: from.into(),
            to: to.into(),
            count,
            p50_ns: p50,
            p99_ns: p50 * 2,
            pointer: format!("/{from}/{to}"),
        }
    }

    #[test]
    fn the_path_follows_the_busiest_hop_out_of_each_stage() {
        let hops = vec![
            h("tx_tcp_xmit", "tx_qdisc_enq", 90, 5),
            h("tx_tcp_xmit", "tx_driver", 10, 7),
            h("tx_qdisc_enq", "tx_qdisc_deq", 90, 1000),
            h("tx_qdisc_deq", "tx_driver", 90, 3),
        ];
        let (path, beside) = chain(hops);
        let names: Vec<_> = path.iter().map(|h| h.to.as_str()).collect();
        assert_eq!(names, ["tx_qdisc_enq", "tx_qdisc_deq", "tx_driver"]);
        assert_eq!(beside, vec![h("tx_tcp_xmit", "tx_driver", 10, 7)]);
    }

    #[test]
    fn the_dominant_hop_is_marked_once_and_every_figure_has_its_pointer() {
        let lane = Lane {
            title: "TX".into(),
            path: vec![h("a", "b", 3, 10), h("b", "c", 3, 5000), h("c", "d", 3, 20)],
            beside: vec![],
            end_to_end: None,
        };
        let mut out = Vec::new();
        write(&[lane], &mut out).unwrap();
        let html = String::from_utf8(out).unwrap();
        assert_eq!(html.matches("hop dominant").count(), 1);
        assert!(html.contains("<div class=\"hop dominant\"><span class=\"name\">b → c"));
        assert_eq!(html.matches(DOMINANT).count(), 1);
        assert_eq!(html.matches("data-json=").count(), 9);
        assert!(html.contains("data-json=\"/b/c/p50_ns\">5.00µs<"));
    }
}

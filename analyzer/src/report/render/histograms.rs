//! Per-stage latency distributions as small multiples: one small histogram per stage pair, all on
//! one log time axis so that they compare at a glance. Plain SVG (bars and a few labels); each
//! bar carries its packet count in `data-count`, and a tooltip with its range.

use crate::report::latency_stats::BINS_PER_DECADE;
use crate::report::model::Histogram;
use crate::units::ns;
use std::io::Write;

const W: f64 = 260.0;
const H: f64 = 120.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 18.0;

/// The bin number of a bin's lower bound (inverse of `latency_stats::bin_lo`).
fn bin_of(lo_ns: u64) -> i32 {
    if lo_ns == 0 {
        -1
    } else {
        crate::report::latency_stats::log_bin(lo_ns as i64)
    }
}

/// A power of ten of nanoseconds as a short label (`1ns`, `10µs`, `1s`).
fn decade(d: i32) -> String {
    let units = ["ns", "µs", "ms", "s"];
    let u = (d.max(0) / 3).min(3);
    format!(
        "{}{}",
        10u64.pow((d.max(0) - 3 * u) as u32),
        units[u as usize]
    )
}

/// Writes the histograms, each titled with its pair and its packets (the pair's `count`).
pub fn write(hs: &[Histogram], out: &mut impl Write) -> std::io::Result<()> {
    let bins = hs
        .iter()
        .flat_map(|h| h.bins.iter().map(|b| bin_of(b.lo_ns)));
    let (Some(k0), Some(k1)) = (bins.clone().min(), bins.max()) else {
        return Ok(());
    };
    // Whole decades, so the ticks fall on powers of ten.
    let d0 = (k0.max(0).div_euclid(BINS_PER_DECADE) * BINS_PER_DECADE).min(k0);
    let d1 = (k1 + 1 + BINS_PER_DECADE - 1).div_euclid(BINS_PER_DECADE) * BINS_PER_DECADE;
    let span = (d1 - d0).max(1) as f64;
    let x = |k: i32| (k - d0) as f64 / span * W;
    writeln!(out, "<div class=\"multiples\">")?;
    for (i, h) in hs.iter().enumerate() {
        let total: u64 = h.bins.iter().map(|b| b.count).sum();
        let peak = h.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
        writeln!(
            out,
            "<svg class=\"hist\" viewBox=\"0 0 {W} {H}\" role=\"img\" data-histogram=\"{i}\" \
             aria-label=\"{} → {}\"><text x=\"0\" y=\"13\" class=\"t\">{} → {} ({total})</text>",
            h.from, h.to, h.from, h.to
        )?;
        for b in &h.bins {
            let k = bin_of(b.lo_ns);
            let bh = b.count as f64 / peak * (H - TOP - BOTTOM);
            writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" data-count=\"{}\">\
                 <title>{} – {}: {} packets</title></rect>",
                x(k),
                H - BOTTOM - bh,
                (x(k + 1) - x(k) - 0.5).max(0.5),
                b.count,
                ns(b.lo_ns as f64),
                ns(b.hi_ns as f64),
                b.count
            )?;
        }
        writeln!(
            out,
            "<line x1=\"0\" y1=\"{y}\" x2=\"{W}\" y2=\"{y}\" class=\"axis\"/>",
            y = H - BOTTOM
        )?;
        // A tick every decade from 1 ns, labelled every other one to stay legible.
        let mut k = d0 - d0.rem_euclid(BINS_PER_DECADE);
        while k <= d1 {
            if k >= d0 && k >= 0 {
                let xx = x(k);
                write!(
                    out,
                    "<line x1=\"{xx:.1}\" y1=\"{y0}\" x2=\"{xx:.1}\" y2=\"{y1}\" class=\"axis\"/>",
                    y0 = H - BOTTOM,
                    y1 = H - BOTTOM + 3.0
                )?;
                if (k / BINS_PER_DECADE) % 2 == 0 {
                    let anchor = if xx < 12.0 {
                        "start"
                    } else if xx > W - 12.0 {
                        "end"
                    } else {
                        "middle"
                    };
                    write!(
                        out,
                        "<text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"{anchor}\" class=\"tick\">{}</text>",
                        H - 4.0,
                        decade(k / BINS_PER_DECADE)
                    )?;
                }
            }
            k += BINS_PER_DECADE;
        }
        writeln!(out, "</svg>")?;
    }
    writeln!(out, "</div>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_read_as_people_write_them() {
        let v: Vec<String> = (0..=10).map(decade).collect();
        assert_eq!(
            v,
            [
                "1ns", "10ns", "100ns", "1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s", "10s"
            ]
        );
    }
}

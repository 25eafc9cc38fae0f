//! The terminal table (the default format), laid out for a terminal of 120 columns: a table with
//! a `flow` or `cgroup` column names each flow or cgroup by a short id (`f1`, `c1`, …) and gives
//! a legend of them in full above it, text lines wrap under their label, and a table still wider is fitted by
//! wrapping its cells. `--wide` keeps every flow in full and every line whole.

use super::sections::Block;
use comfy_table::{presets::UTF8_BORDERS_ONLY, CellAlignment, ContentArrangement, Table};
use std::io::Write;

/// The width the default layout fits.
pub const WIDTH: usize = 120;

/// How wide the output may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// At most [`WIDTH`] columns.
    Fit,
    /// Every flow in full, every line whole (`--wide`).
    Wide,
}

/// Words of `line` in lines of at most `width` characters; continuation lines are indented
/// under the text that follows the line's label (the first run of two spaces or more).
fn wrap(line: &str, width: usize) -> Vec<String> {
    if line.chars().count() <= width {
        return vec![line.to_string()];
    }
    // The label and its padding: up to the end of the first run of two spaces or more.
    let indent = line
        .find("  ")
        .map(|i| i + line[i..].len() - line[i..].trim_start().len())
        .filter(|&i| i < width / 2)
        .unwrap_or(0);
    let (label, rest) = line.split_at(indent);
    let mut out = Vec::new();
    let mut cur = label.to_string();
    for word in rest.split_whitespace() {
        let len = cur.chars().count();
        if len > indent && len + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut cur));
            cur = " ".repeat(indent);
        }
        if cur.chars().count() > indent {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    out.push(cur);
    out
}

/// Writes blocks as text with box-drawn tables.
pub fn write(blocks: &[Block], out: &mut impl Write) -> std::io::Result<()> {
    write_with(blocks, Layout::Fit, out)
}

/// Writes blocks as text with box-drawn tables, in the given layout.
pub fn write_with(blocks: &[Block], layout: Layout, out: &mut impl Write) -> std::io::Result<()> {
    // Short ids of flows (`f1` is flows[0]) and cgroups (`c1`), in order of first appearance.
    let mut ids: [(&str, &str, Vec<String>); 2] =
        [("flow", "f", Vec::new()), ("cgroup", "c", Vec::new())];
    for b in blocks {
        match b {
            Block::Heading(h) => writeln!(out, "\n{h}")?,
            Block::Text(lines) => {
                for l in lines {
                    match layout {
                        Layout::Wide => writeln!(out, "{l}")?,
                        Layout::Fit => {
                            for w in wrap(l, WIDTH) {
                                writeln!(out, "{w}")?;
                            }
                        }
                    }
                }
            }
            Block::Table {
                header,
                rows,
                omitted,
            } => {
                if rows.is_empty() {
                    writeln!(out, "(none)")?;
                    continue;
                }
                let mut rows = rows.clone();
                for (name, prefix, ids) in &mut ids {
                    let Some(c) = header.iter().position(|h| h == name) else {
                        continue;
                    };
                    if layout == Layout::Wide {
                        continue;
                    }
                    // Short ids in the table, the names in full in a legend above it (so a grep
                    // for an address or a container still finds it). A flow or cgroup keeps its
                    // id in every table of the report.
                    let mut legend: Vec<usize> = Vec::new();
                    for r in &mut rows {
                        let full = std::mem::take(&mut r[c]);
                        let id = match ids.iter().position(|f| *f == full) {
                            Some(i) => i + 1,
                            None => {
                                ids.push(full);
                                ids.len()
                            }
                        };
                        if !legend.contains(&id) {
                            legend.push(id);
                        }
                        r[c] = format!("{prefix}{id}");
                    }
                    for id in legend {
                        writeln!(out, "  {:<4} {}", format!("{prefix}{id}"), ids[id - 1])?;
                    }
                }
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY).set_header(header.clone());
                if layout == Layout::Fit {
                    t.set_content_arrangement(ContentArrangement::Dynamic)
                        .set_width(WIDTH as u16);
                }
                for r in rows {
                    t.add_row(r);
                }
                // Figures read best right-aligned; the first column names the row.
                for i in 1..header.len() {
                    if let Some(c) = t.column_mut(i) {
                        c.set_cell_alignment(CellAlignment::Right);
                    }
                }
                writeln!(out, "{t}")?;
                if *omitted > 0 {
                    writeln!(
                        out,
                        "… {omitted} more rows (--limit, or --format json for all)"
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_under_their_label_and_short_ones_stay() {
        assert_eq!(wrap("short", 20), ["short"]);
        let l = "stages       rx_driver (6049), rx_netif (6049), rx_tcp_est (5652)";
        let w = wrap(l, 40);
        assert!(w.iter().all(|x| x.chars().count() <= 40), "{w:?}");
        assert!(
            w[1].starts_with(&" ".repeat(13)) && !w[1].starts_with(&" ".repeat(14)),
            "{w:?}"
        );
        assert_eq!(
            w.join(" ").split_whitespace().collect::<Vec<_>>(),
            l.split_whitespace().collect::<Vec<_>>()
        );
    }
}

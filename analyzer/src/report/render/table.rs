//! The terminal table (the default format).

use super::sections::Block;
use comfy_table::{presets::UTF8_BORDERS_ONLY, CellAlignment, Table};
use std::io::Write;

/// Writes blocks as text with box-drawn tables.
pub fn write(blocks: &[Block], out: &mut impl Write) -> std::io::Result<()> {
    for b in blocks {
        match b {
            Block::Heading(h) => writeln!(out, "\n{h}")?,
            Block::Text(lines) => {
                for l in lines {
                    writeln!(out, "{l}")?;
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
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY).set_header(header.clone());
                for r in rows {
                    t.add_row(r.clone());
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

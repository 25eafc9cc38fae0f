//! Markdown, for a ticket or a pull-request comment.

use super::sections::Block;
use std::io::Write;

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Writes blocks as Markdown: `###` headings, text in a code block, pipe tables.
pub fn write(title: &str, blocks: &[Block], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "## {title}")?;
    for b in blocks {
        match b {
            Block::Heading(h) => writeln!(out, "\n### {h}\n")?,
            Block::Text(lines) => {
                writeln!(out, "\n```text")?;
                for l in lines {
                    writeln!(out, "{l}")?;
                }
                writeln!(out, "```\n")?;
            }
            Block::Table {
                header,
                rows,
                omitted,
            } => {
                if rows.is_empty() {
                    writeln!(out, "_none_\n")?;
                    continue;
                }
                writeln!(
                    out,
                    "| {} |",
                    header
                        .iter()
                        .map(|h| cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                )?;
                writeln!(
                    out,
                    "|{}|",
                    (0..header.len())
                        .map(|i| if i == 0 { " --- " } else { " ---: " })
                        .collect::<Vec<_>>()
                        .join("|")
                )?;
                for r in rows {
                    writeln!(
                        out,
                        "| {} |",
                        r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                    )?;
                }
                if *omitted > 0 {
                    writeln!(out, "\n_{omitted} more rows in the JSON report._")?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

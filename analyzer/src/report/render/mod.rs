//! Output formats of a report. [`sections`] turns a report into titled tables once; the table,
//! Markdown and HTML renderers only lay them out, so every format shows the same figures.

pub mod html;
pub mod markdown;
pub mod plots;
pub mod sections;
pub mod table;

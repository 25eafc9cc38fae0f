//! Output formats of a report. [`sections`] turns a report into titled tables once; the table,
//! Markdown and HTML renderers only lay them out, so every format shows the same figures. The
//! HTML report leads with pictures: [`path_drawing`], [`histograms`] and [`plots`].

pub mod histograms;
pub mod html;
pub mod markdown;
pub mod path_drawing;
pub mod plots;
pub mod sections;
pub mod table;

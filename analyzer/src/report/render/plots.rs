//! SVG line charts for the HTML report, drawn with plotters' SVG backend (no fonts or bitmaps:
//! text is left to the browser).

use plotters::prelude::*;

/// One named line: (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// How an axis prints its values.
pub type Formatter = fn(f64) -> String;

/// Events marked on a time line as ticks along its top: a name, a colour and their x values.
pub struct Marks {
    /// Legend text.
    pub name: String,
    /// Tick colour.
    pub color: RGBColor,
    /// Where, on the x axis.
    pub xs: Vec<f64>,
}

/// Draws lines on linear axes into an SVG document (a string). `fx`/`fy` format tick labels;
/// `marks` are drawn as ticks in bands along the top, one band per kind.
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    marks: &[Marks],
    (fx, fy): (Formatter, Formatter),
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let pts = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .chain(marks.iter().flat_map(|m| m.xs.iter().map(|x| (*x, 0.0))));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-9 {
            x1 = x0 + 1.0;
        }
        let y0 = y0.min(0.0);
        let y1 = if y1 - y0 < 1e-9 { y0 + 1.0 } else { y1 };
        // Room above the lines for the bands of marks.
        let band = (y1 - y0) * 0.06;
        let y1 = y1 + band * (1.0 + marks.len() as f64);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| fx(*v))
            .y_label_formatter(&|v| fy(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        for (i, m) in marks.iter().enumerate() {
            let top = y1 - band * (0.3 + i as f64);
            let bottom = top - band * 0.8;
            // One tick per pixel column is all the eye can tell apart.
            let px = (x1 - x0) / 800.0;
            let mut cols: Vec<i64> = m.xs.iter().map(|x| ((x - x0) / px) as i64).collect();
            cols.sort_unstable();
            cols.dedup();
            let color = m.color;
            chart
                .draw_series(cols.into_iter().map(|c| {
                    let x = x0 + c as f64 * px;
                    PathElement::new(vec![(x, bottom), (x, top)], color.stroke_width(2))
                }))
                .map_err(|e| e.to_string())?
                .label(m.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x + 9, y - 6), (x + 9, y + 6)], color.stroke_width(2))
                });
        }
        if series.len() + marks.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

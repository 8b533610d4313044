//! A self-contained SVG of a run, written by hand: fast-tier occupancy over time, and the
//! hourly hot share of each policy against the oracle's.

use super::sim::Outcome;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 690.0;
const ORACLE: &str = "#2ca02c";
const SHIFT: &str = "#bbb";
const MAX_POINTS: usize = 2000;

fn colour(o: &Outcome) -> &'static str {
    match o.kind {
        super::sim::PolicyKind::Couchestor => "#1f77b4",
        super::sim::PolicyKind::Baseline => "#d62728",
    }
}

/// One chart area with its scales.
struct Panel {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn x(&self, v: f64) -> f64 {
        self.left + v.clamp(0.0, self.x_max) / self.x_max * self.width
    }

    fn y(&self, v: f64) -> f64 {
        self.top + self.height - v.clamp(0.0, self.y_max) / self.y_max * self.height
    }

    /// Title, grid, ticks and axis labels.
    fn frame(&self, out: &mut String, title: &str, y_label: &str) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        out.push_str(&format!(
            r##"<text x="{l}" y="{}" font-size="15" font-weight="bold">{}</text>
<rect x="{l}" y="{t}" width="{w}" height="{h}" fill="none" stroke="#333"/>
"##,
            t - 10.0,
            escape(title)
        ));
        for k in 0..=5 {
            let v = self.y_max * f64::from(k) / 5.0;
            let y = self.y(v);
            out.push_str(&format!(
                r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{v:.0}</text>
"##,
                l + w,
                l - 6.0,
                y + 4.0
            ));
        }
        let step = if self.x_max > 72.0 { 24.0 } else { 6.0 };
        let mut v = 0.0;
        while v <= self.x_max + 1e-9 {
            let x = self.x(v);
            out.push_str(&format!(
                r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{v:.0}</text>
"##,
                t + h,
                t + h + 15.0
            ));
            v += step;
        }
        out.push_str(&format!(
            r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">simulated time (hours)</text>
<text transform="translate({},{}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>
"#,
            l + w / 2.0,
            t + h + 32.0,
            l - 42.0,
            t + h / 2.0,
            escape(y_label)
        ));
    }

    fn line(&self, out: &mut String, points: &[(f64, f64)], colour: &str, dash: Option<&str>) {
        let stride = points.len().div_ceil(MAX_POINTS).max(1);
        let pts: Vec<String> = points
            .iter()
            .step_by(stride)
            .map(|&(x, y)| format!("{:.1},{:.1}", self.x(x), self.y(y)))
            .collect();
        let dash = dash.map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
        out.push_str(&format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.4"{dash} points="{}"/>
"#,
            pts.join(" ")
        ));
    }

    /// One row of entries above the plot, right-aligned, level with the panel title.
    fn legend(&self, out: &mut String, entries: &[(String, &str, Option<&str>)]) {
        let width = |label: &str| 30.0 + label.chars().count() as f64 * 6.2 + 14.0;
        let mut x = self.left + self.width - entries.iter().map(|e| width(&e.0)).sum::<f64>();
        let y = self.top - 14.0;
        for (label, colour, dash) in entries {
            let dash = dash.map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
            out.push_str(&format!(
                r#"<line x1="{x:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{}" font-size="11">{}</text>
"#,
                x + 24.0,
                x + 30.0,
                y + 4.0,
                escape(label)
            ));
            x += width(label);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Hourly hot share (%) of a run, and of the oracle, at the middle of each hour.
type HourlyShares = (Vec<(f64, f64)>, Vec<(f64, f64)>);

fn hourly(o: &Outcome) -> HourlyShares {
    let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * a / b } else { 0.0 };
    o.hours
        .iter()
        .enumerate()
        .map(|(h, x)| {
            let at = h as f64 + 0.5;
            ((at, pct(x.served, x.total)), (at, pct(x.oracle, x.total)))
        })
        .unzip()
}

/// Renders the two panels for the policy under test and, if given, the baseline.
pub fn render(title: &str, runs: &[&Outcome], headroom_percent: u8, hours: f64) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>
"#,
        WIDTH / 2.0,
        escape(title)
    );
    let x_max = hours.max(1.0);
    let panel = |top| Panel {
        left: 80.0,
        top,
        width: WIDTH - 110.0,
        height: 220.0,
        x_max,
        y_max: 100.0,
    };
    let occ = panel(80.0);
    occ.frame(&mut out, "Fast-tier occupancy", "% of fast-tier capacity");
    let limit = 100.0 - f64::from(headroom_percent.min(100));
    occ.line(
        &mut out,
        &[(0.0, limit), (x_max, limit)],
        "#777",
        Some("6 4"),
    );
    let mut legend = Vec::new();
    for o in runs {
        occ.line(&mut out, &o.occupancy, colour(o), None);
        legend.push((o.kind.as_str().to_owned(), colour(o), None));
    }
    legend.push((format!("usable limit ({limit:.0}%)"), "#777", Some("6 4")));
    occ.legend(&mut out, &legend);

    let share = panel(410.0);
    share.frame(
        &mut out,
        "Hot share per hour vs oracle",
        "% of IOPS served by the fast tier",
    );
    let mut legend = Vec::new();
    if let Some(first) = runs.first().filter(|o| !o.shift_hours.is_empty()) {
        for &h in &first.shift_hours {
            share.line(&mut out, &[(h, 0.0), (h, 100.0)], SHIFT, Some("2 3"));
        }
        legend.push(("hot-set shift".to_owned(), SHIFT, Some("2 3")));
    }
    for (k, o) in runs.iter().enumerate() {
        let (ours, oracle) = hourly(o);
        if k == 0 {
            share.line(&mut out, &oracle, ORACLE, Some("5 3"));
            legend.push(("oracle".to_owned(), ORACLE, Some("5 3")));
        }
        share.line(&mut out, &ours, colour(o), None);
        legend.push((o.kind.as_str().to_owned(), colour(o), None));
    }
    share.legend(&mut out, &legend);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}

//! The Markdown summary table and the latency chart of a matrix.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::client::Transport;
use crate::metrics::RunResult;
use crate::scenarios::Scenario;

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or("–".into(), |v| v.to_string())
}

/// One Markdown table, a row per run.
pub fn markdown(results: &[RunResult]) -> String {
    let mut out = String::from(
        "| scenario | transport | loss % | RTT ms | delivered | p50 ms | p90 ms | p99 ms | max ms | stale p50/p99 ms \
         | converged | converge ms | lost/dup writes | dup msgs | out of order | session failures | reconnects |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in results {
        let stale = r.staleness_ms.map_or("–".into(), |s| format!("{:.0}/{:.0}", s.p50, s.p99));
        let converged = match r.converged {
            Some(true) => "yes".to_owned(),
            Some(false) => "**no**".to_owned(),
            None => "–".to_owned(),
        };
        let writes = match (r.lost_writes, r.duplicate_writes) {
            (Some(l), Some(d)) => format!("{l}/{d}"),
            _ => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} % | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.name(),
            r.transport.name(),
            r.loss * 100.0,
            r.rtt_ms,
            r.delivery_ratio * 100.0,
            r.latency_ms.p50,
            r.latency_ms.p90,
            r.latency_ms.p99,
            r.latency_ms.max,
            stale,
            converged,
            opt(r.converge_ms.map(|c| format!("{c:.0}"))),
            writes,
            r.duplicates,
            r.out_of_order,
            r.session_failures,
            r.reconnects,
        ));
    }
    out
}

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a system TrueType font as plotters' "sans-serif" (once); false when none is installed.
fn register_font() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        for path in FONT_CANDIDATES {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Cursor-update latency (p50 and p99) against loss rate, one line per transport and percentile, one panel per RTT,
/// written as a PNG. Needs a TrueType font (Debian: fonts-dejavu-core).
pub fn chart(results: &[RunResult], path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(register_font(), "no TrueType font found (install fonts-dejavu-core)");
    let cursors: Vec<&RunResult> = results.iter().filter(|r| r.scenario == Scenario::Cursors).collect();
    anyhow::ensure!(!cursors.is_empty(), "no cursor results to chart");
    let rtts: BTreeSet<u64> = cursors.iter().map(|r| r.rtt_ms.round() as u64).collect();
    let rtts: Vec<u64> = rtts.into_iter().collect();
    let columns = rtts.len().min(2);
    let rows = rtts.len().div_ceil(columns);
    let size = (640 * columns as u32, 440 * rows as u32 + 50);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.titled(
        "Cursor update latency (send → shown at another client) vs packet loss",
        ("sans-serif", 24).into_font().color(&BLACK),
    )?;
    let panels = body.split_evenly((rows, columns));
    let max_loss = cursors.iter().map(|r| r.loss * 100.0).fold(1.0, f64::max);
    for (panel, rtt) in panels.iter().zip(&rtts) {
        let runs: Vec<&&RunResult> = cursors.iter().filter(|r| r.rtt_ms.round() as u64 == *rtt).collect();
        let top = runs.iter().map(|r| r.latency_ms.p99).fold(10.0, f64::max) * 1.5;
        // room below the lowest line for the legend
        let bottom = runs.iter().map(|r| r.latency_ms.p50).fold(f64::INFINITY, f64::min).clamp(1.0, 1e6) / 5.0;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("RTT {rtt} ms"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_loss * 1.05, (bottom..top).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("packet loss, each direction (%)")
            .y_desc("latency (ms, log scale)")
            .y_labels(6)
            .max_light_lines(1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 14))
            .draw()?;
        let series = [
            (Transport::Wt, "p50", RGBColor(0, 70, 160), false),
            (Transport::Wt, "p99", RGBColor(90, 170, 240), true),
            (Transport::Ws, "p50", RGBColor(190, 60, 0), false),
            (Transport::Ws, "p99", RGBColor(245, 150, 60), true),
        ];
        for (transport, which, color, dashed) in series {
            let mut points: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.transport == transport)
                .map(|r| (r.loss * 100.0, if which == "p50" { r.latency_ms.p50 } else { r.latency_ms.p99 }.max(bottom)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let label = format!(
                "{} {which}{}",
                if transport == Transport::Wt { "WebTransport (datagrams)" } else { "WebSocket (TCP)" },
                if dashed { " (dashed)" } else { "" }
            );
            let style = ShapeStyle { color: color.to_rgba(), filled: true, stroke_width: 3 };
            let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 24, y)], style);
            if dashed {
                chart.draw_series(DashedLineSeries::new(points.clone(), 10, 6, style))?.label(label).legend(legend);
            } else {
                chart.draw_series(LineSeries::new(points.clone(), style))?.label(label).legend(legend);
            }
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, style)))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present().with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// One self-contained HTML page: the summary table (from [`markdown`]'s output) and the latency chart inlined as a
/// `data:` URL, so the page is the only file a reader needs.
pub fn html(markdown_table: &str, chart_png: Option<&[u8]>) -> String {
    use base64::Engine;
    let mut rows = markdown_table.lines().filter(|line| line.starts_with('|'));
    let cells = |line: &str| -> Vec<String> {
        line.trim().trim_matches('|').split('|').map(|cell| html_cell(cell.trim())).collect()
    };
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>DriftDB netsim report</title>\n\
         <style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;font-size:0.9rem}\
         th,td{border:1px solid #ccc;padding:0.25rem 0.5rem;text-align:right}th:nth-child(-n+2),td:nth-child(-n+2)\
         {text-align:left}img{max-width:100%}</style></head>\n<body>\n<h1>DriftDB netsim report</h1>\n<table>\n",
    );
    if let Some(header) = rows.next() {
        out.push_str(&format!(
            "<tr>{}</tr>\n",
            cells(header).iter().map(|c| format!("<th>{c}</th>")).collect::<String>()
        ));
    }
    for row in rows.skip(1) {
        out.push_str(&format!("<tr>{}</tr>\n", cells(row).iter().map(|c| format!("<td>{c}</td>")).collect::<String>()));
    }
    out.push_str("</table>\n");
    if let Some(png) = chart_png {
        let data = base64::engine::general_purpose::STANDARD.encode(png);
        out.push_str(&format!("<h2>Latency</h2>\n<img alt=\"latency chart\" src=\"data:image/png;base64,{data}\">\n"));
    }
    out.push_str("</body></html>\n");
    out
}

/// A Markdown table cell as HTML: escaped, `**bold**` kept as bold.
fn html_cell(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    match escaped.strip_prefix("**").and_then(|rest| rest.strip_suffix("**")) {
        Some(bold) => format!("<strong>{bold}</strong>"),
        None => escaped,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_html_report_holds_the_table_and_the_chart_inline() {
        let table = "| scenario | transport |\n| --- | --- |\n| cursors | wt <x> |\n| state | **no** |\n";
        let page = super::html(table, Some(&[0x89, b'P', b'N', b'G']));
        assert!(page.contains("<tr><th>scenario</th><th>transport</th></tr>"), "{page}");
        assert!(page.contains("<tr><td>cursors</td><td>wt &lt;x&gt;</td></tr>"), "{page}");
        assert!(page.contains("<td><strong>no</strong></td>"), "{page}");
        assert!(!page.contains("---"), "the separator row is not a row: {page}");
        assert!(page.contains("src=\"data:image/png;base64,iVBORw==\""), "{page}");
        assert!(!super::html(table, None).contains("<img"));
    }
}

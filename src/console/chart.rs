//! The overview's throughput chart: inline SVG drawn on the server, so it needs no script and
//! no chart library. Bars are jobs finished per minute (completed, with failed stacked on
//! top); the line is bytes stored per minute, on its own scale (right axis).

use maud::{html, Markup};

use crate::display::human_bytes;
use crate::jobs::MinuteStats;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 34.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// The chart for `minutes` (oldest first).
pub fn throughput(minutes: &[MinuteStats]) -> Markup {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = minutes.len().max(1) as f64;
    let slot = plot_w / n;
    let max_jobs = minutes
        .iter()
        .map(|m| m.completed + m.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_bytes = minutes.iter().map(|m| m.bytes).max().unwrap_or(0).max(1) as f64;
    let y_jobs = |v: f64| TOP + plot_h - v / max_jobs * plot_h;
    let y_bytes = |v: f64| TOP + plot_h - v / max_bytes * plot_h;
    let points: Vec<String> = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{:.1},{:.1}",
                LEFT + slot * (i as f64 + 0.5),
                y_bytes(m.bytes as f64)
            )
        })
        .collect();
    let total_completed: i64 = minutes.iter().map(|m| m.completed).sum();
    let total_failed: i64 = minutes.iter().map(|m| m.failed).sum();
    let total_bytes: i64 = minutes.iter().map(|m| m.bytes).sum();
    let label = format!(
        "Last {} minutes: {total_completed} jobs completed, {total_failed} failed, {} stored",
        minutes.len(),
        human_bytes(total_bytes)
    );
    let base = TOP + plot_h;
    html! {
        figure.chart {
            // Scrolls sideways on a narrow screen, starting at the newest minute.
            div.plot {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
                title { (label) }
                // Grid and axes.
                line.axis x1=(LEFT) y1=(base) x2=(LEFT + plot_w) y2=(base) {}
                line.grid x1=(LEFT) y1=(TOP) x2=(LEFT + plot_w) y2=(TOP) {}
                text.tick x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" { (max_jobs as i64) }
                text.tick x=(LEFT - 4.0) y=(base) text-anchor="end" { "0" }
                text.tick.bytes x=(LEFT + plot_w + 4.0) y=(TOP + 4.0) { (human_bytes(max_bytes as i64)) }
                text.tick.bytes x=(LEFT + plot_w + 4.0) y=(base) { "0 B" }
                @for (i, m) in minutes.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + slot * 0.1;
                    @let w = slot * 0.8;
                    @let completed_top = y_jobs(m.completed as f64);
                    @let failed_top = y_jobs((m.completed + m.failed) as f64);
                    g.minute {
                        title {
                            (m.minute.format("%H:%M")) ": " (m.completed) " completed, "
                            (m.failed) " failed, " (human_bytes(m.bytes)) " stored"
                        }
                        // A transparent full-height target, so the tooltip works on empty minutes.
                        rect.hit x=(LEFT + slot * i as f64) y=(TOP) width=(slot) height=(plot_h) {}
                        @if m.completed > 0 {
                            rect.completed x=(x) y=(completed_top) width=(w) height=(base - completed_top) {}
                        }
                        @if m.failed > 0 {
                            rect.failed x=(x) y=(failed_top) width=(w) height=(completed_top - failed_top) {}
                        }
                    }
                }
                polyline.bytes points=(points.join(" ")) {}
                @if let (Some(first), Some(last)) = (minutes.first(), minutes.last()) {
                    text.tick x=(LEFT) y=(HEIGHT - 6.0) { (first.minute.format("%H:%M")) }
                    text.tick x=(LEFT + plot_w / 2.0) y=(HEIGHT - 6.0) text-anchor="middle" {
                        (minutes[minutes.len() / 2].minute.format("%H:%M"))
                    }
                    text.tick x=(LEFT + plot_w) y=(HEIGHT - 6.0) text-anchor="end" { (last.minute.format("%H:%M")) }
                }
            }
            }
            figcaption {
                span.key.completed { "completed" } " "
                span.key.failed { "failed" } " jobs per minute (left); "
                span.key.bytes { "bytes stored" } " per minute (right). "
                strong { (label) }
            }
        }
    }
}

//! The page frame and the small pieces every page uses. HTML is written with `maud`, which
//! escapes every interpolated value: nothing here builds markup from strings.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::display::human_bytes;

/// Characters left as they are in a path segment (job ids are `[A-Za-z0-9._:-]`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// A value as one URL path segment.
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

pub fn job_href(job_id: &str) -> String {
    format!("/console/jobs/{}", segment(job_id))
}

/// Which section of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Jobs,
    DeadLetters,
    Keys,
    Login,
}

/// A message at the top of a page.
pub enum Notice {
    Done(String),
    Problem(String),
}

/// The frame: head, navigation, notice, content.
pub fn page(
    title: &str,
    section: Section,
    logout: bool,
    notice: Option<&Notice>,
    content: Markup,
) -> Markup {
    let nav = [
        (Section::Overview, "/console", "Overview"),
        (Section::Jobs, "/console/jobs", "Jobs"),
        (
            Section::DeadLetters,
            "/console/dead-letters",
            "Dead letters",
        ),
        (Section::Keys, "/console/keys", "Client apps"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · vod-ingest console" }
                // No icon to fetch: the browser would ask for /favicon.ico otherwise.
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "vod-ingest" }
                    @if section != Section::Login {
                        nav {
                            @for (s, href, label) in nav {
                                a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                            }
                        }
                    }
                    @if logout {
                        form.logout method="post" action="/console/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @match notice {
                        Some(Notice::Done(text)) => p.notice.done role="status" { (text) },
                        Some(Notice::Problem(text)) => p.notice.problem role="alert" { (text) },
                        None => {},
                    }
                    (content)
                }
                footer { "Times are UTC. " a href="/metrics" { "/metrics" } " · " a href="/readyz" { "/readyz" } }
            }
        }
    }
}

/// `2026-12-03 10:15:02`, in a `<time>` element with the exact instant.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S")) }
    }
}

/// An optional time, or a dash.
pub fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { "–" },
    }
}

/// How long ago: `42 s`, `7 min`, `3 h`, `2 d`.
pub fn age(at: DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A state as a coloured badge.
pub fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge state-" (state) } { (state) } }
}

/// `45.0% · 12.3 MiB / 27.3 MiB`, or just the bytes when the total is unknown.
pub fn progress_text(done: i64, total: Option<i64>) -> String {
    match total {
        Some(total) if total > 0 => {
            let percent = (done as f64 / total as f64 * 100.0).clamp(0.0, 100.0);
            format!(
                "{percent:.1}% · {} / {}",
                human_bytes(done),
                human_bytes(total)
            )
        }
        _ => human_bytes(done),
    }
}

/// A progress bar with its numbers: `<progress>` so that no inline style is needed (the CSP
/// forbids them).
pub fn progress(done: i64, total: Option<i64>) -> Markup {
    html! {
        @if let Some(total) = total.filter(|t| *t > 0) {
            progress value=(done.clamp(0, total)) max=(total) {}
            " "
        }
        span.bytes { (progress_text(done, total)) }
    }
}

/// `12.3 MiB/s`.
pub fn rate(bytes_per_second: Option<f64>) -> String {
    match bytes_per_second {
        Some(r) => format!("{}/s", human_bytes(r as i64)),
        None => "–".into(),
    }
}

/// JSON, pretty-printed, in a `<pre>`.
pub fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { pre.json { (text) } }
}

/// A form that POSTs to `action` with one button, and asks first when `confirm` is set.
pub fn action_button(action: &str, label: &str, class: &str, confirm: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            button type="submit" class=(class) { (label) }
        }
    }
}

/// An empty-table line.
pub fn empty_row(columns: usize, text: &str) -> Markup {
    html! { tr { td.empty colspan=(columns) { (text) } } }
}

/// A non-breaking dash where a value is missing.
pub fn or_dash(value: Option<&str>) -> Markup {
    match value {
        Some(v) if !v.is_empty() => html! { (v) },
        _ => html! { "–" },
    }
}

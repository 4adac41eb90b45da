//! `/console`: how much is flowing, what is in progress, what waits, and whether the two
//! services the worker depends on answer. `/console/api/uploads` feeds the live progress bars.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};

use super::view::{self, Notice, Section};
use super::{chart, ConsoleError, ConsoleState, OUTSIDE_TIMEOUT};
use crate::jobs::{ActiveUpload, JobState};
use crate::queue::QueueDepths;

const UPLOADS_SHOWN: i64 = 50;

pub(super) async fn show(State(state): State<ConsoleState>) -> Result<Response, ConsoleError> {
    let rabbit_up = (state.amqp_ready)();
    let depths = tokio::time::timeout(OUTSIDE_TIMEOUT, state.dead_letters.depths()).await;
    let depths: Result<QueueDepths, String> = match depths {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(format!("RabbitMQ: {e}")),
        Err(_) => Err("RabbitMQ did not answer within 5 s".into()),
    };
    if let Err(e) = state.store.ping().await {
        tracing::error!(error = %e, "the console cannot reach PostgreSQL");
        let body = health(false, rabbit_up, &depths);
        return Ok(state.render(
            "Overview",
            Section::Overview,
            Some(Notice::Problem(
                "PostgreSQL did not answer: nothing else can be shown. Check that it is running (DATABASE_URL) and reload.".into(),
            )),
            body,
        ));
    }
    let counts = state.store.count_by_state().await?;
    let minutes = state.store.throughput(60).await?;
    let uploads = state.store.active_uploads(UPLOADS_SHOWN).await?;
    let waiting = state.store.longest_waiting().await?;
    let count = |s: JobState| {
        counts
            .iter()
            .find(|(name, _)| name == s.as_str())
            .map_or(0, |(_, n)| *n)
    };
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let body = html! {
        h1 { "Overview" }
        section.states aria-label="Jobs by state" {
            a.state-count href="/console/jobs" { span.n { (total) } span.label { "all jobs" } }
            @for s in JobState::ALL {
                a class={ "state-count state-" (s.as_str()) } href={ "/console/jobs?state=" (s.as_str()) } {
                    span.n { (count(s)) } span.label { (s.as_str()) }
                }
            }
        }
        section {
            h2 { "Throughput, last hour" }
            (chart::throughput(&minutes))
        }
        section {
            h2 { "Uploads in progress" }
            (uploads_table(&uploads))
        }
        section {
            h2 { "Waiting longest" }
            p.hint { "Per non-final state, the job that has gone longest without a change (for uploading: without progress)." }
            div.scroll {
                table {
                    thead { tr { th { "state" } th.num { "jobs" } th { "job" } th { "unchanged for" } th { "since" } } }
                    tbody {
                        @for w in &waiting {
                            tr {
                                td { (view::state_badge(&w.state)) }
                                td.num { (w.jobs) }
                                @match (&w.job_id, w.since) {
                                    (Some(id), Some(since)) => {
                                        td { a href=(view::job_href(id)) { (id) } }
                                        td { (view::age(since)) }
                                        td { (view::time(since)) }
                                    }
                                    _ => { td.hint colspan="3" { "none" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        (health(true, rabbit_up, &depths))
    };
    Ok(state.render("Overview", Section::Overview, None, body))
}

fn uploads_table(uploads: &[ActiveUpload]) -> Markup {
    html! {
        div.scroll {
            table.uploads {
                thead { tr { th { "job" } th { "kind" } th { "progress" } th { "speed" } th { "attempt" } } }
                tbody #uploads data-live-uploads="/console/api/uploads" {
                    @if uploads.is_empty() {
                        (view::empty_row(5, "No upload is running."))
                    }
                    @for u in uploads {
                        tr data-job-id=(u.job_id) {
                            td {
                                a href=(view::job_href(&u.job_id)) { (u.job_id) }
                                @if let Some(t) = &u.title { br; small { (t) } }
                            }
                            td { (u.kind) }
                            td.progress { (view::progress(u.bytes_uploaded, u.bytes_total)) }
                            td.speed { (view::rate(u.rate())) }
                            td.num { (u.attempts) }
                        }
                    }
                }
            }
        }
    }
}

fn health(db_up: bool, rabbit_up: bool, depths: &Result<QueueDepths, String>) -> Markup {
    let ok = |up: bool| if up { "ok" } else { "down" };
    html! {
        section {
            h2 { "Health" }
            ul.health {
                li class=(ok(db_up)) { strong { "PostgreSQL" } " " (if db_up { "answers" } else { "does not answer" }) }
                li class=(ok(rabbit_up && depths.is_ok())) {
                    strong { "RabbitMQ" } " "
                    @match depths {
                        Ok(d) => {
                            (if rabbit_up { "connected" } else { "the service's connection is down (the console's answers)" })
                            ": " (d.jobs_ready) " messages waiting in the jobs queue, "
                            (d.jobs_consumers) " consumers; "
                            a href="/console/dead-letters" { (d.dead_letters) " dead letters" }
                        }
                        Err(e) => { "unreachable: " (e) }
                    }
                }
            }
        }
    }
}

/// The uploads in progress, for the page's script: `{"uploads": [...]}`.
pub(super) async fn uploads_json(
    State(state): State<ConsoleState>,
) -> Result<Response, ConsoleError> {
    let uploads = state.store.active_uploads(UPLOADS_SHOWN).await?;
    let items: Vec<serde_json::Value> = uploads
        .iter()
        .map(|u| {
            serde_json::json!({
                "job_id": u.job_id,
                "href": view::job_href(&u.job_id),
                "kind": u.kind,
                "title": u.title,
                "attempts": u.attempts,
                "bytes_uploaded": u.bytes_uploaded,
                "bytes_total": u.bytes_total,
                "bytes_text": view::progress_text(u.bytes_uploaded, u.bytes_total),
                "rate_text": view::rate(u.rate()),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "uploads": items })).into_response())
}

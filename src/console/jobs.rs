//! `/console/jobs` (filtered keyset pages) and `/console/jobs/{job_id}` (one job, with retry
//! and cancel: the CLI's `JobStore::retry` / `JobStore::cancel`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::view::{self, Notice, Section};
use super::{ConsoleError, ConsoleState, OUTSIDE_TIMEOUT};
use crate::display::{describe_event, human_bytes, throughput};
use crate::jobs::{
    Checkpoints, Cursor, Job, JobEvent, JobFilter, JobKind, JobState, Origin, PageStart,
    ReceivedEvent, MIN_SUBSTRING_SEARCH,
};

const PAGE_SIZE: i64 = 50;
const EVENTS_SHOWN: i64 = 200;

/// The list's query string; empty fields mean "any".
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    before: String,
}

/// Which side of a cursor a page link asks for.
#[derive(Clone, Copy)]
enum Side {
    After,
    Before,
}

/// `2026-12-03T10:15` (what `<input type="datetime-local">` sends, read as UTC), with
/// optional seconds, or RFC 3339.
fn parse_time(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            ConsoleError::BadRequest(format!(
                "{field} {text:?} is not a time: give it as 2026-12-03T10:15 (UTC)"
            ))
        })
}

fn parse_choice<T: std::str::FromStr<Err = crate::jobs::UnknownName>>(
    field: &str,
    text: &str,
) -> Result<Option<T>, ConsoleError> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|e| ConsoleError::BadRequest(format!("{field}: {e}"))),
    }
}

impl ListQuery {
    fn filter(&self) -> Result<JobFilter, ConsoleError> {
        let search = Some(self.q.trim().to_owned()).filter(|q| !q.is_empty());
        Ok(JobFilter {
            state: parse_choice::<JobState>("state", &self.state)?,
            kind: parse_choice::<JobKind>("kind", &self.kind)?,
            origin: parse_choice::<Origin>("origin", &self.origin)?,
            created_from: parse_time("from", &self.from)?,
            created_until: parse_time("to", &self.to)?,
            search,
        })
    }

    /// Where the page starts: `after` (older than) or `before` (newer than) a job.
    fn cursor(&self) -> Result<Option<(Side, Cursor)>, ConsoleError> {
        let damaged = || {
            ConsoleError::BadRequest(
                "the page link is damaged (after=... or before=...): start again from the first page"
                    .into(),
            )
        };
        match (self.after.trim(), self.before.trim()) {
            ("", "") => Ok(None),
            (a, "") => Ok(Some((Side::After, Cursor::decode(a).ok_or_else(damaged)?))),
            ("", b) => Ok(Some((Side::Before, Cursor::decode(b).ok_or_else(damaged)?))),
            _ => Err(damaged()),
        }
    }

    /// This query string with `after` replaced (or removed).
    fn with_after(&self, after: Option<&str>) -> String {
        self.with_cursor(after.map(|a| (Side::After, a)))
    }

    /// This query string starting at a cursor (or at the newest job).
    fn with_cursor(&self, cursor: Option<(Side, &str)>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("state", &self.state),
            ("kind", &self.kind),
            ("origin", &self.origin),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ] {
            if !value.trim().is_empty() {
                s.append_pair(name, value.trim());
            }
        }
        match cursor {
            Some((Side::After, c)) => {
                s.append_pair("after", c);
            }
            Some((Side::Before, c)) => {
                s.append_pair("before", c);
            }
            None => {}
        }
        let query = s.finish();
        if query.is_empty() {
            "/console/jobs".into()
        } else {
            format!("/console/jobs?{query}")
        }
    }
}

fn select(name: &str, label: &str, current: &str, options: &[&str]) -> Markup {
    html! {
        label {
            span { (label) }
            select name=(name) {
                option value="" selected[current.is_empty()] { "any" }
                @for o in options {
                    option value=(o) selected[current == *o] { (o) }
                }
            }
        }
    }
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let filter = query.filter()?;
    let cursor = query.cursor()?;
    let start = match &cursor {
        None => PageStart::Newest,
        Some((Side::After, c)) => PageStart::OlderThan(c),
        Some((Side::Before, c)) => PageStart::NewerThan(c),
    };
    let page = state.store.page(&filter, start, PAGE_SIZE).await?;
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let hour_ago = (Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let day_ago = (Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let short_search = filter
        .search
        .as_deref()
        .is_some_and(|q| q.chars().count() < MIN_SUBSTRING_SEARCH);
    let body = html! {
        h1 { "Jobs" }
        form.filters method="get" action="/console/jobs" {
            label.search {
                span { "job id, media id or title" }
                input type="search" name="q" value=(query.q) placeholder="search";
            }
            (select("state", "state", &query.state, &states))
            (select("kind", "kind", &query.kind, &["video", "image", "attached_media"]))
            (select("origin", "origin", &query.origin, &["queue", "cli", "client", "sts"]))
            label { span { "created from (UTC)" } input type="datetime-local" name="from" value=(query.from); }
            label { span { "until (UTC)" } input type="datetime-local" name="to" value=(query.to); }
            div.buttons {
                button type="submit" { "Filter" }
                a href="/console/jobs" { "clear" }
                a href=(ListQuery { from: hour_ago, to: String::new(), ..query.clone() }.with_after(None)) { "last hour" }
                a href=(ListQuery { from: day_ago, to: String::new(), ..query.clone() }.with_after(None)) { "last 24 h" }
            }
        }
        @if short_search {
            p.hint { "Terms shorter than " (MIN_SUBSTRING_SEARCH) " characters match whole job ids and media ids only." }
        }
        div.scroll {
            table.jobs {
                thead { tr { th { "created" } th { "job" } th { "kind" } th { "origin" } th { "state" } th { "media id" } th { "progress / error" } } }
                tbody {
                    @if page.jobs.is_empty() { (view::empty_row(7, "No job matches.")) }
                    @for job in &page.jobs { (job_row(job)) }
                }
            }
        }
        nav.pager {
            @if let Some(prev) = &page.prev {
                // The way back, together on the left.
                span {
                    @if cursor.is_some() { a href=(query.with_after(None)) { "« newest" } " " }
                    a rel="prev" href=(query.with_cursor(Some((Side::Before, &prev.encode())))) { "← newer" }
                }
            }
            span { (page.jobs.len()) " jobs on this page" }
            @if let Some(next) = &page.next {
                a rel="next" href=(query.with_after(Some(&next.encode()))) { "older →" }
            }
        }
    };
    Ok(state.render("Jobs", Section::Jobs, None, body))
}

fn job_row(job: &Job) -> Markup {
    html! {
        tr {
            td { (view::time(job.created_at)) }
            td {
                a href=(view::job_href(&job.job_id)) { (job.job_id) }
                @if let Some(t) = &job.title { br; small { (t) } }
            }
            td { (job.kind) }
            td { (job.origin) }
            td { (view::state_badge(job.state.as_str())) }
            td.mono { (view::or_dash(job.media_id.as_deref())) }
            td {
                @match (&job.last_error_code, job.state()) {
                    (Some(code), JobState::Failed | JobState::Retrying) => {
                        span.error { (code) ": " (job.last_error_message.as_deref().unwrap_or("")) }
                    }
                    // The app uploads; only VOD's callback says when it is done.
                    (_, JobState::AwaitingUpload) => {
                        span.hint { "the app is uploading " (human_bytes(job.bytes_total.unwrap_or(0))) }
                    }
                    _ => { (view::progress(job.bytes_uploaded, job.bytes_total)) }
                }
            }
        }
    }
}

/// What VOD says about the job's media.
enum VodSide {
    NoMedia,
    CannotAsk(&'static str),
    Answer {
        status: String,
        size: Option<u64>,
        title: Option<String>,
    },
    Failed(String),
}

async fn ask_vod(state: &ConsoleState, job: &Job) -> VodSide {
    let Some(media_id) = job.media_id.as_deref() else {
        return VodSide::NoMedia;
    };
    let answer = match job.kind() {
        JobKind::Video => {
            tokio::time::timeout(OUTSIDE_TIMEOUT, state.vod.get_video_info(media_id))
                .await
                .map(|r| r.map(|v| (v.status, v.size, v.title)))
        }
        JobKind::Image => {
            tokio::time::timeout(OUTSIDE_TIMEOUT, state.vod.get_image_info(media_id))
                .await
                .map(|r| r.map(|i| (i.status, i.file_size, i.title)))
        }
        JobKind::AttachedMedia => {
            return VodSide::CannotAsk(
                "VOD cannot be asked about attached media: the service does not call GetAttachedMediaInfo yet",
            )
        }
    };
    match answer {
        Ok(Ok((status, size, title))) => VodSide::Answer {
            status,
            size,
            title,
        },
        Ok(Err(e)) => VodSide::Failed(e.to_string()),
        Err(_) => VodSide::Failed("VOD did not answer within 5 s".into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShowQuery {
    #[serde(default)]
    notice: String,
}

pub(super) async fn show(
    State(state): State<ConsoleState>,
    Path(job_id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, ConsoleError> {
    // Only known words are shown: a link cannot put text of its choosing on the page.
    let notice = match query.notice.as_str() {
        "retried" => Some(Notice::Done(
            "The job is queued again with a fresh attempt budget; a worker will pick it up.".into(),
        )),
        "cancelled" => Some(Notice::Done(
            "The job is cancelled; a worker holding it stops at its next lease renewal.".into(),
        )),
        _ => None,
    };
    job_page(&state, &job_id, StatusCode::OK, notice).await
}

async fn job_page(
    state: &ConsoleState,
    job_id: &str,
    status: StatusCode,
    notice: Option<Notice>,
) -> Result<Response, ConsoleError> {
    let Some(job) = state.store.get(job_id).await? else {
        return Err(ConsoleError::NotFound(format!(
            "no job with id {job_id:?} (a message that was not a valid job is in the dead-letter queue instead)"
        )));
    };
    let history = state.store.history(job_id).await?;
    let checkpoint = Checkpoints::new(state.store.pool().clone())
        .load(job_id)
        .await?;
    let mut media_ids = job.superseded_media_ids.clone();
    media_ids.extend(job.media_id.clone());
    let events = state
        .store
        .received_events(&media_ids, EVENTS_SHOWN)
        .await?;
    let vod = ask_vod(state, &job).await;
    let job_state = job.state();
    let can_retry = matches!(job_state, JobState::Failed | JobState::Cancelled)
        && job.origin().worker_uploads();
    let can_cancel = !job_state.is_terminal();
    let base = view::job_href(&job.job_id);
    let body = html! {
        h1.job-title { "Job " span.mono { (job.job_id) } " " (view::state_badge(job.state.as_str())) }
        @if can_retry || can_cancel {
            div.actions {
                @if can_retry {
                    (view::action_button(&format!("{base}/retry"), "Retry", "primary",
                        Some(&format!("Run job {} again with a fresh attempt budget?", job.job_id))))
                }
                @if can_cancel {
                    (view::action_button(&format!("{base}/cancel"), "Cancel", "danger",
                        Some(&format!("Cancel job {}? A running upload is stopped and its multipart upload aborted.", job.job_id))))
                }
            }
        }
        @if let (Some(code), true) = (&job.last_error_code, matches!(job_state, JobState::Failed | JobState::Retrying)) {
            p.notice.problem { strong { (code) } ": " (job.last_error_message.as_deref().unwrap_or("")) }
        }
        div.columns {
            section {
                h2 { "Fields" }
                (fields(&job))
            }
            section {
                h2 { "Upload" }
                div #job-progress data-live-job=(job.job_id) data-live-uploads="/console/api/uploads" data-state=(job.state) {
                    (view::progress(job.bytes_uploaded, job.bytes_total))
                    " · " span.speed { (view::rate(throughput(&job, &history))) }
                }
                h3 { "Multipart" }
                @match &checkpoint {
                    Some(c) => {
                        @let done_bytes: u64 = c.parts.iter().map(|p| p.size).sum();
                        p.multipart {
                            strong { (c.parts.len()) " of " (c.part_count) " parts" } " done ("
                            (human_bytes(done_bytes as i64)) " of " (human_bytes(c.file_size as i64)) ", parts of "
                            (human_bytes(c.part_size as i64)) ")"
                        }
                        progress value=(c.parts.len()) max=(c.part_count.max(1)) {}
                        p.hint.mono { "upload id " (c.upload_id) " · " (c.bucket) "/" (c.object_key) }
                    }
                    None => {
                        p.hint { "No multipart checkpoint: the file went in one PUT, the upload has not started, or it finished (the checkpoint is removed then)." }
                    }
                }
                h3 { "On VOD's side" }
                @if let Some(line) = crate::display::media_line(&job) {
                    p.media-status { "Media status (from VOD's events) " strong.mono { (line) } }
                }
                @match &vod {
                    VodSide::NoMedia => p.hint { "No media id yet: VOD has not been asked for an upload address." },
                    VodSide::CannotAsk(why) => p.hint { (why) "." },
                    VodSide::Answer { status, size, title } => {
                        p.vod-status {
                            "VOD reports " strong.mono { (status) }
                            @if let Some(s) = size { " · " (human_bytes(*s as i64)) }
                            @if let Some(t) = title { " · " (t) }
                        }
                    }
                    VodSide::Failed(why) => p.notice.problem { "VOD could not be asked: " (why) },
                }
            }
        }
        section {
            h2 { "History" }
            (history_table(&history))
        }
        section {
            h2 { "Callbacks received for its media" }
            (events_table(&events))
        }
        section {
            h2 { "Request" }
            (view::json_block(&job.request))
        }
    };
    let mut resp = state.render(&format!("Job {}", job.job_id), Section::Jobs, notice, body);
    *resp.status_mut() = status;
    Ok(resp)
}

fn fields(job: &Job) -> Markup {
    html! {
        dl.fields {
            dt { "kind" } dd { (job.kind) }
            dt { "origin" } dd {
                (job.origin)
                @if let Some(key) = &job.api_key_id { " (API key " span.mono { (key) } ")" }
            }
            dt { "media id" } dd.mono { (view::or_dash(job.media_id.as_deref())) }
            @if !job.superseded_media_ids.is_empty() {
                dt { "superseded" } dd.mono { (job.superseded_media_ids.join(", ")) }
            }
            dt { "title" } dd { (view::or_dash(job.title.as_deref())) }
            dt { "file name" } dd { (view::or_dash(job.file_name.as_deref())) }
            dt { "source" } dd.mono { (job.source) }
            dt { "attempts" } dd { (job.attempts) " of " (job.max_attempts) }
            @if job.state() == JobState::Retrying {
                dt { "next attempt" } dd { (view::time(job.run_at)) }
            }
            dt { "created" } dd { (view::time(job.created_at)) }
            dt { "updated" } dd { (view::time(job.updated_at)) " (" (view::age(job.updated_at)) " ago)" }
            dt { "uploaded" } dd { (view::maybe_time(job.uploaded_at)) }
            dt { "completed" } dd { (view::maybe_time(job.completed_at)) }
            @if let Some(bucket) = &job.upload_bucket {
                dt { "object" } dd.mono { (bucket) "/" (job.upload_key.as_deref().unwrap_or("")) }
            }
            @if let Some(expires) = job.credential_expires_at {
                dt { "credential expires" } dd { (view::time(expires)) }
            }
        }
    }
}

fn history_table(history: &[JobEvent]) -> Markup {
    html! {
        div.scroll {
            table.history {
                thead { tr { th { "at" } th { "transition" } th { "error" } th { "detail" } } }
                tbody {
                    @if history.is_empty() { (view::empty_row(4, "No history.")) }
                    @for e in history {
                        tr title=(describe_event(e)) {
                            td { (view::time(e.at)) }
                            td.transition {
                                @match e.from_state.as_deref() {
                                    _ if e.milestone.is_some() => { span.note { "media" } " " span.mono { "media." (e.milestone.as_deref().unwrap_or_default()) } }
                                    Some(from) if from == e.to_state => { span.note { "note" } " " (view::state_badge(&e.to_state)) }
                                    Some(from) => { (view::state_badge(from)) " → " (view::state_badge(&e.to_state)) }
                                    None => { "created " (view::state_badge(&e.to_state)) }
                                }
                            }
                            td {
                                @if let Some(code) = &e.error_code {
                                    span.error { (code) ": " (e.error_message.as_deref().unwrap_or("")) }
                                }
                            }
                            td.mono.detail {
                                @if let Some(d) = &e.detail { (d.to_string()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn events_table(events: &[ReceivedEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.hint { "None: VOD has sent no callback for this media (or it has no media yet)." }
        } @else {
            div.scroll {
                table.events {
                    thead { tr { th { "received" } th { "event" } th { "media id" } th { "signature" } th { "applied" } th { "body" } } }
                    tbody {
                        @for e in events {
                            tr {
                                td { (view::time(e.received_at)) }
                                td { (view::or_dash(e.event_type.as_deref())) }
                                td.mono { (view::or_dash(e.media_id.as_deref())) }
                                td { (e.verification) }
                                td { (if e.applied { "yes" } else { "no" }) }
                                td {
                                    details {
                                        summary { (human_bytes(e.body.len() as i64)) }
                                        (body_block(&e.body))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A callback body: pretty JSON when it is JSON, else the text as received.
fn body_block(body: &[u8]) -> Markup {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => view::json_block(&v),
        Err(_) => html! { pre.json { (String::from_utf8_lossy(body)) } },
    }
}

pub(super) async fn retry(
    State(state): State<ConsoleState>,
    Path(job_id): Path<String>,
) -> Result<Response, ConsoleError> {
    operator_move(state, job_id, true).await
}

pub(super) async fn cancel(
    State(state): State<ConsoleState>,
    Path(job_id): Path<String>,
) -> Result<Response, ConsoleError> {
    operator_move(state, job_id, false).await
}

async fn operator_move(
    state: ConsoleState,
    job_id: String,
    retry: bool,
) -> Result<Response, ConsoleError> {
    let result = if retry {
        state.store.retry(&job_id).await?
    } else {
        state.store.cancel(&job_id).await?
    };
    match result {
        Ok(transition) => {
            tracing::info!(job_id = %job_id, state = %transition.state, "an operator moved the job from the console");
            state.outbox.wake();
            let notice = if retry { "retried" } else { "cancelled" };
            Ok(
                Redirect::to(&format!("{}?notice={notice}", view::job_href(&job_id)))
                    .into_response(),
            )
        }
        Err(why @ crate::jobs::MoveRefused::NoSuchJob { .. }) => {
            Err(ConsoleError::NotFound(why.to_string()))
        }
        Err(why) => {
            job_page(
                &state,
                &job_id,
                StatusCode::CONFLICT,
                Some(Notice::Problem(why.to_string())),
            )
            .await
        }
    }
}

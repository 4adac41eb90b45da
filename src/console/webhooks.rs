//! A key's webhook in the console: the form that sets its URL and rotates its secret (handled
//! in [`super::keys`], whose page shows a new secret once), its recent deliveries (event,
//! answer, attempts, next try) and redelivering one. Through the same `KeyWebhooks` and
//! `JobStore` as `vod-ingest api-key`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::view::{self, Notice, Section};
use super::{ConsoleError, ConsoleState};
use crate::app_webhooks::WebhookSetupError;
use crate::keys::ApiKey;

/// Deliveries the page lists.
const RECENT: i64 = 100;

/// What an operator cannot fix by retrying becomes a 400 page; the store's trouble stays 503.
pub(super) fn setup_error(e: WebhookSetupError) -> ConsoleError {
    match e {
        WebhookSetupError::Db(e) => ConsoleError::Store(e),
        WebhookSetupError::NoSuchKey(_) => ConsoleError::NotFound(e.to_string()),
        other => ConsoleError::BadRequest(other.to_string()),
    }
}

/// The webhook part of a key's settings.
pub(super) fn webhook_form(key: &ApiKey) -> maud::Markup {
    let base = format!("/console/keys/{}/webhook", view::segment(&key.key_id));
    html! {
        form.webhook-form method="post" action=(base) {
            label { span { "webhook URL (empty: none)" }
                input type="url" name="webhook_url" value=(key.webhook.url.clone().unwrap_or_default()) placeholder="https://app.example.com/hooks/vod"; }
            div.buttons { button type="submit" { "Save webhook" } }
        }
        @if key.webhook.url.is_some() {
            (view::action_button(&format!("{base}/rotate"), "Rotate webhook secret", "",
                Some("Make a new webhook signing secret? The current one keeps signing for a day, so the app can switch.")))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeliveriesQuery {
    #[serde(default)]
    notice: String,
}

pub(super) async fn deliveries(
    State(state): State<ConsoleState>,
    Path(key_id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Response, ConsoleError> {
    let key = state
        .keys
        .get(&key_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no API key with id {key_id:?}")))?;
    let rows = state.store.recent_deliveries(&key.key_id, RECENT).await?;
    let notice = (query.notice == "redelivered").then(|| {
        Notice::Done("The delivery goes out again now, with a fresh retry schedule.".into())
    });
    let base = format!("/console/keys/{}/deliveries", view::segment(&key.key_id));
    let body = html! {
        h1 { "Webhook deliveries of " span.mono { (key.key_id) } " (" (key.name) ")" }
        p {
            @match &key.webhook.url {
                Some(url) => { "To " span.mono { (url) } ". " }
                None => { "This key has no webhook URL now. " }
            }
            "The latest " (RECENT) ", newest first. " a href="/console/keys" { "All keys" }
        }
        div.scroll {
            table.deliveries {
                thead { tr {
                    th { "id" } th { "event" } th { "upload" } th { "state" } th { "attempts" }
                    th { "answer" } th { "last try" } th { "next try" } th { "" }
                } }
                tbody {
                    @if rows.is_empty() { (view::empty_row(9, "No delivery yet.")) }
                    @for d in &rows {
                        tr data-delivery-id=(d.id) class=(format!("delivery-{}", d.state)) {
                            td.mono { "msg_" (d.id) }
                            td.event { (d.event_type) }
                            td.mono { a href=(format!("/console/jobs/{}", view::segment(&d.job_id))) { (d.job_id) } }
                            td.state { (d.state) }
                            td.attempts { (d.attempts) }
                            td.answer {
                                @if let Some(status) = d.last_status { span.status { (status) } " " }
                                @if let Some(error) = &d.last_error { small { (error) } }
                                @if d.last_status.is_none() && d.last_error.is_none() { "–" }
                            }
                            td { (view::maybe_time(d.last_attempt_at)) }
                            td { @if d.state == "pending" { (view::time(d.next_attempt_at)) } @else { "–" } }
                            td { @if d.state != "pending" {
                                (view::action_button(&format!("{base}/{}/redeliver", d.id), "Redeliver", "", None))
                            } }
                        }
                    }
                }
            }
        }
    };
    Ok(state.render_with(
        StatusCode::OK,
        "Webhook deliveries",
        Section::Keys,
        notice,
        body,
    ))
}

pub(super) async fn redeliver(
    State(state): State<ConsoleState>,
    Path((key_id, id)): Path<(String, i64)>,
) -> Result<Response, ConsoleError> {
    match state.store.redeliver(&key_id, id).await? {
        Some(d) => {
            tracing::info!(key_id = %d.key_id, delivery = d.id, "an operator redelivered an app webhook from the console");
            Ok(Redirect::to(&format!(
                "/console/keys/{}/deliveries?notice=redelivered",
                view::segment(&key_id)
            ))
            .into_response())
        }
        None => Err(ConsoleError::NotFound(format!(
            "no delivery {id} for API key {key_id:?}"
        ))),
    }
}

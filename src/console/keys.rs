//! `/console/keys`: client apps' API keys with their limits, last use and issuance counts
//! (`api_audit`); create one (its secret is shown on that one answer, never again) or revoke
//! one. The same `KeyStore` as `vod-ingest api-key`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::view::{self, Notice, Section};
use super::{ConsoleError, ConsoleState};
use crate::app_webhooks::WebhookSetupError;
use crate::display::human_bytes;
use crate::keys::{ApiKey, KeyLimits, KeySettings, KeyUpdate};
use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    notice: String,
}

/// The create form as sent; checkboxes are absent when unticked.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    name: String,
    kind_video: Option<String>,
    kind_image: Option<String>,
    kind_attached_media: Option<String>,
    #[serde(default)]
    max_file_size: String,
    #[serde(default)]
    requests_per_minute: String,
    #[serde(default)]
    origins: String,
    allow_sts: Option<String>,
    allow_sts_refresh: Option<String>,
    #[serde(flatten)]
    settings: SettingsFields,
    #[serde(default)]
    webhook_url: String,
}

/// A key's VOD settings as both forms send them (empty: not set).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct SettingsFields {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    workflow_id: String,
    #[serde(default)]
    template_group_id: String,
    #[serde(default)]
    storage_location: String,
    #[serde(default)]
    callback_url: String,
}

/// Why a key form was refused, as the page says it.
#[derive(Debug, thiserror::Error)]
enum FormProblem {
    #[error("give the key a name (the app it is for)")]
    NoName,
    #[error("largest file: {0}")]
    Size(#[from] crate::units::SizeError),
    #[error("requests per minute {0:?} is not a whole number")]
    NotANumber(String),
    #[error(transparent)]
    Setting(#[from] crate::keys::InvalidKeySetting),
    #[error(transparent)]
    Webhook(#[from] crate::app_webhooks::WebhookSetupError),
}

impl SettingsFields {
    fn parse(&self) -> Result<KeySettings, crate::keys::InvalidKeySetting> {
        KeySettings::parse(
            Some(&self.app_id),
            Some(&self.workflow_id),
            Some(&self.template_group_id),
            Some(&self.storage_location),
            Some(&self.callback_url),
        )
    }
}

impl CreateForm {
    fn limits(&self) -> Result<(String, KeyLimits), FormProblem> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(FormProblem::NoName);
        }
        let mut kinds = Vec::new();
        for (ticked, kind) in [
            (&self.kind_video, "video"),
            (&self.kind_image, "image"),
            (&self.kind_attached_media, "attached_media"),
        ] {
            if ticked.is_some() {
                kinds.push(kind.to_owned());
            }
        }
        let max_file_size = crate::units::parse_size(self.max_file_size.trim())?;
        let requests_per_minute: u32 = self
            .requests_per_minute
            .trim()
            .parse()
            .map_err(|_| FormProblem::NotANumber(self.requests_per_minute.trim().to_owned()))?;
        let origins: Vec<String> = self
            .origins
            .split([',', '\n', ' '])
            .map(str::to_owned)
            .collect();
        let limits = KeyLimits::parse(
            &kinds,
            max_file_size,
            requests_per_minute,
            &origins,
            self.allow_sts.is_some(),
        )?
        .with_sts_refresh(self.allow_sts_refresh.is_some())?;
        Ok((name.to_owned(), limits))
    }
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let notice = match query.notice.as_str() {
        "revoked" => Some(Notice::Done(
            "The key is revoked: requests with it are refused from now on.".into(),
        )),
        "updated" => Some(Notice::Done(
            "The key's settings are changed: its next uploads and tokens use them.".into(),
        )),
        "webhook" => Some(Notice::Done(
            "The key's webhook URL is changed: its next deliveries go there.".into(),
        )),
        _ => None,
    };
    page(&state, StatusCode::OK, notice, None, &CreateForm::default()).await
}

/// Secrets shown on one answer only: a key just made, a webhook secret just made.
struct Revealed {
    heading: String,
    items: Vec<(&'static str, &'static str, Secret)>,
}

/// The page; `revealed` are secrets just made, shown this once.
async fn page(
    state: &ConsoleState,
    status: StatusCode,
    notice: Option<Notice>,
    revealed: Option<Revealed>,
    form: &CreateForm,
) -> Result<Response, ConsoleError> {
    let keys = state.keys.list().await?;
    let usage = state.keys.usage().await?;
    let fresh = form.name.is_empty() && form.max_file_size.is_empty();
    let body = html! {
        h1 { "Client apps" }
        @if let Some(revealed) = &revealed {
            section.new-key {
                h2 { (revealed.heading) }
                p { "Give this to the app now. It is shown only this once: it is not stored." }
                @for (id, label, secret) in &revealed.items {
                    label.wide { span { (label) }
                        input.secret id=(id) type="text" readonly value=(secret.expose()) aria-label=(label); }
                }
            }
        }
        div.scroll {
            table.keys {
                thead { tr {
                    th { "key" } th { "name" } th { "kinds" } th { "limits" } th { "origins" }
                    th { "STS" } th { "webhook" } th { "created" } th { "use" } th { "" }
                } }
                tbody {
                    @if keys.is_empty() { (view::empty_row(10, "No API key yet.")) }
                    @for key in &keys {
                        @let u = usage.get(&key.key_id).cloned().unwrap_or_default();
                        @let l = &key.limits;
                        tr.revoked[key.revoked_at.is_some()] data-key-id=(key.key_id) {
                            td.mono { (key.key_id) }
                            td { (key.name) }
                            td { (l.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")) }
                            td.limits {
                                span.size { (human_bytes(l.max_file_size.min(i64::MAX as u64) as i64)) }
                                " · " span.rpm { (l.requests_per_minute) } "/min"
                            }
                            td {
                                @if l.allowed_origins.is_empty() { span.hint { "none (apps and servers)" } }
                                @else { (l.allowed_origins.join(", ")) }
                            }
                            td {
                                (if l.allow_sts { "yes" } else { "no" })
                                @if l.allow_sts_refresh { br; small.sts-refresh { "+ RefreshUploadVideo" } }
                                @for note in key.settings.describe() { br; small.setting { (note) } }
                            }
                            td.webhook {
                                @match &key.webhook.url {
                                    Some(url) => { span.mono.webhook-url { (url) } br; }
                                    None => { span.hint { "none" } br; }
                                }
                                a href=(format!("/console/keys/{}/deliveries", view::segment(&key.key_id))) { "deliveries" }
                            }
                            td { (view::time(key.created_at)) }
                            td.use {
                                "issued " span.issued { (u.issued) } " (24 h: " span.issued-day { (u.issued_last_day) } ")"
                                ", refused " span.refused { (u.refused) }
                                br;
                                small { "last used " (view::maybe_time(key.last_used_at)) }
                            }
                            td {
                                @if key.revoked_at.is_none() { (settings_form(key)) }
                                @match key.revoked_at {
                                    Some(at) => { "revoked" br; small { (view::time(at)) } }
                                    None => {
                                        (view::action_button(&format!("/console/keys/{}/revoke", view::segment(&key.key_id)),
                                            "Revoke", "danger",
                                            Some(&format!("Revoke key {} ({})? Apps using it are refused from then on.", key.key_id, key.name))))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "New key" }
            form.new-key-form method="post" action="/console/keys" {
                label { span { "name" } input type="text" name="name" value=(form.name) required placeholder="the app it is for"; }
                fieldset {
                    legend { "kinds" }
                    label.check { input type="checkbox" name="kind_video" value="on" checked[fresh || form.kind_video.is_some()]; " video" }
                    label.check { input type="checkbox" name="kind_image" value="on" checked[fresh || form.kind_image.is_some()]; " image" }
                    label.check { input type="checkbox" name="kind_attached_media" value="on" checked[fresh || form.kind_attached_media.is_some()]; " attached media" }
                }
                label { span { "largest file" } input type="text" name="max_file_size" value=(if fresh { "10G" } else { form.max_file_size.as_str() }) required; }
                label { span { "requests per minute" } input type="number" name="requests_per_minute" min="1" value=(if fresh { "60" } else { form.requests_per_minute.as_str() }) required; }
                label.wide { span { "browser origins (comma- or line-separated; * for any; empty: apps and servers only)" }
                    textarea name="origins" rows="2" placeholder="https://app.example.com" { (form.origins) } }
                label.check { input type="checkbox" name="allow_sts" value="on" checked[form.allow_sts.is_some()]; " may get STS tokens" }
                label.check { input type="checkbox" name="allow_sts_refresh" value="on" checked[form.allow_sts_refresh.is_some()];
                    " its tokens may call RefreshUploadVideo (it can overwrite any video's file: only for apps trusted that far)" }
                fieldset.wide {
                    legend { "VOD settings for its uploads (clients cannot choose these; empty: the account's defaults)" }
                    label { span { "app id" } input type="text" name="app_id" value=(form.settings.app_id); }
                    label { span { "workflow id" } input type="text" name="workflow_id" value=(form.settings.workflow_id); }
                    label { span { "template group id" } input type="text" name="template_group_id" value=(form.settings.template_group_id); }
                    label { span { "storage location" } input type="text" name="storage_location" value=(form.settings.storage_location); }
                    label { span { "callback URL" } input type="url" name="callback_url" value=(form.settings.callback_url) placeholder="https://…/callbacks/vod"; }
                }
                label.wide { span { "webhook URL: where the app gets its uploads' events, signed (empty: none)" }
                    input type="url" name="webhook_url" value=(form.webhook_url) placeholder="https://app.example.com/hooks/vod"; }
                div.buttons { button.primary type="submit" { "Create key" } }
            }
        }
    };
    let mut resp = state.render_with(status, "Client apps", Section::Keys, notice, body);
    if revealed.is_some() {
        // The secret must not linger in a cache or in the history's saved page.
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}

pub(super) async fn create(
    State(state): State<ConsoleState>,
    Form(form): Form<CreateForm>,
) -> Result<Response, ConsoleError> {
    // Everything is checked before the key exists (the webhook URL too), so a refusal creates
    // nothing.
    let checked = async {
        let (name, limits) = form.limits()?;
        let settings = form.settings.parse()?;
        let webhook_url = match form.webhook_url.trim() {
            "" => None,
            raw => Some(state.webhooks.check_url(raw).await?),
        };
        Ok::<_, FormProblem>((name, limits, settings, webhook_url))
    };
    let (name, limits, settings, webhook_url) = match checked.await {
        Ok(v) => v,
        Err(why) => {
            return page(
                &state,
                StatusCode::BAD_REQUEST,
                Some(Notice::Problem(format!("No key created: {why}."))),
                None,
                &form,
            )
            .await
        }
    };
    let (key, secret) = state.keys.create_with(&name, &limits, &settings).await?;
    tracing::info!(key_id = %key.key_id, name = %key.name, "an operator created an API key from the console");
    let mut items = vec![("new-key", "the API key", secret)];
    if let Some(url) = webhook_url {
        let set = state
            .webhooks
            .set_url(&state.keys, &key.key_id, Some(&url))
            .await
            .map_err(super::webhooks::setup_error)?;
        items.extend(
            set.new_secret
                .map(|s| ("new-webhook-secret", "its webhook signing secret", s)),
        );
    }
    page(
        &state,
        StatusCode::OK,
        Some(Notice::Done(format!(
            "Created key {} for {:?}.",
            key.key_id, key.name
        ))),
        Some(Revealed {
            heading: format!("New key {}", key.key_id),
            items,
        }),
        &CreateForm::default(),
    )
    .await
}

/// The settings an operator may change on an existing key: its VOD parameters and whether its
/// STS tokens may refresh.
fn settings_form(key: &ApiKey) -> maud::Markup {
    let s = &key.settings;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        details.key-settings {
            summary { "Settings" }
            form method="post" action=(format!("/console/keys/{}/settings", view::segment(&key.key_id))) {
                label { span { "app id" } input type="text" name="app_id" value=(value(&s.app_id)); }
                label { span { "workflow id" } input type="text" name="workflow_id" value=(value(&s.workflow_id)); }
                label { span { "template group id" } input type="text" name="template_group_id" value=(value(&s.template_group_id)); }
                label { span { "storage location" } input type="text" name="storage_location" value=(value(&s.storage_location)); }
                label { span { "callback URL" } input type="url" name="callback_url" value=(value(&s.callback_url)); }
                @if key.limits.allow_sts && key.limits.kinds.contains(&crate::jobs::JobKind::Video) {
                    label.check { input type="checkbox" name="allow_sts_refresh" value="on" checked[key.limits.allow_sts_refresh]; " STS tokens may call RefreshUploadVideo" }
                }
                div.buttons { button type="submit" { "Save settings" } }
            }
            (super::webhooks::webhook_form(key))
        }
    }
}

/// The settings form as sent: every field is present (empty clears it).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct SettingsForm {
    #[serde(flatten)]
    settings: SettingsFields,
    allow_sts_refresh: Option<String>,
}

pub(super) async fn update_settings(
    State(state): State<ConsoleState>,
    Path(key_id): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, ConsoleError> {
    if let Err(why) = form.settings.parse() {
        return page(
            &state,
            StatusCode::BAD_REQUEST,
            Some(Notice::Problem(format!("Settings not changed: {why}."))),
            None,
            &CreateForm::default(),
        )
        .await;
    }
    let f = form.settings;
    let update = KeyUpdate {
        allow_sts_refresh: Some(form.allow_sts_refresh.is_some()),
        app_id: Some(f.app_id),
        workflow_id: Some(f.workflow_id),
        template_group_id: Some(f.template_group_id),
        storage_location: Some(f.storage_location),
        callback_url: Some(f.callback_url),
    };
    match state.keys.update(&key_id, &update).await? {
        Some(key) => {
            tracing::info!(key_id = %key.key_id, "an operator changed an API key's settings from the console");
            Ok(Redirect::to("/console/keys?notice=updated").into_response())
        }
        None => Err(ConsoleError::NotFound(format!(
            "no API key with id {key_id:?}"
        ))),
    }
}

pub(super) async fn revoke(
    State(state): State<ConsoleState>,
    Path(key_id): Path<String>,
) -> Result<Response, ConsoleError> {
    match state.keys.revoke(&key_id).await? {
        Some(key) => {
            tracing::info!(key_id = %key.key_id, "an operator revoked an API key from the console");
            Ok(Redirect::to("/console/keys?notice=revoked").into_response())
        }
        None => Err(ConsoleError::NotFound(format!(
            "no API key with id {key_id:?}"
        ))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WebhookForm {
    #[serde(default)]
    webhook_url: String,
}

pub(super) async fn set_webhook(
    State(state): State<ConsoleState>,
    Path(key_id): Path<String>,
    Form(form): Form<WebhookForm>,
) -> Result<Response, ConsoleError> {
    let set = async {
        let url = match form.webhook_url.trim() {
            "" => None,
            raw => Some(state.webhooks.check_url(raw).await?),
        };
        state
            .webhooks
            .set_url(&state.keys, &key_id, url.as_ref())
            .await
    };
    match set.await {
        Ok(set) => {
            tracing::info!(key_id = %set.key.key_id, "an operator changed an API key's webhook URL from the console");
            match set.new_secret {
                Some(secret) => {
                    page(
                        &state,
                        StatusCode::OK,
                        Some(Notice::Done(format!(
                            "Key {} now sends webhooks to {}.",
                            set.key.key_id,
                            set.key.webhook.url.as_deref().unwrap_or_default()
                        ))),
                        Some(Revealed {
                            heading: format!("Webhook secret of key {}", set.key.key_id),
                            items: vec![("new-webhook-secret", "webhook signing secret", secret)],
                        }),
                        &CreateForm::default(),
                    )
                    .await
                }
                None => Ok(Redirect::to("/console/keys?notice=webhook").into_response()),
            }
        }
        Err(WebhookSetupError::Db(e)) => Err(ConsoleError::Store(e)),
        Err(WebhookSetupError::NoSuchKey(id)) => {
            Err(ConsoleError::NotFound(format!("no API key with id {id:?}")))
        }
        Err(why) => {
            page(
                &state,
                StatusCode::BAD_REQUEST,
                Some(Notice::Problem(format!("Webhook not changed: {why}."))),
                None,
                &CreateForm::default(),
            )
            .await
        }
    }
}

pub(super) async fn rotate(
    State(state): State<ConsoleState>,
    Path(key_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let set = state
        .webhooks
        .rotate(&state.keys, &key_id)
        .await
        .map_err(super::webhooks::setup_error)?;
    tracing::info!(key_id = %set.key.key_id, "an operator rotated an API key's webhook secret from the console");
    page(
        &state,
        StatusCode::OK,
        Some(Notice::Done(format!(
            "Key {}'s webhooks are signed with a new secret, and for a day with the previous one too.",
            set.key.key_id
        ))),
        Some(Revealed {
            heading: format!("New webhook secret of key {}", set.key.key_id),
            items: set
                .new_secret
                .into_iter()
                .map(|s| ("new-webhook-secret", "webhook signing secret", s))
                .collect(),
        }),
        &CreateForm::default(),
    )
    .await
}

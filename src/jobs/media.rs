//! VOD's side of a job after the upload: the media status and the per-step detail that VOD's
//! processing events (analysis, snapshots, one stream per definition, transcode, audit) and the
//! reconciler report, and the milestones (`media.playable`, `media.transcode_failed`, ...) that
//! producers are told about.
//!
//! VOD sends each event at most three times, with no id and in no guaranteed order, so applying
//! an observation is a merge that is idempotent and order-independent: every step is a slot
//! that a later observation (by VOD's `EventTime`) replaces, a success is never replaced by a
//! failure, and the status derived from the slots never moves back (`Normal` stays `Normal`
//! when a late `StreamTranscodeComplete` arrives).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{Postgres, Transaction as PgTx};

use super::model::{JobKind, JobState};
use super::store::{Confirmation, JobStore, Transition};

/// What VOD reported for one processing step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEntry {
    /// `success` / `fail` for processing steps; `Normal` / `Blocked` for a review; the
    /// `Suggestion` (`pass`, `review`, `block`) for an AI audit.
    pub status: String,
    /// VOD's `EventTime`; `None` when the reconciler inferred the step from the media status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// The event type that reported it, or `reconciler`.
    pub via: String,
    /// What else VOD said: definition, format, size, duration, URL, error code and message...
    #[serde(default, flatten)]
    pub info: Map<String, Value>,
}

impl StepEntry {
    pub fn new(
        status: impl Into<String>,
        at: Option<DateTime<Utc>>,
        via: impl Into<String>,
    ) -> Self {
        Self {
            status: status.into(),
            at,
            via: via.into(),
            info: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        if !value.is_null() {
            self.info.insert(key.to_owned(), value);
        }
        self
    }

    pub fn succeeded(&self) -> bool {
        self.status.eq_ignore_ascii_case("success")
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.info.get(key).and_then(Value::as_str)
    }
}

/// The steps of a job's media, as stored in `ingest_jobs.media_detail`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<StepEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<StepEntry>,
    /// One per definition and format (`LD-mp4`, `HD-m3u8`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub streams: BTreeMap<String, StepEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcode: Option<StepEntry>,
    /// A manual review (`CreateAuditComplete`): `Normal` or `Blocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<StepEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_audit: Option<StepEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<StepEntry>,
}

/// Which slot of [`MediaDetail`] an observation fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Analysis,
    Snapshot,
    Stream(String),
    Transcode,
    Audit,
    AiAudit,
    Deleted,
}

/// One observation of a media: from an event, or from the reconciler's question to VOD.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaUpdate {
    /// VOD has the whole file (an upload-complete event, or any processing event).
    pub uploaded: bool,
    /// VOD reports the media as `Transcoding` (the reconciler).
    pub transcoding: bool,
    /// VOD says the media does not exist (the reconciler, after its configured checks).
    pub missing: bool,
    pub steps: Vec<(Slot, StepEntry)>,
}

/// A milestone for producers, published as `media.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Milestone {
    pub name: &'static str,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub detail: Value,
}

/// How far a status is along; the derived status never moves to a lower rank.
fn rank(status: Option<&str>) -> u8 {
    match status {
        None | Some("Uploading") => 0,
        Some("UploadSucc") => 1,
        Some("Transcoding") => 2,
        Some("Normal") | Some("TranscodeFail") => 3,
        Some("Blocked") => 4,
        Some("Missing") => 5,
        Some(_) => 0,
    }
}

/// Whether `new` is a later observation than `old` (by EventTime; one with a time beats an
/// inferred one).
fn later(new: &StepEntry, old: &StepEntry) -> bool {
    match (new.at, old.at) {
        (Some(n), Some(o)) => n > o,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Puts `new` into `slot` if it is news; `sticky` keeps a success against a later failure.
fn merge_slot(slot: &mut Option<StepEntry>, new: StepEntry, sticky: bool) -> bool {
    let replace = match slot.as_ref() {
        None => true,
        Some(old) if *old == new => false,
        Some(old) if sticky && old.succeeded() != new.succeeded() => new.succeeded(),
        Some(old) => later(&new, old),
    };
    if replace {
        *slot = Some(new);
    }
    replace
}

impl MediaDetail {
    pub fn from_json(value: &Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("plain data serializes")
    }

    /// Merges one observation; returns whether anything changed.
    pub fn merge(&mut self, update: &MediaUpdate) -> bool {
        let mut changed = false;
        for (slot, entry) in &update.steps {
            let entry = entry.clone();
            changed |= match slot {
                Slot::Analysis => merge_slot(&mut self.analysis, entry, true),
                Slot::Snapshot => merge_slot(&mut self.snapshot, entry, true),
                Slot::Transcode => merge_slot(&mut self.transcode, entry, true),
                Slot::Audit => merge_slot(&mut self.audit, entry, false),
                Slot::AiAudit => merge_slot(&mut self.ai_audit, entry, false),
                Slot::Deleted => merge_slot(&mut self.deleted, entry, true),
                Slot::Stream(key) => {
                    let mut current = self.streams.remove(key);
                    let c = merge_slot(&mut current, entry, true);
                    if let Some(s) = current {
                        self.streams.insert(key.clone(), s);
                    }
                    c
                }
            };
        }
        changed
    }

    fn processing_seen(&self) -> bool {
        self.analysis.is_some() || self.snapshot.is_some() || !self.streams.is_empty()
    }
}

/// The media status the detail implies, never behind `current`.
pub fn derive_status(
    kind: JobKind,
    current: Option<&str>,
    detail: &MediaDetail,
    update: &MediaUpdate,
) -> Option<String> {
    let blocked = detail
        .audit
        .as_ref()
        .is_some_and(|a| a.status.eq_ignore_ascii_case("Blocked"));
    let derived: Option<&str> = if current == Some("Missing") || update.missing {
        Some("Missing")
    } else if blocked {
        Some("Blocked")
    } else if kind != JobKind::Video {
        (update.uploaded || current.is_some()).then_some("Normal")
    } else if let Some(t) = &detail.transcode {
        Some(if t.succeeded() {
            "Normal"
        } else {
            "TranscodeFail"
        })
    } else if detail.processing_seen() || update.transcoding {
        Some("Transcoding")
    } else if update.uploaded {
        Some("UploadSucc")
    } else {
        None
    };
    // A review that passes lifts a block: VOD's own decision, the one move back allowed.
    let unblocked = current == Some("Blocked") && !blocked && detail.audit.is_some();
    match derived {
        Some(d) if rank(Some(d)) >= rank(current) || unblocked => Some(d.to_owned()),
        _ => current.map(str::to_owned),
    }
}

fn step_milestone(
    ok: &'static str,
    failed: &'static str,
    entry: &StepEntry,
    extra: Value,
) -> Milestone {
    let mut detail = serde_json::to_value(entry).expect("plain data serializes");
    if let (Value::Object(d), Value::Object(e)) = (&mut detail, extra) {
        d.extend(e);
    }
    let success = entry.succeeded();
    Milestone {
        name: if success { ok } else { failed },
        error_code: (!success)
            .then(|| entry.text("error_code").map(str::to_owned))
            .flatten(),
        error_message: (!success)
            .then(|| entry.text("error_message").map(str::to_owned))
            .flatten(),
        detail,
    }
}

/// What producers are told about a change from (`old_status`, `old`) to (`new_status`, `new`),
/// in the order things happen at VOD: steps first, then the outcome.
pub fn milestones(
    old_status: Option<&str>,
    new_status: Option<&str>,
    old: &MediaDetail,
    new: &MediaDetail,
) -> Vec<Milestone> {
    let mut out = Vec::new();
    let changed = |a: &Option<StepEntry>, b: &Option<StepEntry>| {
        b.is_some() && a.as_ref().map(|x| x.succeeded()) != b.as_ref().map(|x| x.succeeded())
    };
    if changed(&old.analysis, &new.analysis) {
        let e = new.analysis.as_ref().expect("checked");
        out.push(step_milestone(
            "analysed",
            "analysis_failed",
            e,
            Value::Null,
        ));
    }
    if changed(&old.snapshot, &new.snapshot) {
        let e = new.snapshot.as_ref().expect("checked");
        out.push(step_milestone(
            "snapshot_ready",
            "snapshot_failed",
            e,
            Value::Null,
        ));
    }
    for (key, entry) in &new.streams {
        let before = old.streams.get(key).cloned();
        if changed(&before, &Some(entry.clone())) {
            out.push(step_milestone(
                "stream_ready",
                "stream_failed",
                entry,
                serde_json::json!({ "stream": key }),
            ));
        }
    }
    if let Some(e) = new
        .ai_audit
        .as_ref()
        .filter(|_| old.ai_audit != new.ai_audit)
    {
        out.push(Milestone {
            name: "ai_audit_complete",
            error_code: None,
            error_message: None,
            detail: serde_json::to_value(e).expect("plain data serializes"),
        });
    }
    if let Some(e) = new.deleted.as_ref().filter(|_| old.deleted.is_none()) {
        out.push(step_milestone("deleted", "delete_failed", e, Value::Null));
    }
    let audit_now = new.audit.as_ref().map(|a| a.status.as_str());
    if audit_now.is_some_and(|s| s.eq_ignore_ascii_case("Normal"))
        && old.audit.as_ref().map(|a| a.status.as_str()) != audit_now
    {
        let e = new.audit.as_ref().expect("checked");
        out.push(Milestone {
            name: "audit_passed",
            error_code: None,
            error_message: None,
            detail: serde_json::to_value(e).expect("plain data serializes"),
        });
    }
    if new_status != old_status {
        let outcome = match new_status {
            Some("Normal") if old_status != Some("Blocked") || new.transcode.is_some() => {
                Some(("playable", None))
            }
            Some("TranscodeFail") => Some(("transcode_failed", new.transcode.as_ref())),
            Some("Blocked") => Some(("blocked", new.audit.as_ref())),
            Some("Missing") => Some(("missing", None)),
            _ => None,
        };
        if let Some((name, entry)) = outcome {
            let detail = match name {
                "playable" => serde_json::json!({
                    "streams": new.streams.iter()
                        .filter(|(_, s)| s.succeeded())
                        .map(|(k, s)| serde_json::json!({
                            "stream": k,
                            "definition": s.info.get("definition"),
                            "format": s.info.get("format"),
                            "url": s.info.get("url"),
                        }))
                        .collect::<Vec<_>>(),
                    "via": new.transcode.as_ref().map(|t| t.via.clone()),
                }),
                _ => entry
                    .map(|e| serde_json::to_value(e).expect("plain data serializes"))
                    .unwrap_or(Value::Null),
            };
            let (code, message) = match (name, entry) {
                ("transcode_failed", Some(e)) => (
                    Some(e.text("error_code").unwrap_or("TranscodeFail").to_owned()),
                    Some(
                        e.text("error_message")
                            .unwrap_or("VOD reports that transcoding failed")
                            .to_owned(),
                    ),
                ),
                ("blocked", Some(e)) => (
                    Some("Blocked".to_owned()),
                    e.text("reason").map(str::to_owned),
                ),
                ("missing", _) => (
                    Some("MediaNotFound".to_owned()),
                    Some("VOD no longer knows this media (it was deleted?)".to_owned()),
                ),
                _ => (None, None),
            };
            out.push(Milestone {
                name,
                error_code: code,
                error_message: message,
                detail,
            });
        }
    }
    out
}

/// A milestone's `detail` as the history stores it: an object, with the media status.
pub(super) fn history_detail(detail: Value, media_status: Option<&str>) -> Value {
    let mut map = match detail {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            let mut map = Map::new();
            map.insert("detail".to_owned(), other);
            map
        }
    };
    map.insert("media_status".to_owned(), serde_json::json!(media_status));
    Value::Object(map)
}

/// A callback as `vod_events` stores it.
#[derive(Debug, Clone, Copy)]
pub struct RawCallback<'a> {
    pub verification: &'a str,
    pub event_type: Option<&'a str>,
    pub media_id: Option<&'a str>,
    pub signature_timestamp: Option<i64>,
    pub dedup_key: Option<&'a str>,
    pub headers: &'a Value,
    pub body: &'a [u8],
    pub event_time: Option<DateTime<Utc>>,
}

impl<'a> RawCallback<'a> {
    /// Binds the event's columns as `$1..$8`, in the order of `vod_events (verification,
    /// event_type, media_id, signature_timestamp, dedup_key, headers, body, event_time)`.
    pub fn bind<'q, O>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.verification)
            .bind(self.event_type)
            .bind(self.media_id)
            .bind(self.signature_timestamp)
            .bind(self.dedup_key)
            .bind(self.headers)
            .bind(self.body)
            .bind(self.event_time)
    }
}

/// What applying an observation did.
#[derive(Debug, Clone, Default)]
pub struct MediaApplied {
    pub job_id: String,
    pub state: Option<JobState>,
    pub media_status: Option<String>,
    pub milestones: Vec<&'static str>,
    /// The job's own transition, when the observation also proved the upload complete.
    pub transition: Option<Transition>,
}

impl JobStore {
    /// Applies an observation of `media_id` to the job that owns it, inside the caller's
    /// transaction: merges the detail, derives the status, records milestones in the history
    /// (so the outbox publishes them in order with the job's transitions). When `confirm` is
    /// given and the observation shows VOD has the file, a job still waiting for its upload
    /// confirmation completes too; only VOD's own answer (the reconciler) may give it, since a
    /// callback's body is not signed. `None` when no job owns the media.
    pub async fn apply_media_in(
        tx: &mut PgTx<'_, Postgres>,
        media_id: &str,
        update: &MediaUpdate,
        confirm: Option<Confirmation<'_>>,
    ) -> Result<Option<MediaApplied>, sqlx::Error> {
        let row: Option<(String, JobKind, JobState, Option<String>, Value)> = sqlx::query_as(
            "SELECT job_id, kind, state, media_status, media_detail FROM ingest_jobs
             WHERE media_id = $1 FOR UPDATE",
        )
        .bind(media_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((job_id, kind, state, old_status, detail)) = row else {
            return Ok(None);
        };
        let proves_upload = update.uploaded || update.transcoding || !update.steps.is_empty();
        let mut transition = None;
        if let (Some(confirmation), true, JobState::Uploaded | JobState::AwaitingUpload) =
            (confirm, proves_upload, state)
        {
            transition = Self::complete_by_media_in(tx, media_id, confirmation).await?;
        }
        let old = MediaDetail::from_json(&detail);
        let mut new = old.clone();
        let changed = new.merge(update);
        let new_status = derive_status(kind, old_status.as_deref(), &new, update);
        let mut applied = MediaApplied {
            job_id: job_id.clone(),
            state: Some(state),
            media_status: new_status.clone(),
            milestones: Vec::new(),
            transition,
        };
        if !changed && new_status == old_status {
            return Ok(Some(applied));
        }
        let state: String = sqlx::query_scalar(
            "UPDATE ingest_jobs SET media_status = $2, media_detail = $3, media_updated_at = now(),
                 media_checks = 0
             WHERE job_id = $1 RETURNING state",
        )
        .bind(&job_id)
        .bind(&new_status)
        .bind(new.to_json())
        .fetch_one(&mut **tx)
        .await?;
        for m in milestones(old_status.as_deref(), new_status.as_deref(), &old, &new) {
            let detail = history_detail(m.detail, new_status.as_deref());
            sqlx::query(
                "INSERT INTO ingest_job_events
                     (job_id, from_state, to_state, media_id, error_code, error_message, detail, milestone)
                 VALUES ($1, $2, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&job_id)
            .bind(&state)
            .bind(media_id)
            .bind(&m.error_code)
            .bind(&m.error_message)
            .bind(detail)
            .bind(m.name)
            .execute(&mut **tx)
            .await?;
            applied.milestones.push(m.name);
        }
        Ok(Some(applied))
    }

    /// [`JobStore::apply_media_in`] in a transaction of its own.
    pub async fn apply_media(
        &self,
        media_id: &str,
        update: &MediaUpdate,
        confirm: Option<Confirmation<'_>>,
    ) -> Result<Option<MediaApplied>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let applied = Self::apply_media_in(&mut tx, media_id, update, confirm).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    fn step(slot: Slot, status: &str, time: &str) -> MediaUpdate {
        MediaUpdate {
            uploaded: true,
            steps: vec![(slot, StepEntry::new(status, at(time), "test"))],
            ..Default::default()
        }
    }

    /// Applies updates in order, as the store does; returns the final status and every milestone.
    fn run(updates: &[MediaUpdate]) -> (Option<String>, Vec<&'static str>) {
        let mut status: Option<String> = None;
        let mut detail = MediaDetail::default();
        let mut names = Vec::new();
        for u in updates {
            let old = detail.clone();
            detail.merge(u);
            let new_status = derive_status(JobKind::Video, status.as_deref(), &detail, u);
            names.extend(
                milestones(status.as_deref(), new_status.as_deref(), &old, &detail)
                    .into_iter()
                    .map(|m| m.name),
            );
            status = new_status;
        }
        (status, names)
    }

    fn sequence() -> Vec<MediaUpdate> {
        vec![
            MediaUpdate {
                uploaded: true,
                ..Default::default()
            },
            step(Slot::Analysis, "success", "2026-01-01T00:00:01Z"),
            step(Slot::Snapshot, "success", "2026-01-01T00:00:02Z"),
            step(
                Slot::Stream("LD-mp4".into()),
                "success",
                "2026-01-01T00:00:03Z",
            ),
            step(
                Slot::Stream("SD-mp4".into()),
                "success",
                "2026-01-01T00:00:04Z",
            ),
            step(Slot::Transcode, "success", "2026-01-01T00:00:05Z"),
        ]
    }

    #[test]
    fn the_sequence_ends_playable_once() {
        let (status, names) = run(&sequence());
        assert_eq!(status.as_deref(), Some("Normal"));
        assert_eq!(
            names,
            vec![
                "analysed",
                "snapshot_ready",
                "stream_ready",
                "stream_ready",
                "playable"
            ]
        );
    }

    #[test]
    fn duplicates_and_any_order_give_the_same_outcome() {
        let forward = sequence();
        let mut reversed = forward.clone();
        reversed.reverse();
        let mut doubled: Vec<MediaUpdate> = forward
            .iter()
            .flat_map(|u| [u.clone(), u.clone()])
            .collect();
        doubled.rotate_left(5);
        for order in [forward.clone(), reversed, doubled] {
            let (status, mut names) = run(&order);
            assert_eq!(status.as_deref(), Some("Normal"), "{order:?}");
            names.sort_unstable();
            let mut expected = vec![
                "analysed",
                "snapshot_ready",
                "stream_ready",
                "stream_ready",
                "playable",
            ];
            expected.sort_unstable();
            assert_eq!(names, expected);
        }
    }

    #[test]
    fn a_late_failure_does_not_undo_a_success() {
        let mut updates = sequence();
        updates.push(step(Slot::Transcode, "fail", "2026-01-01T00:00:09Z"));
        updates.push(step(
            Slot::Stream("LD-mp4".into()),
            "fail",
            "2026-01-01T00:00:09Z",
        ));
        let (status, names) = run(&updates);
        assert_eq!(status.as_deref(), Some("Normal"));
        assert!(!names.contains(&"transcode_failed"), "{names:?}");
    }

    #[test]
    fn a_failed_transcode_says_why() {
        let mut entry = StepEntry::new("fail", at("2026-01-01T00:00:05Z"), "TranscodeComplete");
        entry = entry
            .with("error_code", "InvalidParameter.ResourceContentBad")
            .with("error_message", "The resource operated InputFile is bad");
        let updates = [MediaUpdate {
            uploaded: true,
            steps: vec![(Slot::Transcode, entry)],
            ..Default::default()
        }];
        let mut detail = MediaDetail::default();
        detail.merge(&updates[0]);
        let status = derive_status(JobKind::Video, Some("UploadSucc"), &detail, &updates[0]);
        assert_eq!(status.as_deref(), Some("TranscodeFail"));
        let ms = milestones(
            Some("UploadSucc"),
            status.as_deref(),
            &MediaDetail::default(),
            &detail,
        );
        let failed = ms.iter().find(|m| m.name == "transcode_failed").unwrap();
        assert_eq!(
            failed.error_code.as_deref(),
            Some("InvalidParameter.ResourceContentBad")
        );
        assert_eq!(
            failed.error_message.as_deref(),
            Some("The resource operated InputFile is bad")
        );
    }

    #[test]
    fn status_never_moves_back() {
        let detail = MediaDetail::default();
        let upload_only = MediaUpdate {
            uploaded: true,
            ..Default::default()
        };
        let status = derive_status(JobKind::Video, Some("Normal"), &detail, &upload_only);
        assert_eq!(status.as_deref(), Some("Normal"));
        let status = derive_status(JobKind::Video, Some("Transcoding"), &detail, &upload_only);
        assert_eq!(status.as_deref(), Some("Transcoding"));
    }

    #[test]
    fn images_are_normal_once_uploaded() {
        let upload_only = MediaUpdate {
            uploaded: true,
            ..Default::default()
        };
        let status = derive_status(JobKind::Image, None, &MediaDetail::default(), &upload_only);
        assert_eq!(status.as_deref(), Some("Normal"));
    }
}

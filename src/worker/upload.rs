//! Moving one job's bytes into OSS: a single PutObject for small sources, otherwise a parallel,
//! resumable multipart upload checkpointed in PostgreSQL; for an M3U8 playlist, one PutObject
//! per file it names and then the playlist. Credentials are renewed before they expire and
//! again whenever OSS refuses them; the media id and address are stored before the first byte
//! goes out, and again whenever they change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::m3u8::{self, Playlist};
use super::{JobError, Worker};
use crate::jobs::{Checkpoint, Job, JobKind, JobMessage, MediaAssignment, PartRecord};
use crate::oss::{self, ObjectTarget, OssCredentials, OssError, ProgressFn, UploadedPart};
use crate::source::{ByteStream, OpenedSource};
use crate::vod::UploadTicket;

/// How many new addresses (re-created image or attached-media assets) one attempt may use.
const ADDRESS_ATTEMPTS: u32 = 3;

/// How many times one part (or one file of a playlist) is sent before the job attempt gives up.
const PART_ATTEMPTS: u32 = 5;

/// What a job uploads.
pub(super) enum Content {
    /// One source, stored at the address's `FileName`.
    Source(OpenedSource),
    /// An M3U8 playlist's files under the address's `ObjectPrefix`, then the playlist itself.
    Playlist(Playlist),
}

impl Content {
    /// Bytes to upload: what VOD is told and `bytes_total`.
    pub fn size(&self) -> u64 {
        match self {
            Content::Source(source) => source.len(),
            Content::Playlist(playlist) => playlist.size(),
        }
    }
}

/// The credential in use, with a generation so that concurrent parts that hit an expired
/// credential trigger one renewal, not one each.
struct Credential {
    generation: u64,
    ticket: UploadTicket,
    target: ObjectTarget,
    creds: OssCredentials,
    issued_at: DateTime<Utc>,
}

impl Credential {
    fn new(generation: u64, ticket: UploadTicket) -> Arc<Self> {
        Arc::new(Self {
            generation,
            target: ObjectTarget::from_address(&ticket.address),
            creds: OssCredentials::from_upload_auth(&ticket.auth),
            issued_at: Utc::now(),
            ticket,
        })
    }

    /// Renew when less than a fifth of the lifetime (at most `cap`) is left.
    fn needs_renewal(&self, now: DateTime<Utc>, cap: Duration) -> bool {
        let lifetime = (self.ticket.auth.expires_at - self.issued_at)
            .to_std()
            .unwrap_or_default();
        let margin = (lifetime / 5).min(cap);
        self.ticket.auth.expires_at - now < chrono::Duration::from_std(margin).unwrap_or_default()
    }
}

/// Per-job upload state shared by the requests in flight.
pub(super) struct Session<'a> {
    worker: &'a Worker,
    job: &'a Job,
    token: i64,
    message: &'a JobMessage,
    size: u64,
    current: tokio::sync::RwLock<Arc<Credential>>,
    renewing: tokio::sync::Mutex<()>,
    progress: Arc<Progress>,
}

/// Bytes of finished requests plus bytes of requests in flight, by tracker (a part number,
/// or a playlist file's position).
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    in_flight: Mutex<HashMap<u32, u64>>,
}

impl Progress {
    fn total(&self) -> u64 {
        let in_flight: u64 = self.in_flight.lock().unwrap().values().sum();
        self.done.load(Ordering::Relaxed) + in_flight
    }

    fn tracker(self: &Arc<Self>, part: u32) -> ProgressFn {
        let progress = self.clone();
        Arc::new(move |bytes| {
            progress.in_flight.lock().unwrap().insert(part, bytes);
        })
    }

    fn finish(&self, part: u32, size: u64) {
        self.in_flight.lock().unwrap().remove(&part);
        self.done.fetch_add(size, Ordering::Relaxed);
    }

    fn abandon(&self, part: u32) {
        self.in_flight.lock().unwrap().remove(&part);
    }

    fn reset(&self, done: u64) {
        self.in_flight.lock().unwrap().clear();
        self.done.store(done, Ordering::Relaxed);
    }
}

/// What an attempt at the object ended with.
enum Outcome {
    Done,
    /// Images and attached media get a new asset, and so a new object key, when their
    /// credential runs out: the upload starts again there.
    AddressChanged,
}

impl<'a> Session<'a> {
    /// Stores `ticket`'s media id and address, so that a crash from here on leaves the job
    /// pointing at its asset, then opens the session; `size` is [`Content::size`].
    pub async fn start(
        worker: &'a Worker,
        job: &'a Job,
        token: i64,
        message: &'a JobMessage,
        size: u64,
        ticket: UploadTicket,
    ) -> Result<Self, JobError> {
        let first = Credential::new(0, ticket);
        let session = Self {
            worker,
            job,
            token,
            message,
            size,
            current: tokio::sync::RwLock::new(first.clone()),
            renewing: tokio::sync::Mutex::new(()),
            progress: Arc::new(Progress::default()),
        };
        session.store_media(&first.ticket).await?;
        Ok(session)
    }

    /// The one media write of every upload, first or after a re-created asset: batched with
    /// other jobs' ([`super::writes::GroupWrites`]).
    async fn store_media(&self, ticket: &UploadTicket) -> Result<(), JobError> {
        self.worker
            .writes
            .set_media(MediaAssignment {
                job_id: self.job.job_id.clone(),
                token: self.token,
                media_id: ticket.media_id.clone(),
                address: ticket.address.clone(),
                bytes_total: Some(self.size),
            })
            .await?;
        Ok(())
    }

    /// Writes progress to the database at a bounded rate while it is polled (alongside the
    /// upload, in the job's own task); never finishes.
    pub async fn write_progress(&self) {
        let every = self.worker.config.progress_interval;
        let mut last = 0;
        loop {
            tokio::time::sleep(every).await;
            let now = self.progress.total();
            if now != last {
                let _ = self
                    .worker
                    .store
                    .set_progress(&self.job.job_id, self.token, now)
                    .await;
                last = now;
            }
        }
    }

    /// The credential to sign the next request with, renewed first if it is about to expire.
    async fn credential(&self) -> Result<Arc<Credential>, JobError> {
        let current = self.current.read().await.clone();
        if current.needs_renewal(Utc::now(), self.worker.config.credential_margin) {
            return self
                .renew(current.generation, "the credential is about to expire")
                .await;
        }
        Ok(current)
    }

    /// Renews the credential unless another part already did since `seen_generation`.
    async fn renew(&self, seen_generation: u64, why: &str) -> Result<Arc<Credential>, JobError> {
        let _one_at_a_time = self.renewing.lock().await;
        let current = self.current.read().await.clone();
        if current.generation != seen_generation {
            return Ok(current);
        }
        let ticket = match self.job.kind() {
            JobKind::Video => {
                self.worker
                    .vod
                    .refresh_upload_video(&current.ticket.media_id)
                    .await?
            }
            JobKind::Image | JobKind::AttachedMedia => {
                let ticket = self
                    .worker
                    .create_asset(self.job.kind(), self.message, self.size)
                    .await?;
                self.store_media(&ticket).await?;
                ticket
            }
        };
        tracing::info!(
            media_id = %ticket.media_id,
            expires_at = %ticket.auth.expires_at,
            reason = why,
            "renewed the upload credential"
        );
        let next = Credential::new(current.generation + 1, ticket);
        *self.current.write().await = next.clone();
        Ok(next)
    }

    /// Uploads `content` (the one [`Self::start`] was sized for), restarting on a new address
    /// when a non-video asset had to be re-created.
    pub async fn run(&self, content: &Content) -> Result<(), JobError> {
        for _ in 0..ADDRESS_ATTEMPTS {
            let outcome = match content {
                Content::Source(source) if self.size >= self.worker.config.multipart_threshold => {
                    self.multipart(source).await?
                }
                Content::Source(source) => self.single_put(source).await?,
                Content::Playlist(playlist) => self.playlist(playlist).await?,
            };
            match outcome {
                Outcome::Done => return Ok(()),
                Outcome::AddressChanged => {
                    tracing::warn!(
                        "the asset was re-created with a new address; uploading again there"
                    )
                }
            }
        }
        Err(JobError::CredentialOutrun {
            kind: self.job.kind().as_str(),
            attempts: ADDRESS_ATTEMPTS,
        })
    }

    async fn single_put(&self, source: &OpenedSource) -> Result<Outcome, JobError> {
        let mut renewed = false;
        let first = self.current.read().await.clone();
        loop {
            let credential = self.credential().await?;
            if credential.target != first.target {
                return Ok(Outcome::AddressChanged);
            }
            let body = source
                .range(0, self.size)
                .await
                .map_err(|e| JobError::SourceRead(e.to_string()))?;
            self.progress.reset(0);
            let result = self
                .worker
                .oss
                .put_object_stream(
                    &credential.target,
                    &credential.creds,
                    body,
                    self.size,
                    None,
                    Some(self.progress.tracker(1)),
                )
                .await;
            match result {
                Ok(output) => {
                    self.progress.finish(1, output.size);
                    tracing::info!(bytes = output.size, crc64 = output.crc64, etag = %output.etag, "object stored with PutObject; CRC-64 verified");
                    return Ok(Outcome::Done);
                }
                Err(e) if e.is_credential_expired() && !renewed => {
                    tracing::warn!(code = e.code(), "OSS refused the credential; renewing it");
                    let renewed_to = self.renew(credential.generation, e.code()).await?;
                    renewed = true;
                    if renewed_to.target != first.target {
                        return Ok(Outcome::AddressChanged);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn multipart(&self, source: &OpenedSource) -> Result<Outcome, JobError> {
        let credential = self.credential().await?;
        let start_target = credential.target.clone();
        let part_size = oss::determine_part_size(self.size, self.worker.config.part_size);
        let part_count = self.size.div_ceil(part_size).max(1) as u32;
        let checkpoints = &self.worker.checkpoints;
        let job_id = &self.job.job_id;

        // Resume what the checkpoint describes, if it still describes this upload.
        let mut done: BTreeMap<u32, PartRecord> = BTreeMap::new();
        let mut upload_id = None;
        if let Some(cp) = checkpoints.load(job_id).await.map_err(JobError::store)? {
            let same = cp.media_id == credential.ticket.media_id
                && cp.bucket == credential.target.bucket
                && cp.object_key == credential.target.key
                && cp.file_size == self.size
                && cp.part_size == part_size
                && cp.source_version == source.version();
            if !same {
                tracing::warn!(upload_id = %cp.upload_id, "the checkpoint describes another upload (source or address changed); starting over");
                self.abort_quietly(&cp).await;
                checkpoints.delete(job_id).await.map_err(JobError::store)?;
            } else {
                match self.reconcile(&credential, &cp).await? {
                    Some(parts) => {
                        tracing::info!(upload_id = %cp.upload_id, parts_done = parts.len(), parts_total = part_count, "resuming the multipart upload");
                        done = parts;
                        upload_id = Some(cp.upload_id.clone());
                    }
                    None if self.already_complete(&credential, &cp).await => {
                        // Completed before the last worker could record it.
                        tracing::info!(upload_id = %cp.upload_id, "the multipart upload was already completed; the object's size and CRC-64 match the checkpoint");
                        checkpoints.delete(job_id).await.map_err(JobError::store)?;
                        self.progress.reset(self.size);
                        return Ok(Outcome::Done);
                    }
                    None => {
                        let note = serde_json::json!({
                            "multipart": "upload id no longer exists in OSS (NoSuchUpload); starting a new multipart upload",
                            "old_upload_id": cp.upload_id,
                        });
                        self.worker.store.note(job_id, self.token, note).await?;
                        checkpoints.delete(job_id).await.map_err(JobError::store)?;
                    }
                }
            }
        }
        let upload_id = match upload_id {
            Some(id) => id,
            None => {
                let id = self
                    .worker
                    .oss
                    .initiate_multipart_upload(&credential.target, &credential.creds, None)
                    .await?;
                checkpoints
                    .start(
                        job_id,
                        self.token,
                        &Checkpoint {
                            media_id: credential.ticket.media_id.clone(),
                            upload_id: id.clone(),
                            bucket: credential.target.bucket.clone(),
                            object_key: credential.target.key.clone(),
                            part_size,
                            part_count,
                            file_size: self.size,
                            source_version: source.version(),
                            parts: vec![],
                        },
                    )
                    .await?;
                tracing::info!(upload_id = %id, part_size, part_count, "started a multipart upload");
                id
            }
        };
        self.progress.reset(done.values().map(|p| p.size).sum());

        let missing: Vec<u32> = (1..=part_count).filter(|n| !done.contains_key(n)).collect();
        let parallelism = self.worker.config.part_parallelism.max(1);
        let mut uploads = futures_util::stream::iter(missing)
            .map(|n| self.upload_part(source, &upload_id, n, part_size, &start_target))
            .buffer_unordered(parallelism);
        while let Some(result) = uploads.next().await {
            match result? {
                Some(part) => {
                    done.insert(part.part_number, part);
                }
                None => return Ok(Outcome::AddressChanged),
            }
        }
        drop(uploads);

        let parts: Vec<UploadedPart> = done
            .values()
            .map(|p| UploadedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
                size: p.size,
                crc64: p.crc64,
            })
            .collect();
        let credential = self.credential().await?;
        if credential.target != start_target {
            return Ok(Outcome::AddressChanged);
        }
        let completed = match self
            .worker
            .oss
            .complete_multipart_upload(&credential.target, &credential.creds, &upload_id, &parts)
            .await
        {
            Ok(c) => c,
            Err(e) if e.is_credential_expired() => {
                let credential = self.renew(credential.generation, e.code()).await?;
                if credential.target != start_target {
                    return Ok(Outcome::AddressChanged);
                }
                self.worker
                    .oss
                    .complete_multipart_upload(
                        &credential.target,
                        &credential.creds,
                        &upload_id,
                        &parts,
                    )
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        checkpoints.delete(job_id).await.map_err(JobError::store)?;
        tracing::info!(%upload_id, parts = parts.len(), crc64 = ?completed.crc64, "multipart upload completed; whole-object CRC-64 verified");
        Ok(Outcome::Done)
    }

    /// Whether the object already is what the checkpoint's parts make: every part recorded,
    /// and OSS reports the same size and combined CRC-64.
    async fn already_complete(&self, credential: &Credential, cp: &Checkpoint) -> bool {
        if cp.parts.len() as u32 != cp.part_count {
            return false;
        }
        let expected = cp
            .parts
            .iter()
            .fold(0, |crc, p| crate::crc64::combine(crc, p.crc64, p.size));
        match self
            .worker
            .oss
            .head_object(&credential.target, &credential.creds)
            .await
        {
            Ok(meta) => meta.size == cp.file_size && meta.crc64 == Some(expected),
            Err(_) => false,
        }
    }

    /// Checkpoint ∩ ListParts: the parts that need not be sent again. `None` when OSS no longer
    /// knows the upload id.
    async fn reconcile(
        &self,
        credential: &Credential,
        cp: &Checkpoint,
    ) -> Result<Option<BTreeMap<u32, PartRecord>>, JobError> {
        let listed = match self
            .worker
            .oss
            .list_parts(&credential.target, &credential.creds, &cp.upload_id)
            .await
        {
            Ok(listed) => listed,
            Err(e) if e.code() == "NoSuchUpload" => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let listed: HashMap<u32, &oss::ListedPart> =
            listed.iter().map(|p| (p.part_number, p)).collect();
        let mut kept = BTreeMap::new();
        let mut stale = Vec::new();
        for part in &cp.parts {
            match listed.get(&part.part_number) {
                Some(l)
                    if l.etag.eq_ignore_ascii_case(&part.etag)
                        && l.size == part.size
                        && l.crc64.is_none_or(|c| c == part.crc64) =>
                {
                    kept.insert(part.part_number, part.clone());
                }
                _ => stale.push(part.part_number),
            }
        }
        if !stale.is_empty() {
            tracing::warn!(parts = ?stale, "OSS does not hold these checkpointed parts as recorded; sending them again");
            self.worker
                .checkpoints
                .forget_parts(&self.job.job_id, &stale)
                .await
                .map_err(JobError::store)?;
        }
        Ok(Some(kept))
    }

    /// One part, sent by [`Self::send`] and checkpointed. `Ok(None)`: the address changed, the
    /// upload must start over.
    async fn upload_part(
        &self,
        source: &OpenedSource,
        upload_id: &str,
        part_number: u32,
        part_size: u64,
        start_target: &ObjectTarget,
    ) -> Result<Option<PartRecord>, JobError> {
        let offset = (part_number as u64 - 1) * part_size;
        let len = part_size.min(self.size - offset);
        let request = Request::Part {
            upload_id,
            part_number,
        };
        let body = Body::Range {
            source,
            offset,
            len,
        };
        let Some(stored) = self.send(request, &body, part_number, start_target).await? else {
            return Ok(None);
        };
        let record = PartRecord {
            part_number,
            etag: stored.etag,
            size: stored.size,
            crc64: stored.crc64,
        };
        self.worker
            .checkpoints
            .record_part(&self.job.job_id, self.token, &record)
            .await?;
        metrics::counter!("vod_ingest_parts_uploaded_total").increment(1);
        Ok(Some(record))
    }

    /// An M3U8 playlist: its files a few at a time, then, only once all of them are stored,
    /// the playlist (VOD reports the upload complete when it arrives). Each file is one
    /// PutObject sent like a part ([`Self::send`]); none is checkpointed.
    async fn playlist(&self, playlist: &Playlist) -> Result<Outcome, JobError> {
        let credential = self.credential().await?;
        let start_target = credential.target.clone();
        let keys = playlist.file_keys(&credential.ticket.address)?;
        self.progress.reset(0);
        let files = playlist.files();
        let parallelism = self.worker.config.part_parallelism.max(1);
        let (keys, start) = (&keys, &start_target);
        // Over indices, for the reason `m3u8::open_all` gives.
        let mut uploads = futures_util::stream::iter(0..files.len())
            .map(|i| {
                let request = Request::Object {
                    key: &keys[i],
                    content_type: None,
                };
                let body = Body::Range {
                    source: &files[i],
                    offset: 0,
                    len: files[i].len(),
                };
                async move { self.send(request, &body, i as u32 + 1, start).await }
            })
            .buffer_unordered(parallelism);
        while let Some(result) = uploads.next().await {
            if result?.is_none() {
                return Ok(Outcome::AddressChanged);
            }
        }
        drop(uploads);
        let request = Request::Object {
            key: &start_target.key,
            content_type: Some(m3u8::PLAYLIST_CONTENT_TYPE),
        };
        let body = Body::Bytes(playlist.rewritten().clone());
        let tracker = files.len() as u32 + 1;
        if self
            .send(request, &body, tracker, &start_target)
            .await?
            .is_none()
        {
            return Ok(Outcome::AddressChanged);
        }
        tracing::info!(
            files = files.len(),
            "M3U8 playlist and its files stored; CRC-64 verified for each"
        );
        Ok(Outcome::Done)
    }

    /// Sends one request with the current credential: again at once when it arrived corrupted,
    /// after a delay on a retryable error, after renewing a credential OSS refused; at most
    /// [`PART_ATTEMPTS`] times. Progress is tracked under `tracker`. `Ok(None)`: the address
    /// changed, the upload must start over.
    async fn send(
        &self,
        request: Request<'_>,
        body: &Body<'_>,
        tracker: u32,
        start_target: &ObjectTarget,
    ) -> Result<Option<Stored>, JobError> {
        let len = body.len();
        let mut last_error = None;
        for attempt in 1..=PART_ATTEMPTS {
            let credential = self.credential().await?;
            if &credential.target != start_target {
                return Ok(None);
            }
            let stream = body.stream().await?;
            let progress = Some(self.progress.tracker(tracker));
            let oss = &self.worker.oss;
            let result = match request {
                Request::Part {
                    upload_id,
                    part_number,
                } => oss
                    .upload_part(
                        &credential.target,
                        &credential.creds,
                        upload_id,
                        part_number,
                        stream,
                        len,
                        progress,
                    )
                    .await
                    .map(|p| Stored {
                        etag: p.etag,
                        size: p.size,
                        crc64: p.crc64,
                    }),
                Request::Object { key, content_type } => {
                    let target = ObjectTarget {
                        key: key.to_owned(),
                        ..credential.target.clone()
                    };
                    oss.put_object_stream(
                        &target,
                        &credential.creds,
                        stream,
                        len,
                        content_type,
                        progress,
                    )
                    .await
                    .map(|o| {
                        tracing::debug!(%key, bytes = o.size, crc64 = o.crc64, "object stored");
                        Stored {
                            etag: o.etag,
                            size: o.size,
                            crc64: o.crc64,
                        }
                    })
                }
            };
            match result {
                Ok(stored) => {
                    self.progress.finish(tracker, len);
                    return Ok(Some(stored));
                }
                Err(e) => {
                    self.progress.abandon(tracker);
                    if e.is_credential_expired() {
                        tracing::warn!(%request, code = e.code(), "OSS refused the credential; renewing it");
                        self.renew(credential.generation, e.code()).await?;
                    } else if e.code() == "CrcMismatch" {
                        tracing::warn!(%request, attempt, error = %e, "arrived corrupted; sending it again");
                        metrics::counter!("vod_ingest_part_crc_mismatches_total").increment(1);
                    } else if e.is_retryable() {
                        let delay = super::retry_delay(Duration::from_millis(200), attempt as i32);
                        tracing::warn!(%request, attempt, error = %e, retry_in = ?delay, "failed; retrying");
                        tokio::time::sleep(delay).await;
                    } else {
                        return Err(request.failed(e));
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(match last_error {
            Some(e) => request.failed(e),
            None => JobError::Corrupt(format!("{request}: retries exhausted")),
        })
    }

    async fn abort_quietly(&self, cp: &Checkpoint) {
        let credential = self.current.read().await.clone();
        let target = ObjectTarget {
            endpoint: credential.target.endpoint.clone(),
            bucket: cp.bucket.clone(),
            key: cp.object_key.clone(),
        };
        if let Err(e) = self
            .worker
            .oss
            .abort_multipart_upload(&target, &credential.creds, &cp.upload_id)
            .await
        {
            tracing::info!(upload_id = %cp.upload_id, error = %e, "could not abort the old multipart upload (it expires on its own)");
        }
    }
}

/// One request [`Session::send`] sends.
#[derive(Clone, Copy)]
enum Request<'r> {
    /// A part of a multipart upload.
    Part {
        upload_id: &'r str,
        part_number: u32,
    },
    /// A whole object (a playlist's file, or the playlist), at `key` beside the address.
    Object {
        key: &'r str,
        content_type: Option<&'static str>,
    },
}

impl Request<'_> {
    /// The job's error when OSS refused for good: a part names its number.
    fn failed(self, source: OssError) -> JobError {
        match self {
            Request::Part { part_number, .. } => JobError::Part {
                part_number,
                source,
            },
            Request::Object { .. } => JobError::Oss(source),
        }
    }
}

impl std::fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Part { part_number, .. } => write!(f, "part {part_number}"),
            Request::Object { key, .. } => write!(f, "object {key}"),
        }
    }
}

/// What a request's bytes are, read afresh for every attempt.
enum Body<'a> {
    Range {
        source: &'a OpenedSource,
        offset: u64,
        len: u64,
    },
    Bytes(Bytes),
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Range { len, .. } => *len,
            Body::Bytes(b) => b.len() as u64,
        }
    }

    async fn stream(&self) -> Result<ByteStream, JobError> {
        match self {
            Body::Range {
                source,
                offset,
                len,
            } => source
                .range(*offset, *len)
                .await
                .map_err(|e| JobError::SourceRead(e.to_string())),
            Body::Bytes(b) => {
                let chunk: std::io::Result<Bytes> = Ok(b.clone());
                Ok(Box::pin(futures_util::stream::once(async move { chunk })))
            }
        }
    }
}

/// What OSS stored for a request.
struct Stored {
    etag: String,
    size: u64,
    crc64: u64,
}

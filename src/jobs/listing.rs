//! Read-side queries for operators (the console): filtered pages of jobs, the overview's
//! counts and throughput, the jobs waiting longest, and the callbacks received for a job's
//! media. They read the same tables, through the same [`JobStore`], as the CLI.
//!
//! Job pages use keyset pagination (newest first, `(created_at, job_id) < cursor`), which
//! the indexes of `migrations/20261210000001_console_indexes.sql` serve as range scans: a page
//! deep in a table of millions costs what the first one does, unlike `OFFSET`.

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::model::{JobKind, JobState, Origin};
use super::store::{Job, JobStore};

/// Which jobs a page shows. Every field narrows; the default is every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<JobKind>,
    pub origin: Option<Origin>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_until: Option<DateTime<Utc>>,
    /// A job id or media id (exact), or a piece of a job id or title (at least
    /// [`MIN_SUBSTRING_SEARCH`] characters, case-insensitive).
    pub search: Option<String>,
}

/// Shorter search terms match only whole job ids and media ids: trigram indexes need three
/// characters, and a one-letter substring would match most of the table anyway.
pub const MIN_SUBSTRING_SEARCH: usize = 3;

/// A place in the list: a job's position (newest first, by `created_at`, then `job_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub job_id: String,
}

impl Cursor {
    /// `<microseconds since the epoch>_<job id>`, split at the first `_` (the number has
    /// none), so any job id survives the round trip.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.job_id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (micros, job_id) = text.split_once('_')?;
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some(Self {
            created_at,
            job_id: job_id.to_owned(),
        })
    }
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart<'a> {
    /// The newest matching jobs.
    Newest,
    /// The jobs just older than this one (the next page).
    OlderThan(&'a Cursor),
    /// The jobs just newer than this one (the previous page); the newest page when fewer
    /// than a page are newer.
    NewerThan(&'a Cursor),
}

impl<'a> From<Option<&'a Cursor>> for PageStart<'a> {
    fn from(after: Option<&'a Cursor>) -> Self {
        after.map_or(PageStart::Newest, PageStart::OlderThan)
    }
}

/// One page of jobs, newest first, and where its neighbours start.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Older jobs follow after this one (`None`: this is the last page).
    pub next: Option<Cursor>,
    /// Newer jobs come before this one (`None`: this is the first page).
    pub prev: Option<Cursor>,
}

fn cursor_of(job: &Job) -> Cursor {
    Cursor {
        created_at: job.created_at,
        job_id: job.job_id.clone(),
    }
}

/// Finished work in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinuteStats {
    pub minute: DateTime<Utc>,
    pub completed: i64,
    pub failed: i64,
    /// Bytes that reached VOD's storage: a worker's job counts when it is `uploaded`, a
    /// client's when VOD reports it (it skips `uploaded` or passes through it).
    pub bytes: i64,
}

/// A job being uploaded by a worker now.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ActiveUpload {
    pub job_id: String,
    pub kind: String,
    pub title: Option<String>,
    pub bytes_uploaded: i64,
    pub bytes_total: Option<i64>,
    /// When the current attempt's worker claimed the job.
    pub started_at: Option<DateTime<Utc>>,
    /// The last progress write.
    pub updated_at: DateTime<Utc>,
    pub attempts: i32,
}

impl ActiveUpload {
    /// Bytes per second since the attempt began (resumed bytes included).
    pub fn rate(&self) -> Option<f64> {
        let secs = (self.updated_at - self.started_at?).num_milliseconds() as f64 / 1000.0;
        (secs > 0.0 && self.bytes_uploaded > 0).then(|| self.bytes_uploaded as f64 / secs)
    }
}

/// The job that has gone longest without changing, in one non-final state.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Waiting {
    pub state: String,
    pub jobs: i64,
    pub job_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// A callback as received (`vod_events`): what an operator reads, the raw body included.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReceivedEvent {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub verification: String,
    pub event_type: Option<String>,
    pub media_id: Option<String>,
    pub job_id: Option<String>,
    pub applied: bool,
    pub body: Vec<u8>,
}

const NON_FINAL: [JobState; 5] = [
    JobState::Queued,
    JobState::AwaitingUpload,
    JobState::Uploading,
    JobState::Retrying,
    JobState::Uploaded,
];

/// `%`, `_` and `\` stand for themselves in a LIKE pattern built from `term`.
fn like_pattern(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 2);
    escaped.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// The page query for `filter`, with only the conditions it uses: a statement per shape,
/// so PostgreSQL plans each with the index that fits instead of one generic plan for all.
fn page_query<'a>(
    select: &'a str,
    filter: &'a JobFilter,
    start: PageStart<'a>,
    limit: i64,
) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(select);
    q.push(" FROM ingest_jobs WHERE true");
    if let Some(state) = filter.state {
        q.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(kind) = filter.kind {
        q.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(origin) = filter.origin {
        q.push(" AND origin = ").push_bind(origin.as_str());
    }
    if let Some(from) = filter.created_from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(until) = filter.created_until {
        q.push(" AND created_at < ").push_bind(until);
    }
    if let Some(term) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        q.push(" AND (job_id = ")
            .push_bind(term)
            .push(" OR media_id = ")
            .push_bind(term);
        if term.chars().count() >= MIN_SUBSTRING_SEARCH {
            let pattern = like_pattern(term);
            q.push(" OR job_id ILIKE ")
                .push_bind(pattern.clone())
                .push(" OR title ILIKE ")
                .push_bind(pattern);
        }
        q.push(")");
    }
    // The same index serves both directions, read forwards or backwards.
    let (cursor, order) = match start {
        PageStart::Newest => (None, " ORDER BY created_at DESC, job_id DESC LIMIT "),
        PageStart::OlderThan(c) => (
            Some((c, " AND (created_at, job_id) < (")),
            " ORDER BY created_at DESC, job_id DESC LIMIT ",
        ),
        PageStart::NewerThan(c) => (
            Some((c, " AND (created_at, job_id) > (")),
            " ORDER BY created_at ASC, job_id ASC LIMIT ",
        ),
    };
    if let Some((cursor, condition)) = cursor {
        q.push(condition)
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.job_id.as_str())
            .push(")");
    }
    q.push(order).push_bind(limit);
    q
}

impl JobStore {
    /// Up to `limit` jobs matching `filter`, newest first, from `start` (an
    /// `Option<&Cursor>` means "older than").
    pub async fn page(
        &self,
        filter: &JobFilter,
        start: impl Into<PageStart<'_>>,
        limit: i64,
    ) -> Result<JobPage, sqlx::Error> {
        let limit = limit.clamp(1, 500);
        let mut start = start.into();
        let (mut jobs, mut beyond) = self.fetch_page(filter, start, limit).await?;
        if matches!(start, PageStart::NewerThan(_)) && !beyond {
            // Fewer than a page are newer: show the newest page, full.
            start = PageStart::Newest;
            (jobs, beyond) = self.fetch_page(filter, start, limit).await?;
        }
        let (next, prev) = match start {
            PageStart::Newest => (beyond.then(|| jobs.last().map(cursor_of)).flatten(), None),
            // Past the end the page is empty, and what is newer starts at the cursor itself.
            PageStart::OlderThan(c) => (
                beyond.then(|| jobs.last().map(cursor_of)).flatten(),
                Some(jobs.first().map_or_else(|| c.clone(), cursor_of)),
            ),
            PageStart::NewerThan(_) => {
                jobs.reverse();
                (jobs.last().map(cursor_of), jobs.first().map(cursor_of))
            }
        };
        Ok(JobPage { jobs, next, prev })
    }

    /// Up to `limit` jobs from `start` in the order of its direction, and whether more lie
    /// beyond them.
    async fn fetch_page(
        &self,
        filter: &JobFilter,
        start: PageStart<'_>,
        limit: i64,
    ) -> Result<(Vec<Job>, bool), sqlx::Error> {
        // One more than asked tells whether there is a page beyond this one.
        let mut q = page_query("SELECT *", filter, start, limit + 1);
        let mut jobs: Vec<Job> = q.build_query_as().fetch_all(self.pool()).await?;
        let beyond = jobs.len() as i64 > limit;
        jobs.truncate(limit as usize);
        Ok((jobs, beyond))
    }

    /// PostgreSQL's plan for [`JobStore::page`] with these arguments (`EXPLAIN` output, one
    /// line per row): how a slow page is diagnosed, and how the tests check the indexes serve.
    pub async fn explain_page(
        &self,
        filter: &JobFilter,
        start: impl Into<PageStart<'_>>,
        limit: i64,
    ) -> Result<String, sqlx::Error> {
        let mut q = page_query(
            "EXPLAIN SELECT *",
            filter,
            start.into(),
            limit.clamp(1, 500) + 1,
        );
        let lines: Vec<String> = q.build_query_scalar().fetch_all(self.pool()).await?;
        Ok(lines.join("\n"))
    }

    /// Jobs completed and failed, and bytes stored, per minute over the last `minutes`
    /// minutes (the current one included), oldest first, empty minutes as zeros.
    pub async fn throughput(&self, minutes: i64) -> Result<Vec<MinuteStats>, sqlx::Error> {
        let now = Utc::now();
        let current = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
        let first = current - Duration::minutes(minutes - 1);
        // The IN list repeats the partial index's predicate so the planner can use it.
        let rows: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
            "SELECT date_trunc('minute', e.at) AS minute,
                    count(*) FILTER (WHERE e.to_state = 'completed'),
                    count(*) FILTER (WHERE e.to_state = 'failed'),
                    COALESCE(sum(COALESCE(j.bytes_total, j.bytes_uploaded)) FILTER (
                        WHERE e.to_state = 'uploaded'
                           OR (e.to_state = 'completed' AND e.from_state IS DISTINCT FROM 'uploaded')
                    ), 0)::bigint
             FROM ingest_job_events e JOIN ingest_jobs j USING (job_id)
             WHERE e.to_state IN ('uploaded', 'completed', 'failed', 'cancelled')
               AND e.at >= $1
               AND e.from_state IS DISTINCT FROM e.to_state
             GROUP BY 1 ORDER BY 1",
        )
        .bind(first)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<MinuteStats> = (0..minutes)
            .map(|i| MinuteStats {
                minute: first + Duration::minutes(i),
                completed: 0,
                failed: 0,
                bytes: 0,
            })
            .collect();
        for (minute, completed, failed, bytes) in rows {
            let index = (minute - first).num_minutes();
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) {
                *slot = MinuteStats {
                    minute,
                    completed,
                    failed,
                    bytes,
                };
            }
        }
        Ok(out)
    }

    /// The jobs workers are uploading now, longest-running first.
    pub async fn active_uploads(&self, limit: i64) -> Result<Vec<ActiveUpload>, sqlx::Error> {
        sqlx::query_as(
            "SELECT j.job_id, j.kind, j.title, j.bytes_uploaded, j.bytes_total, j.updated_at,
                    j.attempts,
                    (SELECT max(e.at) FROM ingest_job_events e
                      WHERE e.job_id = j.job_id AND e.to_state = 'uploading'
                        AND e.from_state IS DISTINCT FROM 'uploading') AS started_at
             FROM ingest_jobs j WHERE j.state = 'uploading'
             ORDER BY j.created_at, j.job_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// For each non-final state: how many jobs are in it, and the one that has gone longest
    /// without a change (for `uploading`, without progress): where to look for stuck work.
    pub async fn longest_waiting(&self) -> Result<Vec<Waiting>, sqlx::Error> {
        let states: Vec<&str> = NON_FINAL.iter().map(|s| s.as_str()).collect();
        sqlx::query_as(
            "SELECT s.state,
                    (SELECT count(*) FROM ingest_jobs c WHERE c.state = s.state) AS jobs,
                    o.job_id, o.updated_at AS since
             FROM unnest($1::text[]) WITH ORDINALITY AS s(state, n)
             LEFT JOIN LATERAL (
                 SELECT job_id, updated_at FROM ingest_jobs j
                 WHERE j.state = s.state ORDER BY j.updated_at LIMIT 1
             ) o ON true
             ORDER BY s.n",
        )
        .bind(&states)
        .fetch_all(self.pool())
        .await
    }

    /// The callbacks received for any of `media_ids` (a job's media and the ones it
    /// superseded), oldest first.
    pub async fn received_events(
        &self,
        media_ids: &[String],
        limit: i64,
    ) -> Result<Vec<ReceivedEvent>, sqlx::Error> {
        if media_ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_as(
            "SELECT id, received_at, verification, event_type, media_id, job_id, applied, body
             FROM vod_events WHERE media_id = ANY($1) ORDER BY id LIMIT $2",
        )
        .bind(media_ids)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Whether PostgreSQL answers (the console's health panel).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(self.pool())
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_the_round_trip() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap(),
            job_id: "sts:a_b.c".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("nonsense"), None);
        assert_eq!(Cursor::decode("12x_job"), None);
    }

    #[test]
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}

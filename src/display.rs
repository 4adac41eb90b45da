//! How jobs are shown to operators: the CLI and the demo print through these.

use crate::jobs::{Job, JobEvent, JobKind, JobState, MediaDetail};

pub fn describe_event(e: &JobEvent) -> String {
    let mut line = format!(
        "{}  {} -> {}",
        e.at.format("%H:%M:%S%.3f"),
        e.from_state.as_deref().unwrap_or("-"),
        e.to_state
    );
    if let Some(m) = &e.media_id {
        line.push_str(&format!("  media_id={m}"));
    }
    if let Some(m) = &e.milestone {
        line = format!("{}  media.{m}", e.at.format("%H:%M:%S%.3f"),);
    }
    if let Some(c) = &e.error_code {
        line.push_str(&format!(
            "  error={c}: {}",
            e.error_message.as_deref().unwrap_or("")
        ));
    }
    if let Some(d) = &e.detail {
        line.push_str(&format!("  {d}"));
    }
    line
}

/// Bytes per second of the current (or last) attempt: from its claim to the last progress
/// write, or to `uploaded`.
pub fn throughput(job: &Job, history: &[JobEvent]) -> Option<f64> {
    let started = history
        .iter()
        .rev()
        .find(|e| e.to_state == "uploading" && e.from_state.as_deref() != Some("uploading"))?
        .at;
    let until = job.uploaded_at.unwrap_or(job.updated_at);
    let secs = (until - started).num_milliseconds() as f64 / 1000.0;
    (secs > 0.0 && job.bytes_uploaded > 0).then(|| job.bytes_uploaded as f64 / secs)
}

/// `[#######-------]  45.0%  12.3 MiB / 27.3 MiB`
pub fn progress_bar(done: i64, total: Option<i64>) -> String {
    let width = 24;
    match total {
        Some(total) if total > 0 => {
            let ratio = (done as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (ratio * width as f64).round() as usize;
            format!(
                "[{}{}] {:5.1}%  {} / {}",
                "#".repeat(filled),
                "-".repeat(width - filled),
                ratio * 100.0,
                human_bytes(done),
                human_bytes(total)
            )
        }
        _ => format!("[{}] {}", "?".repeat(width), human_bytes(done)),
    }
}

pub fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

pub fn print_job(job: &Job, history: &[JobEvent]) {
    println!("job_id:     {}", job.job_id);
    println!("kind:       {}", job.kind);
    println!("state:      {}", job.state);
    println!("media_id:   {}", job.media_id.as_deref().unwrap_or("-"));
    if !job.superseded_media_ids.is_empty() {
        println!("superseded: {}", job.superseded_media_ids.join(", "));
    }
    if let Some(line) = media_line(job) {
        println!("media:      {line}");
    }
    println!("source:     {}", job.source);
    match &job.api_key_id {
        Some(key) => println!("origin:     {} (API key {key})", job.origin),
        None => println!("origin:     {}", job.origin),
    }
    println!(
        "progress:   {}{}",
        progress_bar(job.bytes_uploaded, job.bytes_total),
        throughput(job, history)
            .map(|r| format!("  {}/s", human_bytes(r as i64)))
            .unwrap_or_default()
    );
    println!("attempts:   {}/{}", job.attempts, job.max_attempts);
    if let Some(code) = &job.last_error_code {
        println!(
            "last error: {code}: {}",
            job.last_error_message.as_deref().unwrap_or("")
        );
    }
    println!(
        "created:    {}",
        job.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!(
        "updated:    {}",
        job.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if !history.is_empty() {
        println!("history:");
        for e in history {
            println!("  {}", describe_event(e));
        }
    }
}

/// VOD's side after the upload in one line: `Normal (playable): LD-mp4 SD-mp4`,
/// `TranscodeFail: InvalidParameter.ResourceContentBad: ...`, `Transcoding: analysed, snapshot, 1/3 streams`.
pub fn media_line(job: &Job) -> Option<String> {
    let status = job.media_status.as_deref()?;
    let detail = MediaDetail::from_json(&job.media_detail);
    let streams: Vec<&str> = detail
        .streams
        .iter()
        .filter(|(_, s)| s.succeeded())
        .map(|(k, _)| k.as_str())
        .collect();
    let mut steps = Vec::new();
    if let Some(a) = &detail.analysis {
        steps.push(if a.succeeded() {
            "analysed".to_owned()
        } else {
            "analysis failed".to_owned()
        });
    }
    if detail.snapshot.as_ref().is_some_and(|s| s.succeeded()) {
        steps.push("snapshot".to_owned());
    }
    if !detail.streams.is_empty() {
        steps.push(format!("streams {}", streams.join(" ")));
    }
    if let Some(a) = &detail.audit {
        steps.push(format!("audit {}", a.status));
    }
    let reason = detail
        .transcode
        .as_ref()
        .filter(|t| !t.succeeded())
        .map(|t| {
            format!(
                "{}: {}",
                t.info
                    .get("error_code")
                    .and_then(|v| v.as_str())
                    .unwrap_or("TranscodeFail"),
                t.info
                    .get("error_message")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            )
        });
    let mut line = match status {
        "Normal" if job.kind == JobKind::Video => "Normal (playable)".to_owned(),
        other => other.to_owned(),
    };
    if let Some(reason) = reason {
        line.push_str(&format!(": {reason}"));
    } else if !steps.is_empty() {
        line.push_str(&format!(": {}", steps.join(", ")));
    }
    Some(line)
}

/// A fixed-width table of jobs.
pub fn jobs_table(jobs: &[Job]) -> String {
    let mut out = format!(
        "{:<38} {:<15} {:<6} {:<15} {:<34} {:<13} {}\n",
        "JOB_ID", "KIND", "ORIGIN", "STATE", "MEDIA_ID", "MEDIA_STATUS", "PROGRESS / ERROR"
    );
    for job in jobs {
        let tail = match (&job.last_error_code, job.state()) {
            (Some(code), JobState::Failed | JobState::Retrying) => format!(
                "{code}: {}",
                job.last_error_message.as_deref().unwrap_or("")
            ),
            // The client app uploads; only VOD's callback says when it is done.
            (_, JobState::AwaitingUpload) => format!(
                "client uploading {}",
                human_bytes(job.bytes_total.unwrap_or(0))
            ),
            _ => progress_bar(job.bytes_uploaded, job.bytes_total),
        };
        let tail = match (job.state(), job.media_status.as_deref()) {
            (JobState::Completed, Some("TranscodeFail")) => media_line(job).unwrap_or(tail),
            _ => tail,
        };
        out.push_str(&format!(
            "{:<38} {:<15} {:<6} {:<15} {:<34} {:<13} {}\n",
            job.job_id,
            job.kind,
            job.origin,
            job.state,
            job.media_id.as_deref().unwrap_or("-"),
            job.media_status.as_deref().unwrap_or("-"),
            tail
        ));
    }
    out
}

//! VOD event bodies, read leniently (`docs/reference/callbacks.md` §4): every event type of the catalogue,
//! with the drift real and documented payloads show: three `EventTime` formats, numbers sent
//! as strings, JSON held in strings (`Extend`, `Data`, `DynamicImageJobInfo`), key casing
//! (`FileUrl` / `FileURL`), keys with trailing spaces, `success` / `Success` / `Failed`. The
//! documentation's samples that are not valid JSON (a trailing comma, raw newlines inside a
//! string) are repaired before they are given up on.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::media::{MediaUpdate, Slot, StepEntry};

/// What the body says, as far as this service cares.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub event_type: String,
    pub media_id: Option<String>,
    pub succeeded: bool,
    /// `Size` of the uploaded file, a number or a numeric string.
    pub size: Option<u64>,
    /// VOD's `EventTime`, in any of its formats.
    pub event_time: Option<DateTime<Utc>>,
    /// `Extend`: the parsed object when the string holds JSON, else the string (read by the
    /// fuzz targets and tests; the service keeps the raw body).
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub extend: Option<Value>,
    /// What the event says about the media after the upload (`None` for event types that
    /// concern no media of ours, and for unknown ones).
    pub update: Option<MediaUpdate>,
}

/// Parses a body; `None` when it is not a JSON object with an `EventType`.
pub fn parse_event(body: &[u8]) -> Option<ParsedEvent> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_json::from_str(&repair(std::str::from_utf8(body).ok()?)).ok()?,
    };
    let obj = value.as_object()?;
    let event_type = text(obj, "EventType")?;
    let media_id = ["VideoId", "ImageId", "AttachedMediaId", "MediaId"]
        .iter()
        .find_map(|k| text(obj, k));
    let status = text(obj, "Status");
    // Older FileUploadComplete payloads carry no Status; the event is sent only on success.
    let succeeded = status.as_deref().is_none_or(is_success);
    let event_time = field(obj, "EventTime")
        .and_then(Value::as_str)
        .and_then(parse_event_time);
    let size = field(obj, "Size").and_then(number_u64);
    let update = media_update(obj, &event_type, succeeded, event_time);
    Some(ParsedEvent {
        event_type,
        media_id,
        succeeded,
        size,
        event_time,
        extend: extend(obj),
        update,
    })
}

fn is_success(status: &str) -> bool {
    status.trim().eq_ignore_ascii_case("success")
}

/// A key as sent, else one that differs only in case or surrounding spaces.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A string field, trimmed; numbers and booleans as their text; empty means absent.
fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match field(obj, key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn number_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(|f| f as u64))
        }
        _ => None,
    }
}

fn number_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value that is an object, or a string holding one (`Extend`, `Data`, ...).
fn nested(v: &Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) => {
            match serde_json::from_str(s).or_else(|_| serde_json::from_str(&repair(s))) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `Extend` as VOD returns it: a string that usually holds JSON. The parsed object when it
/// does, else the plain string.
pub(crate) fn extend(obj: &Map<String, Value>) -> Option<Value> {
    let raw = field(obj, "Extend")?;
    Some(match nested(raw) {
        Some(m) => Value::Object(m),
        None => raw.clone(),
    })
}

/// `yyyy-MM-ddTHH:mm:ssZ`, `…:ss.SSSZ` or `…:ss:SSSZ` (a colon before the milliseconds), UTC.
pub(crate) fn parse_event_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    let body = raw.strip_suffix('Z').unwrap_or(raw);
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(body, format) {
            return Some(t.and_utc());
        }
    }
    // `2024-04-10T01:37:14:627`: the third colon separates the milliseconds.
    let (head, millis) = body.rsplit_once(':')?;
    if head.matches(':').count() == 2
        && millis.len() == 3
        && millis.bytes().all(|b| b.is_ascii_digit())
    {
        return NaiveDateTime::parse_from_str(&format!("{head}.{millis}"), "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc());
    }
    None
}

/// Repairs the two defects of documented samples: raw control characters inside strings, and
/// a trailing comma before `}` or `]`.
fn repair(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => {
                    escaped = false;
                    out.push(c);
                }
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                _ => out.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}') | Some(']')) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The step an object reports, with what VOD said about it.
fn entry(
    obj: &Map<String, Value>,
    via: &str,
    at: Option<DateTime<Utc>>,
    default_ok: bool,
) -> StepEntry {
    let status = match text(obj, "Status") {
        Some(s) if is_success(&s) => "success",
        Some(_) => "fail",
        None if default_ok => "success",
        None => "fail",
    };
    let mut e = StepEntry::new(status, at, via);
    for (key, name) in [
        ("ErrorCode", "error_code"),
        ("ErrorMessage", "error_message"),
        ("JobId", "job_id"),
    ] {
        if let Some(v) = text(obj, key) {
            e = e.with(name, v);
        }
    }
    e
}

fn stream_entry(
    obj: &Map<String, Value>,
    via: &str,
    at: Option<DateTime<Utc>>,
) -> (String, StepEntry) {
    let definition = text(obj, "Definition").unwrap_or_else(|| "unknown".to_owned());
    let format = text(obj, "Format");
    let key = match &format {
        // `HD-MP4`-style definitions already name their format.
        Some(f)
            if !definition
                .to_ascii_lowercase()
                .ends_with(&f.to_ascii_lowercase()) =>
        {
            format!("{definition}-{f}")
        }
        _ => definition.clone(),
    };
    let mut e = entry(obj, via, at, false)
        .with("definition", definition)
        .with("format", format);
    if let Some(url) = text(obj, "FileUrl") {
        e = e.with("url", url);
    }
    for (k, name) in [
        ("Size", "size"),
        ("Width", "width"),
        ("Height", "height"),
        ("Bitrate", "bitrate"),
    ] {
        if let Some(n) = field(obj, k).and_then(number_u64) {
            e = e.with(name, n);
        }
    }
    if let Some(d) = field(obj, "Duration").and_then(number_f64) {
        e = e.with("duration", d);
    }
    if let Some(Value::Bool(b)) = field(obj, "Encrypt") {
        e = e.with("encrypt", *b);
    }
    (key, e)
}

/// What an event says about the media after the upload.
fn media_update(
    obj: &Map<String, Value>,
    event_type: &str,
    succeeded: bool,
    at: Option<DateTime<Utc>>,
) -> Option<MediaUpdate> {
    let mut update = MediaUpdate::default();
    match event_type {
        "FileUploadComplete"
        | "ImageUploadComplete"
        | "AttachedMediaUploadComplete"
        | "UploadByURLComplete" => {
            update.uploaded = succeeded;
            if !succeeded {
                return None;
            }
        }
        "VideoAnalysisComplete" => {
            let mut e = entry(obj, event_type, at, false);
            for (k, name) in [
                ("Width", "width"),
                ("Height", "height"),
                ("Size", "size"),
                ("Bitrate", "bitrate"),
                ("Fps", "fps"),
            ] {
                if let Some(n) = field(obj, k).and_then(number_u64) {
                    e = e.with(name, n);
                }
            }
            if let Some(d) = field(obj, "Duration").and_then(number_f64) {
                e = e.with("duration", d);
            }
            update.uploaded = true;
            update.steps.push((Slot::Analysis, e));
        }
        "SnapshotComplete" => {
            // The documented sample has no Status: judge by its snapshot jobs then.
            let infos = field(obj, "SnapshotInfos").and_then(Value::as_array);
            let all_ok = infos.is_none_or(|list| {
                list.iter()
                    .filter_map(Value::as_object)
                    .all(|i| text(i, "Status").as_deref().is_none_or(is_success))
            });
            let mut e = entry(obj, event_type, at, all_ok);
            if let Some(url) = text(obj, "CoverUrl") {
                e = e.with("cover_url", url);
            }
            if let Some(sub) = text(obj, "SubType") {
                e = e.with("sub_type", sub);
            }
            if let Some(list) = infos {
                let count: u64 = list
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|i| field(i, "SnapshotCount").and_then(number_u64))
                    .sum();
                e = e.with("snapshot_count", count);
            }
            update.uploaded = true;
            update.steps.push((Slot::Snapshot, e));
        }
        "StreamTranscodeComplete" => {
            let (key, e) = stream_entry(obj, event_type, at);
            update.uploaded = true;
            update.steps.push((Slot::Stream(key), e));
        }
        "TranscodeComplete" => {
            let streams: Vec<(String, StepEntry)> = field(obj, "StreamInfos")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_object)
                        .map(|s| stream_entry(s, event_type, at))
                        .collect()
                })
                .unwrap_or_default();
            let mut e = entry(obj, event_type, at, false);
            // "success as long as one video stream is transcoded": say which ones failed.
            let failed: Vec<&str> = streams
                .iter()
                .filter(|(_, s)| !s.succeeded())
                .map(|(k, _)| k.as_str())
                .collect();
            if !failed.is_empty() {
                e = e.with("failed_streams", failed.join(","));
            }
            if !e.succeeded() && !e.info.contains_key("error_code") {
                // Take the reason from a failed stream when the event carries none itself.
                if let Some((_, s)) = streams.iter().find(|(_, s)| !s.succeeded()) {
                    for k in ["error_code", "error_message"] {
                        if let Some(v) = s.info.get(k) {
                            e.info.insert(k.to_owned(), v.clone());
                        }
                    }
                }
            }
            update.uploaded = true;
            update
                .steps
                .extend(streams.into_iter().map(|(k, s)| (Slot::Stream(k), s)));
            update.steps.push((Slot::Transcode, e));
        }
        "CreateAuditComplete" => {
            let audit = text(obj, "AuditStatus")?;
            let mut e = StepEntry::new(audit, at, event_type);
            for (k, name) in [("Reason", "reason"), ("Auditor", "auditor")] {
                if let Some(v) = text(obj, k) {
                    e = e.with(name, v);
                }
            }
            update.steps.push((Slot::Audit, e));
        }
        "AIMediaAuditComplete" => {
            let data = field(obj, "Data").and_then(nested);
            let suggestion = data
                .as_ref()
                .and_then(|d| text(d, "Suggestion"))
                .unwrap_or_else(|| {
                    if succeeded {
                        "unknown".into()
                    } else {
                        "fail".into()
                    }
                });
            let mut e = StepEntry::new(suggestion, at, event_type);
            if let Some(label) = data.as_ref().and_then(|d| text(d, "Label")) {
                e = e.with("label", label);
            }
            for (k, name) in [
                ("Code", "code"),
                ("Message", "message"),
                ("JobId", "job_id"),
            ] {
                if let Some(v) = text(obj, k) {
                    e = e.with(name, v);
                }
            }
            update.steps.push((Slot::AiAudit, e));
        }
        "DeleteMediaComplete" => {
            // Only a whole media deleted is news for the job; a deleted stream or mezzanine is not.
            if text(obj, "DeleteType").as_deref() != Some("all") {
                return None;
            }
            update
                .steps
                .push((Slot::Deleted, entry(obj, event_type, at, false)));
        }
        _ => return None,
    }
    Some(update)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_in_all_three_formats() {
        for (raw, expected) in [
            ("2017-03-20T07:49:17Z", "2017-03-20T07:49:17+00:00"),
            ("2024-04-10T01:37:14:627Z", "2024-04-10T01:37:14.627+00:00"),
            ("2022-10-20T10:29:46.540Z", "2022-10-20T10:29:46.540+00:00"),
        ] {
            let t = parse_event_time(raw).unwrap_or_else(|| panic!("{raw}"));
            assert_eq!(t.to_rfc3339(), expected);
        }
        assert!(parse_event_time("yesterday").is_none());
        assert!(parse_event_time("2024-04-10T01:37:14:62Z").is_none());
    }

    #[test]
    fn repairs_documented_defects() {
        let trailing = "{\"a\": 1, \"b\": [1, 2,],}";
        assert_eq!(
            serde_json::from_str::<Value>(&repair(trailing)).unwrap(),
            serde_json::json!({"a": 1, "b": [1, 2]})
        );
        let newline = "{\"a\": \"x\n y\", \"b\": \"a, }\"}";
        assert_eq!(
            serde_json::from_str::<Value>(&repair(newline)).unwrap(),
            serde_json::json!({"a": "x\n y", "b": "a, }"})
        );
    }

    #[test]
    fn numbers_as_strings_and_keys_with_other_casing() {
        let body = br#"{"EventType":"UploadByURLComplete","Status":"Success","VideoId":"v","Size":"123456","SourceURL ":"http://x/y.mp4"}"#;
        let e = parse_event(body).unwrap();
        assert_eq!(e.size, Some(123456));
        assert!(e.succeeded);
        let body = br#"{"EventType":"StreamTranscodeComplete","Status":"success","VideoId":"v","Definition":"LD","Format":"mp4","FileURL":"http://x/ld.mp4","Height":"960","Duration":"15.5"}"#;
        let e = parse_event(body).unwrap();
        let (slot, entry) = &e.update.unwrap().steps[0];
        assert_eq!(*slot, Slot::Stream("LD-mp4".into()));
        assert_eq!(entry.info["url"], "http://x/ld.mp4");
        assert_eq!(entry.info["height"], 960);
        assert_eq!(entry.info["duration"], 15.5);
    }

    #[test]
    fn extend_as_json_in_a_string_or_plain() {
        let obj: Map<String, Value> =
            serde_json::from_str(r#"{"Extend":"{\"job_id\":\"j-1\"}"}"#).unwrap();
        assert_eq!(extend(&obj), Some(serde_json::json!({"job_id": "j-1"})));
        let obj: Map<String, Value> = serde_json::from_str(r#"{"Extend":"test data"}"#).unwrap();
        assert_eq!(extend(&obj), Some(serde_json::json!("test data")));
        let e = parse_event(
            br#"{"EventType":"FileUploadComplete","VideoId":"v","Extend":"{\"a\":1}"}"#,
        )
        .unwrap();
        assert_eq!(e.extend, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn a_failed_transcode_takes_its_reason_from_the_stream() {
        let body = br#"{"EventType":"TranscodeComplete","Status":"fail","VideoId":"v","StreamInfos":[{"Status":"fail","Definition":"SD","Format":"mp4","ErrorCode":"InvalidParameter.ResourceContentBad","ErrorMessage":"bad input"}]}"#;
        let update = parse_event(body).unwrap().update.unwrap();
        let (_, t) = update.steps.last().unwrap();
        assert!(!t.succeeded());
        assert_eq!(t.info["error_code"], "InvalidParameter.ResourceContentBad");
        assert_eq!(t.info["failed_streams"], "SD-mp4");
    }
}

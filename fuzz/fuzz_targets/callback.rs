//! VOD callbacks (src/webhook): the body parser `parse_event`, and `CallbackAuth::verify` with
//! arbitrary `X-VOD-TIMESTAMP` and `X-VOD-SIGNATURE` values.
//!
//! Input: the timestamp header, a newline, the signature header, a newline, then the body.
//!
//! Properties: a parsed event says what the JSON says, read leniently (EventType; a media id that
//! is the trimmed value of an id field, keys matched regardless of case and spaces; Size from a
//! number or numeric string; success only from a `success` Status or none); `verify` accepts a request only when its
//! signature is md5(url|timestamp|key) for a configured URL and key within the window, always
//! accepts a correctly signed one (in either case), refuses it outside the window, and never
//! panics on any clock value.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vod_ingest::fuzzing::parse_callback_event;
use vod_ingest::secret::Secret;
use vod_ingest::sign::callback::signature;
use vod_ingest::webhook::{CallbackAuth, Verdict};
use vod_ingest_fuzz::fields;

const URLS: [&str; 2] = [
    "https://www.example.com/your/callback",
    "http://127.0.0.1:8080/callbacks/vod",
];
const KEYS: [&str; 2] = ["test123", "new-key"];
const WINDOW: u64 = 300;

/// A field as the parser reads it: the exact key, else one differing in case or spaces.
fn lenient<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn check_event(body: &[u8]) {
    let Some(event) = parse_callback_event(body) else {
        return;
    };
    assert!(!event.event_type.is_empty() && event.event_type.trim() == event.event_type);
    // Bodies that are not JSON were repaired (a trailing comma, raw newlines in a string):
    // only the properties above hold for them.
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Some(Value::String(t)) = obj.get("EventType") {
        assert_eq!(t.trim(), event.event_type);
    }
    // The media id is, trimmed, the value of one of the four id fields.
    if let Some(id) = &event.media_id {
        assert!(!id.is_empty() && id.trim() == id);
        let named = ["VideoId", "ImageId", "AttachedMediaId", "MediaId"]
            .iter()
            .filter_map(|k| lenient(&obj, k))
            .any(|v| match v {
                Value::String(s) => s.trim() == id,
                Value::Number(n) => n.to_string() == *id,
                Value::Bool(b) => b.to_string() == *id,
                _ => false,
            });
        assert!(named, "{id} names no id field");
    } else if let Some(Value::String(s)) = obj.get("VideoId") {
        assert!(s.trim().is_empty(), "VideoId {s:?} was not read");
    }
    // A size comes from a number or a numeric string.
    if let Some(size) = event.size {
        let stated = match lenient(&obj, "Size") {
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
            Some(Value::String(s)) => {
                let s = s.trim();
                s.parse().ok().or_else(|| s.parse::<f64>().ok().map(|f| f as u64))
            }
            _ => None,
        };
        assert_eq!(stated, Some(size));
    }
    if event.succeeded {
        match lenient(&obj, "Status") {
            Some(Value::String(s)) => assert!(
                s.trim().is_empty() || s.trim().eq_ignore_ascii_case("success"),
                "{s:?} is no success"
            ),
            Some(Value::Number(_) | Value::Bool(_)) => panic!("a non-text Status succeeded"),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (headers, body) = fields(data, 2);
    let (timestamp, sig) = (headers[0], headers[1]);
    check_event(body);

    let auth = CallbackAuth {
        urls: URLS.iter().map(|u| u.to_string()).collect(),
        keys: KEYS.iter().map(|k| Secret::from(*k)).collect(),
        window: Duration::from_secs(WINDOW),
    };
    let parsed = timestamp.and_then(|t| t.trim().parse::<i64>().ok());
    for now in [parsed.unwrap_or(0), 1_519_375_990, i64::MIN, i64::MAX] {
        let verdict = auth.verify(timestamp, sig, now);
        if verdict == Verdict::Verified {
            let ts = timestamp.unwrap().trim();
            let provided = sig.unwrap().trim().to_ascii_lowercase();
            assert!(
                URLS.iter()
                    .any(|u| KEYS.iter().any(|k| signature(u, ts, k) == provided)),
                "accepted a signature that no (url, key) gives"
            );
            assert!(parsed.unwrap().abs_diff(now) <= WINDOW);
        }
        let unconfigured = CallbackAuth {
            keys: Vec::new(),
            ..auth.clone()
        };
        assert_eq!(
            unconfigured.verify(timestamp, sig, now),
            Verdict::NotConfigured
        );
    }

    if let (Some(text), Some(ts)) = (timestamp, parsed) {
        let good = signature(URLS[1], text.trim(), KEYS[1]);
        assert_eq!(auth.verify(Some(text), Some(&good), ts), Verdict::Verified);
        let upper = format!(" {} ", good.to_ascii_uppercase());
        assert_eq!(auth.verify(Some(text), Some(&upper), ts), Verdict::Verified);
        if let Some(late) = ts.checked_add(WINDOW as i64 + 1) {
            assert_eq!(
                auth.verify(Some(text), Some(&good), late),
                Verdict::OutsideWindow
            );
        }
        assert_eq!(auth.verify(Some(text), None, ts), Verdict::MissingHeaders);
    }
});

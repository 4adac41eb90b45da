//! VOD callbacks (src/webhook): the body parser `parse_event`, and `CallbackAuth::verify` with
//! arbitrary `X-VOD-TIMESTAMP` and `X-VOD-SIGNATURE` values.
//!
//! Input: the timestamp header, a newline, the signature header, a newline, then the body.
//!
//! Properties: a parsed event says what the JSON says (EventType, the first media id field that
//! is a string, Size as a number or numeric string); `verify` accepts a request only when its
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

fn check_event(body: &[u8]) {
    let Some(event) = parse_callback_event(body) else {
        return;
    };
    let value: Value = serde_json::from_slice(body).expect("an event is JSON");
    assert_eq!(value["EventType"].as_str(), Some(event.event_type.as_str()));
    let first_id = ["VideoId", "ImageId", "AttachedMediaId", "MediaId"]
        .iter()
        .find_map(|k| value[*k].as_str());
    assert_eq!(event.media_id.as_deref(), first_id);
    if let Some(size) = event.size {
        let stated = match &value["Size"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        assert_eq!(stated, Some(size));
    }
    if event.succeeded {
        assert!(value["Status"]
            .as_str()
            .is_none_or(|s| s.eq_ignore_ascii_case("success")));
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

//! The Base64 JSON VOD hands out (src/vod/types.rs): `UploadAddress::decode` and
//! `UploadAuth::decode`. Each input is tried as the Base64 text itself and as the JSON inside.
//!
//! Properties: decoding never panics, whatever `Expiration` says; a decode error never shows
//! `AccessKeySecret` or `SecurityToken`; a decoded credential's Debug does not depend on them;
//! a decoded address and (with a whole-second expiry in years 1-9999) a decoded credential
//! survive encode-then-decode unchanged.
#![no_main]

use base64::Engine as _;
use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use libfuzzer_sys::fuzz_target;
use vod_ingest::secret::Secret;
use vod_ingest::vod::{UploadAddress, UploadAuth};
use vod_ingest_fuzz::shows;

fn secrets(encoded: &str) -> Vec<String> {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&bytes) else {
        return Vec::new();
    };
    ["AccessKeySecret", "SecurityToken"]
        .iter()
        .filter_map(|k| map.get(*k)?.as_str().map(str::to_owned))
        .collect()
}

fn check(encoded: &str, now: DateTime<Utc>) {
    if let Ok(address) = UploadAddress::decode(encoded) {
        assert_eq!(UploadAddress::decode(&address.encode()).unwrap(), address);
    }
    match UploadAuth::decode(encoded, now) {
        Err(e) => {
            let shown = format!("{e} {e:?}");
            for s in secrets(encoded) {
                assert!(!shows(&shown, &s), "{s:?} in {shown}");
            }
        }
        Ok(auth) => {
            let blank = UploadAuth {
                access_key_secret: Secret::new(""),
                security_token: Secret::new(""),
                ..auth.clone()
            };
            assert_eq!(format!("{auth:?}"), format!("{blank:?}"));
            let t = auth.expires_at;
            if t.nanosecond() == 0 && (1..=9999).contains(&t.year()) {
                let again =
                    UploadAuth::decode(&auth.encode(now), now).expect("our encoding decodes");
                assert_eq!(again, auth);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z")
        .unwrap()
        .with_timezone(&Utc);
    if let Ok(text) = std::str::from_utf8(data) {
        check(text, now);
    }
    check(&base64::engine::general_purpose::STANDARD.encode(data), now);
});

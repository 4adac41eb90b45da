//! The OSS V4 `Authorization` header as the emulator reads it (src/emulator/oss_v4.rs).
//!
//! Properties: an accepted header has a non-empty AccessKeyId and region, an 8-digit date, a
//! 64-hex-digit signature and lower-case additional header names; and the header assembled
//! from those parts again (as oss2 writes it, and as the V2 SDK does) reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::{emulator_oss_v4_authorization, V4Authorization};

fn same(a: &V4Authorization, b: &V4Authorization) -> bool {
    (
        a.access_key_id.as_str(),
        a.date.as_str(),
        a.region.as_str(),
        &a.additional_headers,
        a.signature.as_str(),
    ) == (
        b.access_key_id.as_str(),
        b.date.as_str(),
        b.region.as_str(),
        &b.additional_headers,
        b.signature.as_str(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let Some(auth) = emulator_oss_v4_authorization(header) else {
        return;
    };
    assert!(!auth.access_key_id.is_empty() && !auth.region.is_empty());
    assert!(auth.date.len() == 8 && auth.date.bytes().all(|b| b.is_ascii_digit()));
    assert!(auth.signature.len() == 64 && auth.signature.bytes().all(|b| b.is_ascii_hexdigit()));
    for h in &auth.additional_headers {
        assert_eq!(*h, h.to_ascii_lowercase());
    }
    let credential = format!(
        "Credential={}/{}/{}/oss/aliyun_v4_request",
        auth.access_key_id, auth.date, auth.region
    );
    let additional = if auth.additional_headers.is_empty() {
        String::new()
    } else {
        format!("AdditionalHeaders={},", auth.additional_headers.join(";"))
    };
    for sep in [",", ", "] {
        let additional = additional.replace(',', sep);
        let rebuilt = format!(
            "OSS4-HMAC-SHA256 {credential}{sep}{additional}Signature={}",
            auth.signature
        );
        let again = emulator_oss_v4_authorization(&rebuilt)
            .unwrap_or_else(|| panic!("{rebuilt:?} (from {header:?}) is refused"));
        assert!(
            same(&again, &auth),
            "{rebuilt:?} reads as {again:?}, not {auth:?}"
        );
    }
});

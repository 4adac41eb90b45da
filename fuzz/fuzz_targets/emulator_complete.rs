//! The CompleteMultipartUpload body the emulator parses (src/emulator/multipart.rs).
//!
//! Properties: an accepted body lists part numbers in 1..=10000 in strictly ascending order,
//! with ETags unquoted; a refusal is `MalformedXML` or `InvalidPartOrder`, as OSS answers; and
//! the client's Complete body for the accepted parts is read back as the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::{emulator_complete_body, oss_complete_body, UploadedPart};

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let parts = match emulator_complete_body(xml) {
        Ok(parts) => parts,
        Err(code) => {
            assert!(
                code == "MalformedXML" || code == "InvalidPartOrder",
                "{code}"
            );
            return;
        }
    };
    let mut previous = 0;
    for (number, etag) in &parts {
        assert!((1..=10_000).contains(number) && *number > previous);
        previous = *number;
        assert!(!etag.starts_with('"') && !etag.ends_with('"'));
    }
    if parts.is_empty() {
        return;
    }
    let uploaded: Vec<UploadedPart> = parts
        .iter()
        .map(|(number, etag)| UploadedPart {
            part_number: *number,
            etag: etag.clone(),
            size: 0,
            crc64: 0,
        })
        .collect();
    let (body, _) = oss_complete_body(&uploaded);
    assert_eq!(emulator_complete_body(&body).as_ref(), Ok(&parts), "{body}");
});

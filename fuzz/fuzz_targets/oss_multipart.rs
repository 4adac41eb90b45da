//! The multipart answers the OSS client parses (src/oss/parts.rs): InitiateMultipartUpload's
//! upload id and ListParts pages, and the CompleteMultipartUpload body it builds from them.
//!
//! Properties: listed ETags carry no quotes at either end; a next-page marker is trimmed; and
//! the Complete body built from the listed parts (as a resumed upload builds it) is read by the
//! emulator's parser (the same one OSS's grammar is modelled on) as exactly those parts, in
//! ascending order, with the ETags the client holds.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::{
    emulator_complete_body, oss_complete_body, oss_initiate_answer, oss_list_parts_page,
    UploadedPart,
};

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let _ = oss_initiate_answer(xml);
    let Ok((parts, next)) = oss_list_parts_page(xml) else {
        return;
    };
    if let Some(next) = &next {
        assert_eq!(next, next.trim());
    }
    for part in &parts {
        assert!(!part.etag.starts_with('"') && !part.etag.ends_with('"'));
    }
    // A resumed upload completes with the listed parts; OSS refuses duplicates and numbers
    // outside 1..=10000, so those are left out here.
    let mut by_number = BTreeMap::new();
    for p in &parts {
        if (1..=10_000).contains(&p.part_number) {
            by_number.entry(p.part_number).or_insert(p);
        }
    }
    if by_number.is_empty() {
        return;
    }
    let uploaded: Vec<UploadedPart> = by_number
        .values()
        .rev()
        .map(|p| UploadedPart {
            part_number: p.part_number,
            etag: p.etag.clone(),
            size: p.size,
            crc64: p.crc64.unwrap_or(0),
        })
        .collect();
    let (body, _crc) = oss_complete_body(&uploaded);
    let read = emulator_complete_body(&body)
        .unwrap_or_else(|code| panic!("OSS would refuse our Complete body ({code}): {body}"));
    let expected: Vec<(u32, String)> = by_number
        .values()
        .map(|p| (p.part_number, p.etag.clone()))
        .collect();
    assert_eq!(read, expected, "{body}");
});

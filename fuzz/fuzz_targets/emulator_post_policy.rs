//! PostObject policies as the emulator reads them (src/emulator/oss/post_object.rs).
//!
//! Input: a key, a newline, a `success_action_status` value, a newline, then a policy
//! document (JSON, as a client writes it before Base64).
//!
//! Properties: no input panics; the answer is the same twice; an accepted policy's size range
//! has its minimum at or below its maximum; and a policy accepted for a form is refused (or
//! still accepted) the same way whatever the case of the form's field names, since OSS reads
//! them case-insensitively.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::emulator_post_policy;
use vod_ingest_fuzz::fields;

fuzz_target!(|data: &[u8]| {
    let (lines, doc) = fields(data, 2);
    let key = lines[0].unwrap_or("sv/a/b.mp4");
    let status = lines[1].unwrap_or("200");
    let form = vec![
        ("key".to_owned(), key.to_owned()),
        ("success_action_status".to_owned(), status.to_owned()),
        ("x-oss-meta-a".to_owned(), "b".to_owned()),
    ];
    let upper: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
        .collect();
    let first = emulator_post_policy(doc, "outin-test", key, &form);
    assert_eq!(first, emulator_post_policy(doc, "outin-test", key, &form));
    assert_eq!(first, emulator_post_policy(doc, "outin-test", key, &upper));
    if let Ok((Some(min), Some(max))) = first {
        assert!(min <= max, "range {min}..{max}");
    }
});

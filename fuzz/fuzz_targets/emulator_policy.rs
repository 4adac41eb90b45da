//! RAM session policies as the emulator reads them (src/emulator/policy.rs): the grammar, the
//! evaluation, and the `*` / `?` glob matcher behind both.
//!
//! Input: a glob pattern, a newline, a value, a newline, then a policy document.
//!
//! Properties: the glob matcher agrees with a plain dynamic-programming matcher on every
//! pattern and value; a parsed policy compares actions case-insensitively and resources
//! case-sensitively-but-consistently (the same call always gets the same answer); documents
//! over 2048 characters are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::{emulator_wildcard_match, SessionPolicy};
use vod_ingest_fuzz::fields;

/// `*` is any run of characters, `?` exactly one, anything else itself.
fn reference_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // matches[j]: the pattern so far matches v[..j].
    let mut matches = vec![false; v.len() + 1];
    matches[0] = true;
    for c in &p {
        let mut next = vec![false; v.len() + 1];
        for j in 0..=v.len() {
            next[j] = match c {
                '*' => matches[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matches[j - 1],
                c => j > 0 && matches[j - 1] && v[j - 1] == *c,
            };
        }
        matches = next;
    }
    matches[v.len()]
}

const ACTIONS: &[&str] = &[
    "vod:CreateUploadVideo",
    "vod:RefreshUploadVideo",
    "vod:CreateUploadImage",
    "vod:GetVideoInfo",
    "sts:AssumeRole",
];
const RESOURCES: &[&str] = &[
    "acs:vod:cn-shanghai:1234567890123456:*",
    "acs:vod:cn-beijing:1234567890123456:*",
    "*",
];

fuzz_target!(|data: &[u8]| {
    let (lines, doc) = fields(data, 2);
    if let (Some(pattern), Some(value)) = (lines[0], lines[1]) {
        // The reference is quadratic; keep its inputs to policy sizes.
        if pattern.len() <= 2048 && value.len() <= 2048 {
            assert_eq!(
                emulator_wildcard_match(pattern, value),
                reference_match(pattern, value),
                "pattern {pattern:?} on {value:?}"
            );
        }
    }
    let Ok(doc) = std::str::from_utf8(doc) else {
        return;
    };
    let Ok(policy) = SessionPolicy::parse(doc) else {
        return;
    };
    assert!(doc.chars().count() <= 2048);
    let mut extra = Vec::new();
    if let (Some(action), Some(resource)) = (lines[0], lines[1]) {
        extra.push((action, resource));
    }
    for (action, resource) in ACTIONS
        .iter()
        .flat_map(|a| RESOURCES.iter().map(move |r| (*a, *r)))
        .chain(extra)
    {
        let allowed = policy.allows(action, resource);
        assert_eq!(
            allowed,
            policy.allows(&action.to_ascii_uppercase(), resource)
        );
        assert_eq!(
            allowed,
            policy.allows(&action.to_ascii_lowercase(), resource)
        );
    }
});

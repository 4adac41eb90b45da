//! VOD callback authentication: `X-VOD-SIGNATURE = md5(url|timestamp|key)`, lower-case hex.
//! VOD signs neither the body nor the headers. Reference: `docs/reference/callbacks.md` §2.

use md5::{Digest, Md5};

/// The signature VOD sends for a callback to `url` at `timestamp` (Unix seconds).
pub fn signature(url: &str, timestamp: &str, key: &str) -> String {
    hex::encode(Md5::digest(format!("{url}|{timestamp}|{key}").as_bytes()))
}

//! Verification of VOD callbacks: `X-VOD-SIGNATURE = md5(url|X-VOD-TIMESTAMP|key)`.
//!
//! VOD signs only the URL, the timestamp and the key, not the body, so the receiver checks the
//! signature against every configured key (rotation) and every registered URL, in constant
//! time, and enforces a time window. With keys configured, a request without the headers is
//! rejected: the receiver never fails open.

use std::time::Duration;

use crate::secret::Secret;
use crate::sign::{callback, constant_time_eq};

/// How callbacks are authenticated.
#[derive(Debug, Clone)]
pub struct CallbackAuth {
    /// The callback URLs exactly as registered with VOD (`VOD_CALLBACK_URL`): they are part of
    /// what VOD signs, so they are never rebuilt from the incoming request.
    pub urls: Vec<String>,
    /// `VOD_CALLBACK_AUTH_KEYS`; empty disables verification (not recommended).
    pub keys: Vec<Secret>,
    /// Largest accepted difference between `X-VOD-TIMESTAMP` and now, either way.
    pub window: Duration,
}

/// The verdict on one request, stored with it in `vod_events.verification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    /// No keys are configured, so nothing was checked.
    NotConfigured,
    MissingHeaders,
    MalformedTimestamp,
    OutsideWindow,
    BadSignature,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::NotConfigured => "not_configured",
            Verdict::MissingHeaders => "missing_headers",
            Verdict::MalformedTimestamp => "malformed_timestamp",
            Verdict::OutsideWindow => "outside_window",
            Verdict::BadSignature => "bad_signature",
        }
    }

    pub fn accepted(self) -> bool {
        matches!(self, Verdict::Verified | Verdict::NotConfigured)
    }

    /// What the 401 body tells the sender (or the operator reading it).
    pub fn explanation(self) -> &'static str {
        match self {
            Verdict::Verified | Verdict::NotConfigured => "accepted",
            Verdict::MissingHeaders => "X-VOD-TIMESTAMP and X-VOD-SIGNATURE are required: enable callback authentication in VOD with a key listed in VOD_CALLBACK_AUTH_KEYS",
            Verdict::MalformedTimestamp => "X-VOD-TIMESTAMP must be Unix seconds",
            Verdict::OutsideWindow => "X-VOD-TIMESTAMP is outside the accepted window: check the clocks, or this is a replay",
            Verdict::BadSignature => "X-VOD-SIGNATURE does not match: check that VOD_CALLBACK_URL is the URL registered with VOD, byte for byte, and that the VOD AuthKey is in VOD_CALLBACK_AUTH_KEYS",
        }
    }
}

impl CallbackAuth {
    /// Checks the two headers at time `now` (Unix seconds).
    pub fn verify(&self, timestamp: Option<&str>, signature: Option<&str>, now: i64) -> Verdict {
        if self.keys.is_empty() {
            return Verdict::NotConfigured;
        }
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Verdict::MissingHeaders;
        };
        let timestamp = timestamp.trim();
        let Ok(ts) = timestamp.parse::<i64>() else {
            return Verdict::MalformedTimestamp;
        };
        if now.abs_diff(ts) > self.window.as_secs() {
            return Verdict::OutsideWindow;
        }
        let provided = signature.trim().to_ascii_lowercase();
        // Every (url, key) pair is tried, so the time taken does not say which one matched.
        let mut matched = false;
        for url in &self.urls {
            for key in &self.keys {
                let expected = callback::signature(url, timestamp, key.expose());
                matched |= constant_time_eq(expected.as_bytes(), provided.as_bytes());
            }
        }
        if matched {
            Verdict::Verified
        } else {
            Verdict::BadSignature
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(keys: &[&str]) -> CallbackAuth {
        CallbackAuth {
            urls: vec!["https://www.example.com/your/callback".into()],
            keys: keys.iter().map(|k| Secret::from(*k)).collect(),
            window: Duration::from_secs(300),
        }
    }

    #[test]
    fn the_documented_example_verifies_with_any_of_the_keys() {
        let sig = "c72b60894140fa98920f1279219b7ed4";
        let now = 1_519_375_990;
        assert_eq!(
            auth(&["test123"]).verify(Some("1519375990"), Some(sig), now),
            Verdict::Verified
        );
        assert_eq!(
            auth(&["old-key", "test123"]).verify(Some("1519375990"), Some(sig), now + 299),
            Verdict::Verified
        );
        assert_eq!(
            auth(&["test123"]).verify(Some("1519375990"), Some(&sig.to_uppercase()), now),
            Verdict::Verified
        );
    }

    #[test]
    fn every_failure_has_its_own_verdict() {
        let a = auth(&["test123"]);
        let sig = Some("c72b60894140fa98920f1279219b7ed4");
        let now = 1_519_375_990;
        assert_eq!(a.verify(None, sig, now), Verdict::MissingHeaders);
        assert_eq!(
            a.verify(Some("1519375990"), None, now),
            Verdict::MissingHeaders
        );
        assert_eq!(
            a.verify(Some("yesterday"), sig, now),
            Verdict::MalformedTimestamp
        );
        assert_eq!(
            a.verify(Some("1519375990"), sig, now + 301),
            Verdict::OutsideWindow
        );
        assert_eq!(
            a.verify(Some("1519375990"), sig, now - 301),
            Verdict::OutsideWindow
        );
        // Timestamp +1 s (a valid window) but signed for the original second.
        assert_eq!(
            a.verify(Some("1519375991"), sig, now),
            Verdict::BadSignature
        );
        assert_eq!(
            auth(&["Test123"]).verify(Some("1519375990"), sig, now),
            Verdict::BadSignature
        );
        assert_eq!(auth(&[]).verify(None, None, now), Verdict::NotConfigured);
    }
}

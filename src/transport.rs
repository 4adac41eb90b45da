//! How an HTTP request failed before any answer came; shared by the VOD and OSS clients.

use std::fmt;

/// Only `Connect` proves the request never reached the server (so even a non-idempotent call
/// may be sent again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Connect,
    Timeout,
    Other,
}

impl TransportKind {
    pub fn of(err: &reqwest::Error) -> Self {
        if err.is_connect() {
            TransportKind::Connect
        } else if err.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Other
        }
    }

    /// The local error code clients report for it.
    pub fn code(self) -> &'static str {
        match self {
            TransportKind::Connect => "ConnectError",
            TransportKind::Timeout => "Timeout",
            TransportKind::Other => "TransportError",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Connect => "could not connect",
            TransportKind::Timeout => "timed out",
            TransportKind::Other => "transport error",
        })
    }
}

/// The error and its sources on one line, without the URL: request URLs carry signatures and
/// security tokens.
pub fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut s = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

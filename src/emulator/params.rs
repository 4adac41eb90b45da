//! RPC request parameters and the values they carry: how a request's parameters are
//! collected and read, the RPC time format, and the JSON shapes of `UserData`. Below every
//! module that reads them (`rpc`, `v3`, `batch`, `delivery`), so that `rpc` is the dispatcher
//! on top and nothing imports it back.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::errors::RpcError;

pub(crate) type Params = BTreeMap<String, String>;

/// Query and form body are one parameter set (`docs/reference/vod-api.md` §3.4); the first value wins.
pub(crate) fn collect_params(query: &[u8], form: Option<&[u8]>) -> Params {
    let mut params = Params::new();
    for part in std::iter::once(query).chain(form) {
        for (k, v) in url::form_urlencoded::parse(part) {
            params.entry(k.into_owned()).or_insert(v.into_owned());
        }
    }
    params
}

/// A parameter's value, absent when empty.
pub(super) fn get<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

pub(crate) fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, RpcError> {
    get(params, name).ok_or_else(|| RpcError::missing(name))
}

/// `yyyy-MM-ddTHH:mm:ssZ`, zero-padded, nothing else.
pub(crate) fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The RPC time format, as answers write it.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A field given either as a JSON object or as a string that holds one.
pub(crate) fn nested_json(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

/// `Extend` as callbacks carry it: a string; an object is sent as its compact JSON.
pub(crate) fn extend_string(extend: &Value) -> String {
    match extend {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_must_have_the_exact_shape() {
        assert!(parse_timestamp("2024-01-02T03:04:05Z").is_some());
        for bad in [
            "2024-1-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05.000Z",
            "2024-13-02T03:04:05Z",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }
}

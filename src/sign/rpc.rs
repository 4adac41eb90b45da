//! Alibaba Cloud RPC signature, version 1.0 (HMAC-SHA1), as used by VOD (2017-03-21) and
//! STS (2015-04-01). Reference: `docs/reference/vod-api.md` §3.

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 3986 unreserved characters stay as they are; every other byte becomes `%XY`.
const RPC_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Alibaba's `percentEncode`: UTF-8, upper-case hex, space as `%20`, `*` as `%2A`, `~` kept.
pub fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, RPC_ENCODE_SET).to_string()
}

/// `name=value&...` over the parameters sorted by name, each side percent-encoded.
/// `Signature` itself is never part of it.
pub fn canonicalized_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(name, _)| name.as_str() != "Signature")
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD&%2F&percentEncode(CanonicalizedQueryString)`.
pub fn string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode("/"),
        percent_encode(&canonicalized_query(params))
    )
}

/// `Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
pub fn signature(string_to_sign: &str, access_key_secret: &str) -> String {
    super::hmac_sha1_base64(
        format!("{access_key_secret}&").as_bytes(),
        string_to_sign.as_bytes(),
    )
}

/// Signs `params` in place: adds `Signature` computed over everything else.
pub fn sign_params(method: &str, params: &mut BTreeMap<String, String>, access_key_secret: &str) {
    params.remove("Signature");
    let sig = signature(&string_to_sign(method, params), access_key_secret);
    params.insert("Signature".to_owned(), sig);
}

/// The query string to put on the wire for already signed parameters.
pub fn to_query_string(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

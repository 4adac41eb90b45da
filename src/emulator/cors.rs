//! CORS on the emulated VOD storage bucket, as OSS applies a bucket's CORS rules
//! (help.aliyun.com OSS API "Options" and "PutBucketCors"): VOD's own bucket lets browsers
//! upload from any origin, so it behaves as if configured with one rule
//!
//! ```xml
//! <CORSConfiguration>
//!   <CORSRule>
//!     <AllowedOrigin>*</AllowedOrigin>
//!     <AllowedMethod>GET</AllowedMethod> ... PUT, POST, DELETE, HEAD
//!     <AllowedHeader>*</AllowedHeader>
//!     <ExposeHeader>ETag</ExposeHeader> ... (EXPOSE_HEADERS)
//!     <MaxAgeSeconds>600</MaxAgeSeconds>
//!   </CORSRule>
//!   <ResponseVary>true</ResponseVary>
//! </CORSConfiguration>
//! ```
//!
//! VOD does not publish its bucket's rules; the exposed headers are those ali-oss reads
//! (`etag` for multipart Complete, `x-oss-request-id`, `x-oss-err` for HEAD errors) and the
//! CRC-64 a client checks, and the max age is a guess.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) needs no
//!   signature; a matching one gets 200 with the Allow headers, anything else the 403
//!   `AccessForbidden` OSS sends when no rule matches, without CORS headers.
//! - Every other answer (errors included) to a request with `Origin` carries
//!   Allow-Origin and Expose-Headers, so that the page can read ETags and error bodies.
//! - `Vary: Origin` on every answer, as `ResponseVary` asks: the Allow-Origin echoes the
//!   request's Origin, so caches must keep answers apart by Origin.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::OssError;

pub(crate) const ALLOWED_METHODS: &str = "GET, PUT, POST, DELETE, HEAD";
pub(crate) const EXPOSE_HEADERS: &str = "ETag, x-oss-request-id, x-oss-hash-crc64ecma, \
     x-oss-object-type, x-oss-storage-class, x-oss-ec, x-oss-err, Content-MD5";
pub(crate) const MAX_AGE_SECONDS: &str = "600";

/// OSS's refusal of a preflight that no rule matches. The text (typos included) is what a
/// live OSS bucket answered, as quoted in a public report of a preflight refused by an Origin
/// whitelist; OSS's documentation gives only "403 Forbidden". That a preflight without Origin or
/// Access-Control-Request-Method gets the same answer is a guess, and so is the absence of
/// an `EC` (none is documented for it).
pub(crate) fn not_allowed() -> OssError {
    OssError::new(
        403,
        "AccessForbidden",
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution \
         of Origin, request method / Access-Control-Request-Method or \
         Access-Control-Requet-Headers are not whitelisted by the resource's CORS spec.",
        None,
    )
}

fn header_value(headers: &HeaderMap, name: header::HeaderName) -> Option<&HeaderValue> {
    headers.get(name).filter(|v| !v.is_empty())
}

/// Answers a preflight against the bucket's rule.
pub(crate) fn preflight(headers: &HeaderMap) -> Result<Response, OssError> {
    let origin = header_value(headers, header::ORIGIN).ok_or_else(not_allowed)?;
    let method = header_value(headers, header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .ok_or_else(not_allowed)?;
    let allowed = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::HEAD,
    ];
    // Methods are case-sensitive tokens and browsers send them upper-case; whether OSS would
    // take `put` for `PUT` is undocumented, and the emulator does not.
    if !allowed.iter().any(|m| m.as_str() == method) {
        return Err(not_allowed());
    }
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    // `AllowedHeader: *`: whatever the page asks to send is allowed, so echo it.
    if let Some(asked) = header_value(headers, header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECONDS),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    Ok(resp)
}

/// Adds what the rule gives an actual (not preflight) request from `origin`, if any, to its
/// answer, and `Vary: Origin` in any case.
pub(crate) fn decorate(resp: &mut Response, origin: Option<&HeaderValue>) {
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECONDS),
    );
}

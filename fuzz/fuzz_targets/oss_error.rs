//! OSS error answers (src/oss/error.rs `from_response`): the XML `<Error>` body, or for HEAD the
//! Base64 `x-oss-err` header, with the `x-oss-request-id` and `x-oss-ec` headers.
//!
//! Input: the status, the request-id header and the EC header, one per line, then the XML.
//!
//! Properties: the credentials OSS echoes (`SecurityToken`, `StringToSign`,
//! `SignatureProvided`) never reach the error's Display or Debug, wherever they sit in the
//! `<Error>` element and whichever way the body arrives; the error always has a code and a
//! message; it keeps the status; an expired credential is never "retry as is".
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use vod_ingest::fuzzing::oss_error_from_response;
use vod_ingest_fuzz::fields;

const MARK: &str = "FUZZSECRET";

fn check(status: u16, body: &[u8], header: Option<&str>, id: Option<&str>, ec: Option<&str>) {
    let err = oss_error_from_response(status, body, header, id, ec);
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(MARK),
        "an echoed credential is shown: {shown}"
    );
    assert!(!err.code().is_empty() && !err.message().is_empty());
    assert_eq!(err.http_status(), Some(status));
    if err.is_credential_expired() {
        assert!(!err.is_retryable());
    }
}

fuzz_target!(|data: &[u8]| {
    let (lines, xml) = fields(data, 3);
    let status = lines[0]
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(403);
    let (id, ec) = (lines[1], lines[2]);
    // The marker must come only from the echoed elements, which are put in below.
    let Ok(xml) = std::str::from_utf8(xml) else {
        return;
    };
    if xml.contains(MARK)
        || id.is_some_and(|v| v.contains(MARK))
        || ec.is_some_and(|v| v.contains(MARK))
    {
        return;
    }
    let echoed = format!(
        "<SecurityToken>CAIS-{MARK}</SecurityToken><StringToSign>PUT\n\nx-oss-security-token:{MARK}\n/b/k</StringToSign><SignatureProvided>{MARK}=</SignatureProvided>"
    );
    // Before the last `</Error>`, and right after the first `<Error>`: the body's own elements
    // then sit on either side of the echoed ones.
    let mut bodies = vec![xml.to_owned()];
    if let Some(at) = xml.rfind("</Error>") {
        bodies.push(format!("{}{echoed}{}", &xml[..at], &xml[at..]));
    }
    if let Some(at) = xml.find("<Error>") {
        let at = at + "<Error>".len();
        bodies.push(format!("{}{echoed}{}", &xml[..at], &xml[at..]));
    }
    for body in &bodies {
        check(status, body.as_bytes(), None, id, ec);
        let header = base64::engine::general_purpose::STANDARD.encode(body);
        check(status, b" \n", Some(&header), id, ec);
    }
});

//! The JSON answers of VOD and STS (src/vod/client.rs, sts.rs, rpc.rs, error.rs): the
//! CreateUpload* / RefreshUploadVideo answers with their Base64 `UploadAddress` and
//! `UploadAuth`, GetVideoInfo, GetImageInfo, AssumeRole, and error bodies.
//!
//! Input: a credential for the error path to redact, a newline, then the answer.
//!
//! Properties: an error never shows `UploadAuth` or the `AccessKeySecret` / `SecurityToken` in
//! it (nor STS's); a ticket's or STS credential's Debug does not depend on them; an error
//! body's message has the credential redacted and any echoed StringToSign dropped.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vod_ingest::fuzzing::{
    sts_assume_role_answer, vod_error_response, vod_image_info_answer, vod_upload_answer,
    vod_video_info_answer, StsCredentials, UploadTicket,
};
use vod_ingest::secret::Secret;
use vod_ingest_fuzz::{fields, shows};

/// Every string in `value`, keys included.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k);
            strings(v, out);
        }),
        _ => {}
    }
}

/// Every credential the answer carries: `UploadAuth`, the secrets inside it, and STS's. A value
/// that the answer also states elsewhere (a RequestId copied from it) is public, not a secret.
fn secrets(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut public = value.clone();
    if let Value::Object(map) = &mut public {
        map.remove("UploadAuth");
        if let Some(Value::Object(c)) = map.get_mut("Credentials") {
            c.remove("AccessKeySecret");
            c.remove("SecurityToken");
        }
    }
    let mut public_strings = Vec::new();
    strings(&public, &mut public_strings);
    let mut out = secrets_in(&value);
    out.retain(|s| !public_strings.iter().any(|p| p.contains(s.as_str())));
    out
}

fn secrets_in(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(auth) = value["UploadAuth"].as_str() {
        out.push(auth.to_owned());
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(auth.trim()) {
            if let Ok(inner) = serde_json::from_slice::<Value>(&bytes) {
                for k in ["AccessKeySecret", "SecurityToken"] {
                    out.extend(inner[k].as_str().map(str::to_owned));
                }
            }
        }
    }
    for k in ["AccessKeySecret", "SecurityToken"] {
        out.extend(value["Credentials"][k].as_str().map(str::to_owned));
    }
    out
}

fn assert_hidden(shown: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!shows(shown, s), "{s:?} shown in {shown}");
    }
}

fn check_ticket(result: Result<UploadTicket, vod_ingest::fuzzing::VodError>, secrets: &[String]) {
    match result {
        Err(e) => assert_hidden(&format!("{e} {e:?}"), secrets),
        Ok(ticket) => {
            let mut blank = ticket.clone();
            blank.upload_auth_b64 = Secret::new("");
            blank.auth.access_key_secret = Secret::new("");
            blank.auth.security_token = Secret::new("");
            assert_eq!(format!("{ticket:?}"), format!("{blank:?}"));
        }
    }
}

const MARKER: &str = "server string to sign is:";

fuzz_target!(|data: &[u8]| {
    let (lines, body) = fields(data, 1);
    let secrets = secrets(body);
    for action in [
        "CreateUploadVideo",
        "CreateUploadImage",
        "CreateUploadAttachedMedia",
    ] {
        check_ticket(vod_upload_answer(action, body, None), &secrets);
    }
    check_ticket(
        vod_upload_answer("RefreshUploadVideo", body, Some("v1")),
        &secrets,
    );
    let _ = vod_video_info_answer(body, "v1");
    let _ = vod_image_info_answer(body, "i1");
    match sts_assume_role_answer(body) {
        Err(e) => assert_hidden(&format!("{e} {e:?}"), &secrets),
        Ok(creds) => {
            let blank = StsCredentials {
                access_key_secret: Secret::new(""),
                security_token: Secret::new(""),
                ..creds.clone()
            };
            assert_eq!(format!("{creds:?}"), format!("{blank:?}"));
        }
    }

    // Error bodies: `redact` blanks the credential wherever the message shows it. A value that
    // is part of "[redacted]" or holds a bracket could be made up by the replacement itself.
    let secret = lines[0].unwrap_or("CAIS-token-value");
    let ours = "POST&%2F&AccessKeyId%3DSTS.x";
    for status in [400, 403, 503] {
        let err = vod_error_response(status, body, ours, &[secret.to_owned()]);
        let message = err.message();
        let checkable =
            secret.len() >= 4 && !secret.contains(['[', ']']) && !"[redacted]".contains(secret);
        if checkable {
            assert!(!message.contains(secret), "{secret:?} in {message:?}");
        }
        assert!(!message.contains(MARKER), "{message:?}");
        const UNALTERED: &str = " (the request arrived unaltered, so the AccessKeySecret is wrong)";
        const ALTERED: &str = " (the server saw a different request than the one signed: a proxy may have altered it)";
        let stated = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["Message"].as_str().map(str::to_owned))
            .filter(|m| m.contains(MARKER) && err.code() != "InvalidResponse")
            // Where the credential shows, redaction changes the text; that is checked above.
            .filter(|m| {
                secret.len() < 4 || ![m, UNALTERED, ALTERED].iter().any(|t| t.contains(secret))
            });
        if let Some(stated) = stated {
            // What precedes the echo is kept, then one of two explanations; nothing after it.
            let before = &stated[..stated.find(MARKER).unwrap()];
            let kept = before.trim_end().trim_end_matches('.');
            let rest = message
                .strip_prefix(kept)
                .unwrap_or_else(|| panic!("{message:?}"));
            assert!(rest == UNALTERED || rest == ALTERED, "{message:?}");
        }
    }
});

//! The emulator's PostObject over real HTTP: both signatures, the policy's conditions and
//! refusals with OSS's codes, what a stored form upload looks like, and CORS.

mod emulator_support;

use base64::Engine as _;
use chrono::{Duration, SecondsFormat, Utc};
use emulator_support::*;
use md5::Digest as _;
use serde_json::{json, Value};
use vod_ingest::sign::post_policy;

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn in_minutes(m: i64) -> String {
    (Utc::now() + Duration::minutes(m)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A form like the mini-program SDK's: V1, `signature` in lower case, the token, status 200.
fn v1_form(up: &Upload, policy: &Value) -> Vec<(String, String)> {
    let policy = b64(policy);
    let creds = Creds::from_upload_auth(&up.auth);
    vec![
        ("key".into(), up.address.file_name.clone()),
        ("policy".into(), policy.clone()),
        ("OSSAccessKeyId".into(), creds.id.clone()),
        ("x-oss-security-token".into(), creds.token.clone().unwrap()),
        ("success_action_status".into(), "200".into()),
        (
            "signature".into(),
            post_policy::v1_signature(&creds.secret, &policy),
        ),
    ]
}

fn set(form: &mut Vec<(String, String)>, name: &str, value: &str) {
    match form.iter_mut().find(|(k, _)| k == name) {
        Some(f) => f.1 = value.to_owned(),
        None => form.push((name.to_owned(), value.to_owned())),
    }
}

fn body_of(form: &[(String, String)], file: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "----PostObjectBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in form {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some(file) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs a form to the bucket, virtual-hosted (as the mini program does) from a page.
async fn post(
    e: &Emu,
    up: &Upload,
    form: &[(String, String)],
    file: Option<&[u8]>,
) -> reqwest::Response {
    let (content_type, body) = body_of(form, file);
    e.http
        .post(format!("{}/", e.emu.base_url()))
        .header(
            "host",
            format!("{}.localhost:{}", up.address.bucket, e.emu.addr().port()),
        )
        .header("content-type", content_type)
        .header("origin", "http://app.localhost:5173")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn stored(e: &Emu, up: &Upload) -> Option<Vec<u8>> {
    std::fs::read(e.emu.object_path(&up.address.bucket, &up.address.file_name)).ok()
}

fn mini_policy() -> Value {
    json!({"expiration": in_minutes(5), "conditions": [["content-length-range", 0, 1048576000u64]]})
}

#[tokio::test]
async fn a_mini_program_form_is_stored_and_completes_the_upload() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let data = b"a video from a mini program".repeat(1000);
    let resp = post(&e, &up, &v1_form(&up, &mini_policy()), Some(&data)).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    let md5 = md5::Md5::digest(&data);
    assert_eq!(
        h["etag"],
        format!("\"{}\"", hex::encode_upper(md5)).as_str()
    );
    assert_eq!(
        h["x-oss-hash-crc64ecma"],
        vod_ingest::crc64::checksum(&data).to_string().as_str()
    );
    assert_eq!(
        h["access-control-allow-origin"],
        "http://app.localhost:5173"
    );
    assert!(resp.text().await.unwrap().is_empty());
    assert_eq!(stored(&e, &up).unwrap(), data);
    // VOD sees the upload as it sees a PUT.
    let info = wait_for(std::time::Duration::from_secs(5), || async {
        let r = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
        r.1["Video"]["Status"] != "Uploading"
    })
    .await;
    assert!(info, "the media never left Uploading");
}

#[tokio::test]
async fn a_v4_form_answers_201_with_a_post_response_and_204_by_default() {
    let e = start().await;
    for (status, expect) in [(Some("201"), 201u16), (None, 204)] {
        let up = create_video(&e, &[]).await;
        let creds = Creds::from_upload_auth(&up.auth);
        let now = Utc::now();
        let date = now.format("%Y%m%d").to_string();
        let credential = post_policy::v4_credential(&creds.id, &date, "cn-shanghai");
        let policy = b64(&json!({
            "expiration": in_minutes(5),
            "conditions": [
                {"bucket": up.address.bucket},
                ["eq", "$key", up.address.file_name],
                {"x-oss-signature-version": "OSS4-HMAC-SHA256"},
                {"x-oss-credential": credential},
            ],
        }));
        let mut form = vec![
            ("key".to_owned(), up.address.file_name.clone()),
            ("policy".to_owned(), policy.clone()),
            (
                "x-oss-signature-version".to_owned(),
                "OSS4-HMAC-SHA256".to_owned(),
            ),
            ("x-oss-credential".to_owned(), credential.clone()),
            (
                "x-oss-date".to_owned(),
                now.format("%Y%m%dT%H%M%SZ").to_string(),
            ),
            (
                "x-oss-security-token".to_owned(),
                creds.token.clone().unwrap(),
            ),
            (
                "x-oss-signature".to_owned(),
                post_policy::v4_signature(&creds.secret, &date, "cn-shanghai", &policy),
            ),
        ];
        if let Some(s) = status {
            form.push(("success_action_status".to_owned(), s.to_owned()));
        }
        let resp = post(&e, &up, &form, Some(b"v4 bytes")).await;
        assert_eq!(resp.status().as_u16(), expect);
        let text = resp.text().await.unwrap();
        if expect == 201 {
            assert!(text.contains("<PostResponse>"), "{text}");
            let fields = xml_fields(&text.replace("PostResponse", "Error"));
            assert_eq!(fields["Bucket"], up.address.bucket);
            assert_eq!(fields["Key"], up.address.file_name);
            assert!(fields["ETag"].starts_with('"'), "{text}");
        } else {
            assert!(text.is_empty());
        }
        assert_eq!(stored(&e, &up).unwrap(), b"v4 bytes");

        // The form cannot be bent to another object: its policy binds the key.
        let other = create_video(&e, &[]).await;
        set(&mut form, "key", &other.address.file_name);
        let resp = post(&e, &other, &form, Some(b"x")).await;
        assert_oss_error(resp, 403, "AccessDenied").await;
    }
}

#[tokio::test]
async fn refusals_are_answered_as_oss_answers_them_and_store_nothing() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let file: &[u8] = b"0123456789";

    let mut form = v1_form(&up, &mini_policy());
    set(&mut form, "signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_oss_error(
        post(&e, &up, &form, Some(file)).await,
        403,
        "SignatureDoesNotMatch",
    )
    .await;

    let expired = json!({"expiration": in_minutes(-1), "conditions": []});
    let f = assert_oss_error(
        post(&e, &up, &v1_form(&up, &expired), Some(file)).await,
        403,
        "AccessDenied",
    )
    .await;
    assert_eq!(f["Message"], "Invalid according to Policy: Policy expired.");

    let small =
        json!({"expiration": in_minutes(5), "conditions": [["content-length-range", 0, 5]]});
    let f = assert_oss_error(
        post(&e, &up, &v1_form(&up, &small), Some(file)).await,
        400,
        "EntityTooLarge",
    )
    .await;
    assert_eq!(f["EC"], "0006-00000003");
    let big =
        json!({"expiration": in_minutes(5), "conditions": [["content-length-range", 100, 200]]});
    assert_oss_error(
        post(&e, &up, &v1_form(&up, &big), Some(file)).await,
        400,
        "EntityTooSmall",
    )
    .await;

    let prefix = json!({"expiration": in_minutes(5), "conditions": [["starts-with", "$key", "user/other/"]]});
    let f = assert_oss_error(
        post(&e, &up, &v1_form(&up, &prefix), Some(file)).await,
        403,
        "AccessDenied",
    )
    .await;
    assert!(
        f["Message"].contains(r#"["starts-with","$key","user/other/"]"#),
        "{}",
        f["Message"]
    );
    let status = json!({"expiration": in_minutes(5), "conditions": [["eq", "$success_action_status", "201"]]});
    assert_oss_error(
        post(&e, &up, &v1_form(&up, &status), Some(file)).await,
        403,
        "AccessDenied",
    )
    .await;

    let extra = json!({"expiration": in_minutes(5), "conditions": [], "test": "x"});
    assert_oss_error(
        post(&e, &up, &v1_form(&up, &extra), Some(file)).await,
        400,
        "InvalidPolicyDocument",
    )
    .await;
    let no_expiry = json!({"conditions": []});
    let f = assert_oss_error(
        post(&e, &up, &v1_form(&up, &no_expiry), Some(file)).await,
        400,
        "InvalidPolicyDocument",
    )
    .await;
    assert_eq!(f["EC"], "0006-00000208");
    let bad_range =
        json!({"expiration": in_minutes(5), "conditions": [["content-length-range", 10, "test"]]});
    assert_oss_error(
        post(&e, &up, &v1_form(&up, &bad_range), Some(file)).await,
        400,
        "InvalidPolicyDocument",
    )
    .await;

    // Another object than the credential's, a wrong token, no policy at all, no file.
    let mut form = v1_form(&up, &mini_policy());
    set(&mut form, "key", "sv/not-mine.mp4");
    assert_oss_error(post(&e, &up, &form, Some(file)).await, 403, "AccessDenied").await;
    let mut form = v1_form(&up, &mini_policy());
    set(&mut form, "x-oss-security-token", "forged");
    assert_oss_error(
        post(&e, &up, &form, Some(file)).await,
        403,
        "InvalidSecurityToken",
    )
    .await;
    let anonymous = vec![("key".to_owned(), up.address.file_name.clone())];
    assert_oss_error(
        post(&e, &up, &anonymous, Some(file)).await,
        403,
        "AccessDenied",
    )
    .await;
    assert_oss_error(
        post(&e, &up, &v1_form(&up, &mini_policy()), None).await,
        400,
        "MalformedPOSTRequest",
    )
    .await;
    let resp = e
        .http
        .post(format!("{}/", e.emu.base_url()))
        .header("host", format!("{}.localhost", up.address.bucket))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("not a form")
        .send()
        .await
        .unwrap();
    assert_oss_error(resp, 400, "MalformedPOSTRequest").await;

    assert!(
        stored(&e, &up).is_none(),
        "a refused form stored the object"
    );
}

#[tokio::test]
async fn a_browser_may_post_a_form_across_origins() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let resp = e
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/", e.emu.base_url()))
        .header("host", format!("{}.localhost", up.address.bucket))
        .header("origin", "http://app.localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://app.localhost:5173"
    );
    // A refused answer carries CORS too, so that the page can read why.
    let mut form = v1_form(&up, &mini_policy());
    set(&mut form, "key", "sv/${filename}");
    let resp = post(&e, &up, &form, Some(b"x")).await;
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://app.localhost:5173"
    );
    assert_oss_error(resp, 403, "AccessDenied").await;
}

//! VOD's client upload SDKs' request sequences, field for field, against the real service and
//! the emulator: the Web and mini-program SDKs' STS-mode calls (a GET from another origin, no
//! `Timestamp`), the mini program's PostObject, and the PostObject form the service signs.
//! The SDKs themselves cannot be committed (scripts/client-sdk-check.sh runs them); these
//! requests are built by our own code from what the SDKs' sources send.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::{open_limits, pattern, TestApp, TestAppOptions};
use serde_json::{json, Value};
use vod_ingest::jobs::JobState;
use vod_ingest::keys::KeyLimits;
use vod_ingest::sign;

async fn client_app() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await
}

fn decode_json(b64: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("Base64");
    serde_json::from_slice(&bytes).expect("Base64 of JSON")
}

/// A `multipart/form-data` body: the fields in order, then the file last, as `wx.uploadFile`
/// and browsers send it.
fn form_body(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("----WxFormBoundary{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs a form to `url`, resolving `<bucket>.localhost` to the emulator as a browser or
/// WeChat's runtime does; answers status and body.
async fn post_form(
    app: &TestApp,
    url: &str,
    fields: &[(&str, &str)],
    file: &[u8],
) -> (u16, String) {
    let host = url::Url::parse(url).unwrap().host_str().unwrap().to_owned();
    let http = reqwest::Client::builder()
        .resolve(&host, app.emulator().addr())
        .build()
        .unwrap();
    let (content_type, body) = form_body(fields, file);
    let resp = http
        .post(url)
        .header("Content-Type", content_type)
        .header("Origin", "http://app.localhost:5173")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of `<Tag>` in an OSS error body.
fn xml_tag(body: &str, tag: &str) -> String {
    let start = body
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + tag.len()
        + 2;
    let end = body[start..].find(&format!("</{tag}>")).unwrap() + start;
    body[start..end].to_owned()
}

/// The mini-program SDK's PostObject (`aliyun-upload-sdk-1.0.x.min.js`): to
/// `<scheme>://<Bucket>.<endpoint host>`, a V1 policy signed on the device with the
/// UploadAuth secret, `signature` in lower case, `success_action_status` 200, the file last.
fn mini_program_form(
    auth: &Value,
    address: &Value,
    port: u16,
    expiration: chrono::DateTime<chrono::Utc>,
) -> (String, Vec<(String, String)>) {
    let policy = json!({
        "expiration": expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "conditions": [["content-length-range", 0, 1_048_576_000u64]],
    });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let secret = auth["AccessKeySecret"].as_str().unwrap();
    let signature = sign::post_policy::v1_signature(secret, &policy);
    let url = format!(
        "http://{}.localhost:{port}",
        address["Bucket"].as_str().unwrap()
    );
    let fields = vec![
        (
            "key".to_owned(),
            address["FileName"].as_str().unwrap().to_owned(),
        ),
        ("policy".to_owned(), policy),
        (
            "OSSAccessKeyId".to_owned(),
            auth["AccessKeyId"].as_str().unwrap().to_owned(),
        ),
        (
            "x-oss-security-token".to_owned(),
            auth["SecurityToken"].as_str().unwrap().to_owned(),
        ),
        ("success_action_status".to_owned(), "200".to_owned()),
        ("signature".to_owned(), signature),
    ];
    (url, fields)
}

fn as_refs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mini_program_post_object_completes_a_credential_upload() {
    let app = client_app().await;
    let key = app.api_key(open_limits()).await;
    let data = pattern(300_000, 3);
    let issued = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "title": "Mini", "file_name": "mini.mp4", "file_size": data.len()}),
        )
        .await;
    assert_eq!(issued.status, 200, "{issued:#?}");
    let auth = decode_json(issued.body["upload_auth"].as_str().unwrap());
    let address = decode_json(issued.body["upload_address"].as_str().unwrap());
    let port = app.emulator().addr().port();
    let in_five_minutes = chrono::Utc::now() + chrono::Duration::minutes(5);

    // Refusals first, as OSS answers them; none stores anything.
    let (url, mut fields) = mini_program_form(&auth, &address, port, in_five_minutes);
    fields[5].1 = sign::post_policy::v1_signature("not-the-secret", &fields[1].1);
    let (status, body) = post_form(&app, &url, &as_refs(&fields), &data).await;
    assert_eq!(
        (status, xml_tag(&body, "Code").as_str()),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );
    let a_minute_ago = chrono::Utc::now() - chrono::Duration::minutes(1);
    let (url, fields) = mini_program_form(&auth, &address, port, a_minute_ago);
    let (status, body) = post_form(&app, &url, &as_refs(&fields), &data).await;
    assert_eq!(
        (status, xml_tag(&body, "Code").as_str()),
        (403, "AccessDenied"),
        "{body}"
    );
    assert!(
        xml_tag(&body, "Message").contains("Policy expired"),
        "{body}"
    );
    let job_id = issued.body["job_id"].as_str().unwrap();
    let job = app.store().get(job_id).await.unwrap().unwrap();
    assert_eq!(job.state(), JobState::AwaitingUpload);

    let (url, fields) = mini_program_form(&auth, &address, port, in_five_minutes);
    let (status, body) = post_form(&app, &url, &as_refs(&fields), &data).await;
    assert_eq!(status, 200, "{body}");
    let job = app.wait_for_state(job_id, JobState::Completed).await;
    assert!(app.object_bytes(&job) == data);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_form_signed_by_the_service_uploads_and_holds_the_size_before_storing() {
    let app = client_app().await;
    let key = app
        .api_key(KeyLimits {
            max_file_size: 250_000,
            ..open_limits()
        })
        .await;
    let ask = |size: usize| json!({"kind": "video", "title": "Form", "file_name": "form.mp4", "file_size": size, "upload_method": "post_form"});

    // Declared 100 kB, sent 150 kB: OSS refuses, nothing is stored, the job waits on.
    let issued = app.api_post("/v1/uploads", Some(&key), ask(100_000)).await;
    assert_eq!(issued.status, 200, "{issued:#?}");
    let form = &issued.body["form"];
    let fields: BTreeMap<String, String> = serde_json::from_value(form["fields"].clone()).unwrap();
    let address = decode_json(issued.body["upload_address"].as_str().unwrap());
    assert_eq!(fields["key"], address["FileName"].as_str().unwrap());
    assert_eq!(fields["x-oss-signature-version"], "OSS4-HMAC-SHA256");
    let policy = decode_json(&fields["policy"]);
    assert!(
        policy["conditions"].as_array().unwrap().contains(&json!([
            "content-length-range",
            0,
            100_000
        ])),
        "{policy}"
    );
    let fields_in_order: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = form["url"].as_str().unwrap();
    let (status, body) = post_form(&app, url, &fields_in_order, &pattern(150_000, 4)).await;
    assert_eq!(
        (status, xml_tag(&body, "Code").as_str()),
        (400, "EntityTooLarge"),
        "{body}"
    );
    let job = app
        .store()
        .get(issued.body["job_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state(), JobState::AwaitingUpload);
    let stored = app.emulator().object_path(
        address["Bucket"].as_str().unwrap(),
        address["FileName"].as_str().unwrap(),
    );
    assert!(
        !stored.exists(),
        "a refused form stored {}",
        stored.display()
    );

    // A form cannot be bent to another object: its policy binds the key.
    let mut other = fields_in_order.clone();
    other[0] = ("key", "sv/someone-else.mp4");
    let (status, body) = post_form(&app, url, &other, &pattern(1_000, 5)).await;
    assert_eq!(
        (status, xml_tag(&body, "Code").as_str()),
        (403, "AccessDenied"),
        "{body}"
    );

    // Within the size: stored, and the job completes as any client upload.
    let data = pattern(200_000, 6);
    let issued = app
        .api_post("/v1/uploads", Some(&key), ask(data.len()))
        .await;
    assert_eq!(issued.status, 200, "{issued:#?}");
    let fields: BTreeMap<String, String> =
        serde_json::from_value(issued.body["form"]["fields"].clone()).unwrap();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, body) = post_form(
        &app,
        issued.body["form"]["url"].as_str().unwrap(),
        &fields,
        &data,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let job = app
        .wait_for_state(issued.body["job_id"].as_str().unwrap(), JobState::Completed)
        .await;
    assert!(app.object_bytes(&job) == data);

    // Refresh hands out a new form for the same object; the default answer has none.
    let issued = app.api_post("/v1/uploads", Some(&key), ask(1_000)).await;
    assert!(issued.body["form"].is_object());
    let plain = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "title": "t", "file_name": "a.mp4", "file_size": 1}),
        )
        .await;
    assert!(plain.body.get("form").is_none(), "{:#}", plain.body);
    let path = format!(
        "/v1/uploads/{}/refresh",
        issued.body["job_id"].as_str().unwrap()
    );
    let refreshed = app
        .api_post(&path, Some(&key), json!({"upload_method": "post_form"}))
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:#?}");
    let fields = &refreshed.body["form"]["fields"];
    assert_eq!(fields["key"], issued.body["form"]["fields"]["key"]);
    let bad = app
        .api_post("/v1/uploads", Some(&key), json!({"kind": "video", "title": "t", "file_name": "a.mp4", "file_size": 1, "upload_method": "ftp"}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["message"].as_str().unwrap().contains("post_form"),
        "{:#}",
        bad.body
    );
    app.stop().await;
}

/// The Web and mini-program SDKs in STS mode (`src/upload/vod/data.js`): CreateUploadVideo
/// signed on the device, sent as a GET from the app's page, with `RequestId` and no
/// `Timestamp`; the upload that follows is recorded as an `sts` job.
#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_sts_mode_calls_from_a_page_are_answered_and_recorded() {
    let app = client_app().await;
    let key = app.api_key(open_limits()).await;
    let token = app
        .api_post("/v1/sts-token", Some(&key), json!({"kinds": ["video"]}))
        .await;
    assert_eq!(token.status, 200, "{token:#?}");
    let t = &token.body;
    let secret = t["access_key_secret"].as_str().unwrap();
    let data = pattern(150_000, 7);
    let params = |nonce: &str| -> BTreeMap<String, String> {
        [
            ("AccessKeyId", t["access_key_id"].as_str().unwrap()),
            ("SecurityToken", t["security_token"].as_str().unwrap()),
            ("Action", "CreateUploadVideo"),
            ("Title", "From the page"),
            ("FileName", "page.mp4"),
            ("Version", "2017-03-21"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", nonce),
            ("RequestId", "undefined"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let http = reqwest::Client::new();
    let get = |p: BTreeMap<String, String>| {
        let url = format!(
            "{}/?{}",
            app.emulator().base_url(),
            sign::rpc::to_query_string(&p)
        );
        http.get(url)
            .header("Origin", "http://app.localhost:5173")
            .send()
    };

    let mut forged = params(&uuid::Uuid::new_v4().to_string());
    sign::rpc::sign_params("GET", &mut forged, "not-the-secret");
    let resp = get(forged).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["Code"], "SignatureDoesNotMatch", "{body}");

    let mut signed = params(&uuid::Uuid::new_v4().to_string());
    sign::rpc::sign_params("GET", &mut signed, secret);
    let resp = get(signed).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let created: Value = resp.json().await.unwrap();
    common::client_put(
        created["UploadAddress"].as_str().unwrap(),
        created["UploadAuth"].as_str().unwrap(),
        data.clone(),
    )
    .await;
    let job_id = format!("sts:{}", created["VideoId"].as_str().unwrap());
    let job = app.wait_for_state(&job_id, JobState::Completed).await;
    assert_eq!(job.origin, vod_ingest::jobs::Origin::Sts);
    assert_eq!(job.bytes_total, Some(data.len() as i64));
    let address = decode_json(created["UploadAddress"].as_str().unwrap());
    let stored = app.emulator().object_path(
        address["Bucket"].as_str().unwrap(),
        address["FileName"].as_str().unwrap(),
    );
    assert!(std::fs::read(stored).unwrap() == data);
    app.stop().await;
}

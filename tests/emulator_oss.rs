//! The emulator's OSS side and what follows an upload (media status, callbacks), over real
//! HTTP: V1 signature verification, credential scope and expiry, PutObject / HeadObject /
//! GetObject, error bodies.

mod emulator_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use emulator_support::*;
use md5::Digest as _;
use serde_json::json;
use vod_ingest::crc64;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

/// Deterministic test data (not all-zero, so offsets matter).
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn video_status(e: &Emu, id: &str) -> serde_json::Value {
    let resp = vod(e, "GetVideoInfo", &[("VideoId", id)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    resp.1["Video"].clone()
}

#[tokio::test]
async fn video_upload_end_to_end() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let body = data(300_000);
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .header("content-type", "video/mp4")
    .header("content-md5", &b64(&md5_of(&body)))
    .body(body.clone())
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let h = resp.headers();
    assert_eq!(
        h["etag"],
        format!("\"{}\"", hex::encode_upper(md5_of(&body)))
    );
    assert_eq!(
        h["x-oss-hash-crc64ecma"],
        crc64::checksum(&body).to_string()
    );
    assert_eq!(h["content-md5"], b64(&md5_of(&body)));
    assert_eq!(h["server"], "AliyunOSS");
    assert_eq!(h["x-oss-request-id"].len(), 24);

    // The bytes on disk are the bytes sent.
    let on_disk =
        std::fs::read(e.emu.object_path(&up.address.bucket, &up.address.file_name)).unwrap();
    assert!(on_disk == body);

    let head = OssCall::new(
        "HEAD",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .send(&e)
    .await;
    assert_eq!(head.status(), 200);
    let h = head.headers();
    assert_eq!(h["content-length"], body.len().to_string());
    assert_eq!(h["content-type"], "video/mp4");
    assert_eq!(h["x-oss-object-type"], "Normal");
    assert_eq!(
        h["x-oss-hash-crc64ecma"],
        crc64::checksum(&body).to_string()
    );
    assert_eq!(
        h["etag"],
        format!("\"{}\"", hex::encode_upper(md5_of(&body)))
    );
    assert!(httpdate::parse_http_date(h["last-modified"].to_str().unwrap()).is_ok());

    let get = OssCall::new(
        "GET",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .send(&e)
    .await;
    assert_eq!(get.status(), 200);
    assert!(get.bytes().await.unwrap() == body);

    // Uploading -> UploadSucc (with its size) -> Normal once "transcoded".
    let v = video_status(&e, &up.id).await;
    assert!(
        v["Status"] == "UploadSucc" || v["Status"] == "Normal",
        "{v}"
    );
    assert_eq!(v["Size"], body.len());
    let normal = wait_for(Duration::from_secs(5), || async {
        video_status(&e, &up.id).await["Status"] == "Normal"
    })
    .await;
    assert!(normal);

    let stats = e.emu.stats();
    assert_eq!(stats.requests.get("PutObject"), Some(&1));
    assert_eq!(stats.requests.get("HeadObject"), Some(&1));
    assert_eq!(stats.requests.get("GetObject"), Some(&1));
    assert_eq!(stats.bytes_received, body.len() as u64);
    assert_eq!(stats.objects, 1);
}

#[tokio::test]
async fn image_and_attached_media_uploads() {
    let e = start().await;
    let resp = vod(
        &e,
        "CreateUploadImage",
        &[
            ("ImageType", "default"),
            ("ImageExt", "jpg"),
            ("OriginalFileName", "p.jpg"),
        ],
    )
    .await;
    let img = decode_upload(&resp.1, "ImageId");
    let creds = Creds::from_upload_auth(&img.auth);
    let put = OssCall::new(
        "PUT",
        &img.address.bucket,
        &img.address.file_name,
        Some(&creds),
    )
    .body(data(1234))
    .send(&e)
    .await;
    assert_eq!(put.status(), 200);
    let info = vod(&e, "GetImageInfo", &[("ImageId", &img.id)]).await;
    assert_eq!(info.1["ImageInfo"]["Status"], "Normal");
    assert_eq!(info.1["ImageInfo"]["Mezzanine"]["FileSize"], 1234);
    assert_eq!(
        info.1["ImageInfo"]["Mezzanine"]["OriginalFileName"],
        "p.jpg"
    );

    let resp = vod(
        &e,
        "CreateUploadAttachedMedia",
        &[("BusinessType", "watermark"), ("MediaExt", "png")],
    )
    .await;
    let att = decode_upload(&resp.1, "MediaId");
    let creds = Creds::from_upload_auth(&att.auth);
    let put = OssCall::new(
        "PUT",
        &att.address.bucket,
        &att.address.file_name,
        Some(&creds),
    )
    .body(data(10))
    .send(&e)
    .await;
    assert_eq!(put.status(), 200);
    assert_eq!(e.emu.stats().objects, 2);
}

#[tokio::test]
async fn authorization_header_problems() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let creds = Creds::from_upload_auth(&up.auth);

    let f = assert_oss_error(
        OssCall::new("PUT", bucket, key, None)
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
    assert!(f["HostId"].starts_with("127.0.0.1:"));
    for bad in ["OSS", "OSS nocolon", "Bearer abc", "OSS :sig", "OSS id:"] {
        let resp = OssCall::new("PUT", bucket, key, Some(&creds))
            .header("authorization", bad)
            .body("x")
            .send(&e)
            .await;
        assert_oss_error(resp, 400, "InvalidArgument").await;
    }
    let stranger = Creds {
        id: "LTAI-nobody".into(),
        secret: "s".into(),
        token: None,
    };
    let f = assert_oss_error(
        OssCall::new("PUT", bucket, key, Some(&stranger))
            .body("x")
            .send(&e)
            .await,
        403,
        "InvalidAccessKeyId",
    )
    .await;
    assert_eq!(f["OSSAccessKeyId"], "LTAI-nobody");
    // An STS AccessKeyId without its token is unknown.
    let no_token = Creds {
        token: None,
        ..creds.clone()
    };
    assert_oss_error(
        OssCall::new("PUT", bucket, key, Some(&no_token))
            .body("x")
            .send(&e)
            .await,
        403,
        "InvalidAccessKeyId",
    )
    .await;
    let garbled = Creds {
        token: Some("CAISnope".into()),
        ..creds.clone()
    };
    let resp = OssCall::new("PUT", bucket, key, Some(&garbled))
        .body("x")
        .send(&e)
        .await;
    assert_eq!(resp.headers()["x-oss-ec"], "0002-00000006");
    assert_oss_error(resp, 403, "InvalidSecurityToken").await;
    let other = create_video(&e, &[]).await;
    let foreign = Creds {
        token: Some(other.auth.security_token.expose().to_owned()),
        ..creds.clone()
    };
    assert_oss_error(
        OssCall::new("PUT", bucket, key, Some(&foreign))
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessKeyIdAndSecurityTokenNotMatch",
    )
    .await;
    let f = assert_oss_error(
        OssCall::new("PUT", bucket, key, Some(&creds))
            .header("date", "yesterday")
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
    assert!(f["Message"].contains("Date"));
}

#[tokio::test]
async fn wrong_signature_shows_the_string_to_sign() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let mut creds = Creds::from_upload_auth(&up.auth);
    creds.secret = "wrong secret".into();
    let date = http_date(std::time::SystemTime::now());
    let call = OssCall::new("PUT", bucket, key, Some(&creds))
        .header("date", &date)
        .header("content-type", "video/mp4")
        .body("x");
    let headers = vec![
        ("date".to_owned(), date.clone()),
        ("content-type".to_owned(), "video/mp4".to_owned()),
        (
            "x-oss-security-token".to_owned(),
            creds.token.clone().unwrap(),
        ),
    ];
    let expected = call.string_to_sign(&headers);
    let provided = vod_ingest::sign::oss::signature(&expected, &creds.secret);
    let f = assert_oss_error(call.send(&e).await, 403, "SignatureDoesNotMatch").await;
    assert_eq!(
        f["Message"],
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    );
    assert_eq!(f["StringToSign"], expected);
    assert!(
        f["StringToSign"].starts_with(&format!("PUT\n\nvideo/mp4\n{date}\nx-oss-security-token:"))
    );
    assert!(f["StringToSign"].ends_with(&format!("\n/{bucket}/{key}")));
    let bytes: Vec<String> = expected.bytes().map(|b| format!("{b:02X}")).collect();
    assert_eq!(f["StringToSignBytes"], bytes.join(" "));
    assert_eq!(f["SignatureProvided"], provided);
    assert_eq!(f["OSSAccessKeyId"], creds.id);
}

#[tokio::test]
async fn skewed_request_time() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let old = std::time::SystemTime::now() - Duration::from_secs(16 * 60);
    let f = assert_oss_error(
        OssCall::new(
            "PUT",
            &up.address.bucket,
            &up.address.file_name,
            Some(&creds),
        )
        .header("date", &http_date(old))
        .body("x")
        .send(&e)
        .await,
        403,
        "RequestTimeTooSkewed",
    )
    .await;
    assert_eq!(f["MaxAllowedSkewMilliseconds"], "900000");
    assert!(f["RequestTime"].ends_with(".000Z") && f["ServerTime"].ends_with('Z'));
    // x-oss-date wins over Date, for the skew check as for the signature.
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .header("date", &http_date(old))
    .header("x-oss-date", &http_date(std::time::SystemTime::now()))
    .body("x")
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn expired_upload_credentials() {
    let e = start_with(|c| c.credential_ttl = Duration::from_secs(1)).await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    wait_until(up.auth.expires_at).await;
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .body("late")
    .send(&e)
    .await;
    assert_eq!(resp.headers()["x-oss-ec"], "0002-00000007");
    let f = assert_oss_error(resp, 403, "SecurityTokenExpired").await;
    assert_eq!(f["Message"], "The security token you provided has expired.");
    assert_eq!(f["EC"], "0002-00000007");
    // RefreshUploadVideo gives working credentials for the same object.
    let resp = vod(&e, "RefreshUploadVideo", &[("VideoId", &up.id)]).await;
    let fresh = decode_upload(&resp.1, "VideoId");
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&Creds::from_upload_auth(&fresh.auth)),
    )
    .body("on time")
    .send(&e)
    .await;
    // The fresh credential also lives 1 s; on a slow machine it may already be gone.
    assert!(resp.status() == 200 || resp.status() == 403);
}

#[tokio::test]
async fn credential_ttl_can_change_at_run_time() {
    let e = start().await;
    set_faults(&e, json!({"credential_ttl_seconds": 2})).await;
    let up = create_video(&e, &[]).await;
    let left = (up.auth.expires_at - chrono::Utc::now()).num_seconds();
    assert!((0..=2).contains(&left), "{left}");
    set_faults(&e, json!({"credential_ttl_seconds": null})).await;
    let up = create_video(&e, &[]).await;
    let left = (up.auth.expires_at - chrono::Utc::now()).num_seconds();
    assert!(left > 2900, "{left}");
}

#[tokio::test]
async fn upload_credentials_are_scoped_to_their_object() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let bucket = up.address.bucket.as_str();
    let other_key = format!("{}other.mp4", up.address.object_prefix.as_deref().unwrap());
    let f = assert_oss_error(
        OssCall::new("PUT", bucket, &other_key, Some(&creds))
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
    assert_eq!(f["Message"], "You have no right to access this object.");
    // Another media's object.
    let other = create_video(&e, &[]).await;
    assert_oss_error(
        OssCall::new("PUT", bucket, &other.address.file_name, Some(&creds))
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
    // Deleting is not an upload right.
    assert_oss_error(
        OssCall::new("DELETE", bucket, &up.address.file_name, Some(&creds))
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
    // Unknown bucket.
    let f = assert_oss_error(
        OssCall::new("PUT", "outin-nope", &up.address.file_name, Some(&creds))
            .body("x")
            .send(&e)
            .await,
        404,
        "NoSuchBucket",
    )
    .await;
    assert_eq!(f["BucketName"], "outin-nope");
    // AssumeRole credentials have no rights on VOD's bucket.
    let sts = call(
        &e,
        &Creds::root(),
        "AssumeRole",
        STS,
        &[("RoleArn", "acs:ram::1:role/r"), ("RoleSessionName", "ab")],
    )
    .await;
    let c = &sts.1["Credentials"];
    let role = Creds {
        id: c["AccessKeyId"].as_str().unwrap().into(),
        secret: c["AccessKeySecret"].as_str().unwrap().into(),
        token: Some(c["SecurityToken"].as_str().unwrap().into()),
    };
    assert_oss_error(
        OssCall::new("PUT", bucket, &up.address.file_name, Some(&role))
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
    // The configured AccessKey may write anywhere in the bucket, and delete.
    let root = Creds::root();
    let resp = OssCall::new("PUT", bucket, "free/form key.bin", Some(&root))
        .body("x")
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200);
    let resp = OssCall::new("DELETE", bucket, "free/form key.bin", Some(&root))
        .send(&e)
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(e.emu.stats().objects, 0);
}

#[tokio::test]
async fn m3u8_credentials_cover_the_prefix() {
    let e = start().await;
    let up = create_video(&e, &[("FileName", "list.m3u8")]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let prefix = up.address.object_prefix.clone().unwrap();
    let bucket = up.address.bucket.as_str();
    let seg = format!("{prefix}seg-0001.ts");
    let resp = OssCall::new("PUT", bucket, &seg, Some(&creds))
        .body(data(100))
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200);
    // A segment does not complete the upload; the playlist does.
    assert_eq!(video_status(&e, &up.id).await["Status"], "Uploading");
    let resp = OssCall::new("PUT", bucket, &up.address.file_name, Some(&creds))
        .body("#EXTM3U\nseg-0001.ts\n")
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200);
    assert_ne!(video_status(&e, &up.id).await["Status"], "Uploading");
    assert_oss_error(
        OssCall::new("PUT", bucket, "sv/elsewhere/seg.ts", Some(&creds))
            .body("x")
            .send(&e)
            .await,
        403,
        "AccessDenied",
    )
    .await;
}

#[tokio::test]
async fn content_md5_is_checked() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let f = assert_oss_error(
        OssCall::new("PUT", bucket, key, Some(&creds))
            .header("content-md5", &b64(&md5_of(b"other")))
            .body("0123456789")
            .send(&e)
            .await,
        400,
        "InvalidDigest",
    )
    .await;
    assert_eq!(f["Message"], "The Content-MD5 you specified was invalid.");
    // Hex instead of base64 of the raw digest: the classic mistake.
    assert_oss_error(
        OssCall::new("PUT", bucket, key, Some(&creds))
            .header("content-md5", &hex::encode(md5_of(b"0123456789")))
            .body("0123456789")
            .send(&e)
            .await,
        400,
        "InvalidDigest",
    )
    .await;
    // Nothing was stored, and the media is still uploading.
    assert_eq!(e.emu.stats().objects, 0);
    assert_eq!(video_status(&e, &up.id).await["Status"], "Uploading");
    let resp = OssCall::new("PUT", bucket, key, Some(&creds))
        .header("content-md5", "eB5eJF1ptWaXm4bijSPyxw==")
        .body("0123456789")
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-oss-hash-crc64ecma"],
        "2838902930144391966"
    );
}

#[tokio::test]
async fn head_errors_have_no_body_but_carry_the_error_in_headers() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let resp = OssCall::new(
        "HEAD",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .send(&e)
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-oss-ec"], "0026-00000001");
    let err = base64::engine::general_purpose::STANDARD
        .decode(resp.headers()["x-oss-err"].as_bytes())
        .unwrap();
    let fields = xml_fields(std::str::from_utf8(&err).unwrap());
    assert_eq!(fields["Code"], "NoSuchKey");
    assert_eq!(
        fields["RequestId"],
        resp.headers()["x-oss-request-id"].to_str().unwrap()
    );
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = OssCall::new(
        "GET",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .send(&e)
    .await;
    let f = assert_oss_error(resp, 404, "NoSuchKey").await;
    assert_eq!(f["Key"], up.address.file_name);
}

#[tokio::test]
async fn keys_are_decoded_and_signed_raw() {
    let e = start().await;
    let bucket = create_video(&e, &[]).await.address.bucket;
    let root = Creds::root();
    let key = "dir/视频 1+a%20b.mp4";
    let resp = OssCall::new("PUT", &bucket, key, Some(&root))
        .body("hello world")
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        resp.headers()["x-oss-hash-crc64ecma"],
        "5981764153023615706"
    );
    let get = OssCall::new("GET", &bucket, key, Some(&root))
        .send(&e)
        .await;
    assert_eq!(get.bytes().await.unwrap().as_ref(), b"hello world");
    assert_eq!(
        std::fs::read(e.emu.object_path(&bucket, key)).unwrap(),
        b"hello world"
    );
    // The same object through a slash-preserving URL (other SDKs do not encode `/`).
    let date = http_date(std::time::SystemTime::now());
    let sts = format!("GET\n\n\n{date}\n/{bucket}/{key}");
    let sig = vod_ingest::sign::oss::signature(&sts, SECRET);
    let url = format!(
        "{}/{bucket}/dir/%E8%A7%86%E9%A2%91%201+a%2520b.mp4",
        e.emu.base_url()
    );
    let resp = e
        .http
        .get(url)
        .header("date", date)
        .header("authorization", format!("OSS {AK}:{sig}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn virtual_hosted_requests() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let host = format!("{}.localhost:{}", up.address.bucket, e.emu.addr().port());
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .host(host.clone())
    .body("vhost")
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let mut bad = creds.clone();
    bad.secret = "x".into();
    let resp = OssCall::new(
        "HEAD",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .host(host.clone())
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200);
    let resp = OssCall::new("GET", &up.address.bucket, &up.address.file_name, Some(&bad))
        .host(host.clone())
        .send(&e)
        .await;
    let f = assert_oss_error(resp, 403, "SignatureDoesNotMatch").await;
    assert_eq!(f["HostId"], host);
}

#[tokio::test]
async fn large_bodies_are_streamed() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let body = data(8 * 1024 * 1024 + 17);
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .body(body.clone())
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-oss-hash-crc64ecma"],
        crc64::checksum(&body).to_string()
    );
    assert_eq!(e.emu.stats().bytes_received, body.len() as u64);
}

#[tokio::test]
async fn injected_oss_failure() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    set_faults(
        &e,
        json!({"fail_next": [{"action": "PutObject", "code": "InternalError", "status": 500}]}),
    )
    .await;
    let put = || {
        OssCall::new(
            "PUT",
            &up.address.bucket,
            &up.address.file_name,
            Some(&creds),
        )
        .body("x")
    };
    assert_oss_error(put().send(&e).await, 500, "InternalError").await;
    assert_eq!(put().send(&e).await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Callbacks

#[derive(Debug, Clone)]
struct Received {
    headers: axum::http::HeaderMap,
    body: String,
}

/// A tiny receiver that records every request and answers `status`.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(Received { headers, body });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn callback_is_signed_and_carries_the_documented_payload() {
    let (url, got) = receiver(200).await;
    let e = start_with(|c| c.callback_key = Some("cb-key".into())).await;
    let user_data =
        json!({"MessageCallback": {"CallbackURL": url}, "Extend": {"job": "42"}}).to_string();
    let up = create_video(&e, &[("UserData", &user_data)]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .body(data(500))
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        wait_for(Duration::from_secs(5), || async {
            !got.lock().unwrap().is_empty()
        })
        .await
    );
    let r = got.lock().unwrap()[0].clone();
    assert_eq!(r.headers["content-type"], "application/json");
    let ts = r.headers["x-vod-timestamp"].to_str().unwrap();
    assert_eq!(ts.len(), 10);
    assert!((chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap()).abs() < 10);
    let expected = format!("{:x}", md5::Md5::digest(format!("{url}|{ts}|cb-key")));
    assert_eq!(r.headers["x-vod-signature"], expected.as_str());

    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let event_time = v["EventTime"].as_str().unwrap();
    assert!(chrono::NaiveDateTime::parse_from_str(event_time, "%Y-%m-%dT%H:%M:%SZ").is_ok());
    let file_url = format!(
        "{}/{}/{}",
        e.emu.base_url(),
        up.address.bucket,
        up.address.file_name
    );
    // Compact, Status first, Extend as a JSON string.
    assert_eq!(
        r.body,
        format!(
            r#"{{"Status":"success","EventTime":"{event_time}","EventType":"FileUploadComplete","VideoId":"{}","Size":500,"FileUrl":"{file_url}","Extend":"{{\"job\":\"42\"}}"}}"#,
            up.id
        )
    );
    assert!(
        wait_for(Duration::from_secs(2), || async {
            e.emu.stats().callbacks_sent == 1
        })
        .await
    );
}

#[tokio::test]
async fn image_and_attached_callbacks_go_to_the_default_url_unsigned() {
    let (url, got) = receiver(200).await;
    let e = start_with(|c| c.callback_url = Some(url.clone())).await;
    let resp = vod(&e, "CreateUploadImage", &[("ImageType", "default")]).await;
    let img = decode_upload(&resp.1, "ImageId");
    let resp = vod(
        &e,
        "CreateUploadAttachedMedia",
        &[("BusinessType", "material"), ("MediaExt", "zip")],
    )
    .await;
    let att = decode_upload(&resp.1, "MediaId");
    for up in [&img, &att] {
        let creds = Creds::from_upload_auth(&up.auth);
        let resp = OssCall::new(
            "PUT",
            &up.address.bucket,
            &up.address.file_name,
            Some(&creds),
        )
        .body("12345")
        .send(&e)
        .await;
        assert_eq!(resp.status(), 200);
    }
    assert!(
        wait_for(Duration::from_secs(5), || async {
            got.lock().unwrap().len() == 2
        })
        .await
    );
    let bodies: Vec<Received> = got.lock().unwrap().clone();
    for r in &bodies {
        assert!(
            r.headers.get("x-vod-signature").is_none()
                && r.headers.get("x-vod-timestamp").is_none()
        );
        assert!(r.body.starts_with(r#"{"Status":"success","#), "{}", r.body);
    }
    let by_type = |t: &str| {
        bodies
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap())
            .find(|v| v["EventType"] == t)
            .unwrap()
    };
    let i = by_type("ImageUploadComplete");
    assert_eq!(i["ImageId"], img.id.as_str());
    assert_eq!(i["Size"], 5);
    assert_eq!(i["AppId"], "app-1000000");
    assert!(i["FileURL"]
        .as_str()
        .unwrap()
        .ends_with(&img.address.file_name));
    let a = by_type("AttachedMediaUploadComplete");
    assert_eq!(a["AttachedMediaId"], att.id.as_str());
    assert!(a["FileURL"].is_string() && a.get("Extend").is_none());
}

#[tokio::test]
async fn failing_callbacks_are_tried_three_times_then_dropped() {
    let (url, got) = receiver(500).await;
    let e = start_with(|c| c.callback_url = Some(url.clone())).await;
    // No transcoding: the upload event is the only one.
    let up = create_video(&e, &[("TemplateGroupId", "VOD_NO_TRANSCODE")]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let started = std::time::Instant::now();
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .body("x")
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the PUT does not wait for the callback"
    );
    assert!(
        wait_for(Duration::from_secs(10), || async {
            e.emu.stats().callbacks_failed == 1
        })
        .await
    );
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "same body on every attempt"
    );
    assert_eq!(e.emu.stats().callbacks_sent, 0);
}

#[tokio::test]
async fn callback_faults_drop_and_duplicate() {
    let (url, got) = receiver(200).await;
    let e = start_with(|c| c.callback_url = Some(url.clone())).await;
    set_faults(&e, json!({"callback_drop": true})).await;
    // No transcoding: the upload events are the only ones.
    let no_transcode = [("TemplateGroupId", "VOD_NO_TRANSCODE")];
    let up = create_video(&e, &no_transcode).await;
    let put = |up: &Upload| {
        let creds = Creds::from_upload_auth(&up.auth);
        let (b, k) = (up.address.bucket.clone(), up.address.file_name.clone());
        let e = &e;
        async move {
            let resp = OssCall::new("PUT", &b, &k, Some(&creds))
                .body("x")
                .send(e)
                .await;
            assert_eq!(resp.status(), 200);
        }
    };
    put(&up).await;
    assert_eq!(e.emu.stats().callbacks_failed, 1);
    set_faults(
        &e,
        json!({"callback_drop": false, "callback_duplicate": true}),
    )
    .await;
    let up = create_video(&e, &no_transcode).await;
    put(&up).await;
    assert!(
        wait_for(Duration::from_secs(5), || async {
            got.lock().unwrap().len() == 2
        })
        .await
    );
    let got = got.lock().unwrap().clone();
    assert_eq!(got[0].body, got[1].body);
}

// ---------------------------------------------------------------------------------------------
// V4 signatures, signed here by an independent minimal implementation of `docs/reference/oss.md` §1.5.

fn v4_sign(
    secret: &str,
    method: &str,
    bucket: &str,
    key: &str,
    headers: &[(String, String)],
    datetime: &str,
    region: &str,
) -> String {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let enc = |s: &str, keep_slash: bool| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-oss-") || n == "content-type" || n == "content-md5")
        .cloned()
        .collect();
    signed.sort();
    let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{method}\n{}\n\n{canonical_headers}\n\nUNSIGNED-PAYLOAD",
        enc(&format!("/{bucket}/{key}"), true)
    );
    let date = &datetime[..8];
    let sts = format!(
        "OSS4-HMAC-SHA256\n{datetime}\n{date}/{region}/oss/aliyun_v4_request\n{}",
        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
    let mac = |k: &[u8], m: &[u8]| {
        let mut h = Hmac::<Sha256>::new_from_slice(k).unwrap();
        h.update(m);
        h.finalize().into_bytes().to_vec()
    };
    let mut k = mac(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    for part in [region.as_bytes(), b"oss", b"aliyun_v4_request"] {
        k = mac(&k, part);
    }
    format!(
        "OSS4-HMAC-SHA256 Credential={{id}}/{date}/{region}/oss/aliyun_v4_request,Signature={}",
        hex::encode(mac(&k, sts.as_bytes()))
    )
}

async fn v4_put(
    e: &Emu,
    up: &Upload,
    creds: &Creds,
    region: &str,
    date_shift: i64,
) -> reqwest::Response {
    let datetime = (chrono::Utc::now() + chrono::Duration::seconds(date_shift))
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let headers = vec![
        ("content-type".to_owned(), "video/mp4".to_owned()),
        (
            "x-oss-content-sha256".to_owned(),
            "UNSIGNED-PAYLOAD".to_owned(),
        ),
        ("x-oss-date".to_owned(), datetime.clone()),
        (
            "x-oss-security-token".to_owned(),
            creds.token.clone().unwrap(),
        ),
    ];
    let auth = v4_sign(
        &creds.secret,
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        &headers,
        &datetime,
        region,
    )
    .replace("{id}", &creds.id);
    let mut call = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(creds),
    )
    .header("authorization", &auth)
    .body("v4 body");
    for (k, v) in headers {
        call = call.header(&k, &v);
    }
    call.send(e).await
}

#[tokio::test]
async fn v4_signatures_are_verified() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let resp = v4_put(&e, &up, &creds, "cn-shanghai", 0).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let wrong = Creds {
        secret: "nope".into(),
        ..creds.clone()
    };
    let f = assert_oss_error(
        v4_put(&e, &up, &wrong, "cn-shanghai", 0).await,
        403,
        "SignatureDoesNotMatch",
    )
    .await;
    assert!(f["StringToSign"].starts_with("OSS4-HMAC-SHA256\n"));
    assert!(f["CanonicalRequest"].starts_with("PUT\n/"));
    let f = assert_oss_error(
        v4_put(&e, &up, &creds, "cn-beijing", 0).await,
        400,
        "InvalidArgument",
    )
    .await;
    assert!(f["Message"].contains("region"));
    assert_oss_error(
        v4_put(&e, &up, &creds, "cn-shanghai", -20 * 60).await,
        403,
        "RequestTimeTooSkewed",
    )
    .await;
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .header(
        "authorization",
        "OSS4-HMAC-SHA256 Credential=x, Signature=y",
    )
    .body("x")
    .send(&e)
    .await;
    assert_oss_error(resp, 400, "InvalidArgument").await;
}

#[tokio::test]
async fn ranged_reads() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let body = data(1000);
    let put = OssCall::new("PUT", bucket, key, Some(&creds))
        .body(body.clone())
        .send(&e)
        .await;
    assert_eq!(put.status(), 200);
    let get = |range: &'static str, standard: bool| {
        let mut c = OssCall::new("GET", bucket, key, Some(&creds)).header("range", range);
        if standard {
            c = c.header("x-oss-range-behavior", "standard");
        }
        c.send(&e)
    };
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=10-5000", 10, 999),
    ] {
        let resp = get(range, false).await;
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {start}-{end}/1000").as_str()
        );
        // The whole object's CRC, even for a range (`docs/reference/oss.md` §3.3).
        assert_eq!(
            resp.headers()["x-oss-hash-crc64ecma"],
            crc64::checksum(&body).to_string()
        );
        assert!(resp.bytes().await.unwrap() == body[start..=end]);
    }
    // Unsatisfiable: the whole object by default, 416 when asked for standard behaviour.
    let resp = get("bytes=2000-3000", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
    let f = assert_oss_error(get("bytes=2000-3000", true).await, 416, "InvalidRange").await;
    assert_eq!(f["ActualObjectSize"], "1000");
}

// ---------------------------------------------------------------------------------------------
// CORS and browser-style requests

const PAGE: &str = "http://localhost:5173";
const EXPOSED: &str = "ETag, x-oss-request-id, x-oss-hash-crc64ecma, x-oss-object-type, \
                       x-oss-storage-class, x-oss-ec, x-oss-err, Content-MD5";
const CORS_REFUSAL: &str = "CORSResponse: This CORS request is not allowed. This is usually \
     because the evalution of Origin, request method / Access-Control-Request-Method or \
     Access-Control-Requet-Headers are not whitelisted by the resource's CORS spec.";

/// An unsigned OPTIONS request, with the given headers, path-style unless `host` is given.
async fn preflight(
    e: &Emu,
    path: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = e.http.request(
        reqwest::Method::OPTIONS,
        format!("{}{path}", e.emu.base_url()),
    );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(h) = host {
        req = req.header("host", h);
    }
    req.send().await.unwrap()
}

#[track_caller]
fn assert_cors_actual(h: &reqwest::header::HeaderMap) {
    assert_eq!(h["access-control-allow-origin"], PAGE);
    assert_eq!(h["access-control-expose-headers"], EXPOSED);
    assert_eq!(h["vary"], "Origin");
}

#[tokio::test]
async fn cors_preflight_needs_no_signature() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let bucket = &up.address.bucket;
    let path = format!("/{bucket}/{}", encode_key(&up.address.file_name));
    // What Chromium sends before ali-oss's PUT (headers lower-cased, comma-separated).
    let asked = "authorization,content-type,x-oss-date,x-oss-security-token,x-oss-user-agent";
    let virtual_host = format!("{bucket}.oss-cn-shanghai.aliyuncs.com");
    let virtual_path = format!("/{}", encode_key(&up.address.file_name));
    for (path, host) in [
        (path.as_str(), None),
        (virtual_path.as_str(), Some(virtual_host.as_str())),
    ] {
        let resp = preflight(
            &e,
            &format!("{path}?uploads="),
            host,
            &[
                ("origin", PAGE),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", asked),
            ],
        )
        .await;
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], PAGE);
        assert_eq!(
            h["access-control-allow-methods"],
            "GET, PUT, POST, DELETE, HEAD"
        );
        assert_eq!(h["access-control-allow-headers"], asked);
        assert_eq!(h["access-control-expose-headers"], EXPOSED);
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["vary"], "Origin");
        assert_eq!(h["server"], "AliyunOSS");
        assert_eq!(h["x-oss-request-id"].len(), 24);
        assert!(resp.text().await.unwrap().is_empty());
    }
    // Without Access-Control-Request-Headers there is nothing to allow.
    let resp = preflight(
        &e,
        &path,
        None,
        &[("origin", "null"), ("access-control-request-method", "PUT")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "null");
    assert!(!resp.headers().contains_key("access-control-allow-headers"));
    // The bucket root too.
    let resp = preflight(
        &e,
        &format!("/{bucket}/"),
        None,
        &[("origin", PAGE), ("access-control-request-method", "GET")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(e.emu.stats().requests["Options"], 4);
}

#[tokio::test]
async fn refused_preflights() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let path = format!("/{}/{}", up.address.bucket, up.address.file_name);
    let cases: &[&[(&str, &str)]] = &[
        &[("access-control-request-method", "PUT")],
        &[("origin", PAGE)],
        &[("origin", ""), ("access-control-request-method", "PUT")],
        &[("origin", PAGE), ("access-control-request-method", "PATCH")],
        &[("origin", PAGE), ("access-control-request-method", "put")],
    ];
    for headers in cases {
        let resp = preflight(&e, &path, None, headers).await;
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        assert!(!resp.headers().contains_key("access-control-allow-methods"));
        assert_eq!(resp.headers()["vary"], "Origin");
        let fields = assert_oss_error(resp, 403, "AccessForbidden").await;
        assert_eq!(fields["Message"], CORS_REFUSAL, "{headers:?}");
        assert_eq!(fields["HostId"], e.emu.addr().to_string());
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["Code", "HostId", "Message", "RequestId"],
            "{headers:?}"
        );
    }
    // Another bucket has no CORS rules: it does not exist.
    let resp = preflight(
        &e,
        "/outin-00000000000000000000000000000000/a.mp4",
        None,
        &[("origin", PAGE), ("access-control-request-method", "PUT")],
    )
    .await;
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert_oss_error(resp, 404, "NoSuchBucket").await;
    // The VOD endpoint is not OSS.
    let resp = preflight(
        &e,
        "/",
        None,
        &[("origin", PAGE), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["Code"], "UnsupportedHTTPMethod");
}

#[tokio::test]
async fn answers_to_a_page_expose_what_uploads_need() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let body = data(1000);
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .header("origin", PAGE)
    .header("content-type", "video/mp4")
    .body(body.clone())
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let h = resp.headers();
    assert_cors_actual(h);
    assert_eq!(
        h["access-control-allow-methods"],
        "GET, PUT, POST, DELETE, HEAD"
    );
    // Each exposed header is there to read.
    for name in ["etag", "x-oss-request-id", "x-oss-hash-crc64ecma"] {
        assert!(h.contains_key(name), "{name}");
    }
    assert_eq!(
        h["x-oss-hash-crc64ecma"],
        crc64::checksum(&body).to_string()
    );

    // Without Origin: no CORS headers, but still Vary.
    let resp = OssCall::new(
        "HEAD",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert_eq!(resp.headers()["vary"], "Origin");
}

#[tokio::test]
async fn error_answers_to_a_page_are_readable() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let wrong = Creds {
        secret: "not-the-secret".into(),
        ..creds.clone()
    };
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&wrong),
    )
    .header("origin", PAGE)
    .body("x")
    .send(&e)
    .await;
    assert_cors_actual(resp.headers());
    assert_oss_error(resp, 403, "SignatureDoesNotMatch").await;

    // Unsigned, outside the credential's scope, a HEAD with its error in `x-oss-err`.
    let resp = OssCall::new("PUT", &up.address.bucket, "sv/other.mp4", None)
        .header("origin", PAGE)
        .body("x")
        .send(&e)
        .await;
    assert_cors_actual(resp.headers());
    assert_oss_error(resp, 403, "AccessDenied").await;
    let resp = OssCall::new("PUT", &up.address.bucket, "sv/other.mp4", Some(&creds))
        .header("origin", PAGE)
        .body("x")
        .send(&e)
        .await;
    assert_cors_actual(resp.headers());
    assert_oss_error(resp, 403, "AccessDenied").await;
    let resp = OssCall::new(
        "HEAD",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .header("origin", PAGE)
    .send(&e)
    .await;
    assert_eq!(resp.status(), 404);
    assert_cors_actual(resp.headers());
    assert!(resp.headers().contains_key("x-oss-err"));

    // A bucket that does not exist has no CORS rules.
    let resp = OssCall::new("PUT", "outin-nobody", "a.mp4", Some(&creds))
        .header("origin", PAGE)
        .body("x")
        .send(&e)
        .await;
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert_oss_error(resp, 404, "NoSuchBucket").await;
}

#[tokio::test]
async fn browser_style_v1_requests_verify() {
    // What ali-oss sends from a page: no Date (browsers cannot set it) but `x-oss-date`, the
    // token and its user agent among the signed `x-oss-*` headers, path-style (`sldEnable`).
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let now = http_date(std::time::SystemTime::now());
    let ua = "aliyun-sdk-js/6.23.0 Chrome Headless 120.0.0.0 on Linux 64-bit";
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .without_date()
    .header("x-oss-date", &now)
    .header("x-oss-user-agent", ua)
    .header("content-type", "video/mp4")
    .header("origin", PAGE)
    .body(data(100))
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_cors_actual(resp.headers());

    // The signature covers x-oss-date: another date than the signed one does not verify.
    let mut call = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .without_date()
    .header("x-oss-date", &now)
    .header("x-oss-user-agent", ua);
    let mut signed = call.headers.clone();
    signed.push(("x-oss-security-token".into(), creds.token.clone().unwrap()));
    let sts = call.string_to_sign(&signed);
    let sig = vod_ingest::sign::oss::signature(&sts, &creds.secret);
    call.headers = vec![
        (
            "x-oss-date".into(),
            http_date(std::time::SystemTime::now() + Duration::from_secs(60)),
        ),
        ("x-oss-user-agent".into(), ua.into()),
        (
            "authorization".into(),
            vod_ingest::sign::oss::authorization(&creds.id, &sig),
        ),
    ];
    let resp = call.body("x").send(&e).await;
    assert_oss_error(resp, 403, "SignatureDoesNotMatch").await;

    // x-oss-date is the request time: a stale one is refused even with no Date at all.
    let stale = http_date(std::time::SystemTime::now() - Duration::from_secs(20 * 60));
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .without_date()
    .header("x-oss-date", &stale)
    .body("x")
    .send(&e)
    .await;
    assert_oss_error(resp, 403, "RequestTimeTooSkewed").await;
    // Neither Date nor x-oss-date.
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .without_date()
    .body("x")
    .send(&e)
    .await;
    let fields = assert_oss_error(resp, 403, "AccessDenied").await;
    assert_eq!(fields["Message"], "Missing Date header.");
}

/// The Android OSS SDK addresses a host that is neither an IP nor `*.aliyuncs.com` as a domain
/// bound to the bucket (a CNAME): `PUT /<key>` with `Host: <public host>`. The emulator's public
/// URL's domain is such a domain; path style on it and IP hosts keep their meaning.
#[tokio::test]
async fn the_public_domain_acts_as_a_cname_of_the_bucket() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = start_with(|c| {
        c.listen = ([127, 0, 0, 1], port).into();
        c.public_url = Some(format!("http://localhost:{port}"));
    })
    .await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let data = b"from an android phone".to_vec();
    let resp = OssCall::new(
        "PUT",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .body(data.clone())
    .host(format!("localhost:{port}"))
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let stored = e.emu.object_path(&up.address.bucket, &up.address.file_name);
    assert_eq!(std::fs::read(stored).unwrap(), data);

    // Path style on the same host still names the bucket first.
    let resp = OssCall::new(
        "HEAD",
        &up.address.bucket,
        &up.address.file_name,
        Some(&creds),
    )
    .send(&e)
    .await;
    assert_eq!(resp.status(), 200);
    // On an IP host an unknown first segment is a bucket that does not exist, as before.
    let resp = e
        .http
        .get(format!("http://127.0.0.1:{port}/no-such-bucket/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("NoSuchBucket"));
}

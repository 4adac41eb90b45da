//! The emulator's OSS multipart API over real HTTP: the happy path with VOD upload
//! credentials, ListParts paging, every rejection, and a credential expiring mid-upload.

mod emulator_support;

use std::time::Duration;

use emulator_support::*;
use md5::Digest as _;
use serde_json::json;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Text of the first `<name>` element.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_owned())
}

async fn initiate(e: &Emu, bucket: &str, key: &str, creds: &Creds) -> String {
    let mut c = OssCall::new("POST", bucket, key, Some(creds)).header("content-type", "video/mp4");
    c.query = q(&[("uploads", "")]);
    let resp = c.send(e).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/xml");
    let text = resp.text().await.unwrap();
    assert_eq!(xml_text(&text, "Bucket").as_deref(), Some(bucket));
    assert_eq!(xml_text(&text, "Key").as_deref(), Some(key));
    let id = xml_text(&text, "UploadId").unwrap();
    assert!(
        id.len() == 32
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
    );
    id
}

async fn upload_part(
    e: &Emu,
    bucket: &str,
    key: &str,
    creds: &Creds,
    upload_id: &str,
    number: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut c = OssCall::new("PUT", bucket, key, Some(creds)).body(body);
    c.query = q(&[("uploadId", upload_id), ("partNumber", number)]);
    c.send(e).await
}

fn complete_body(parts: &[(u32, &str)]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

async fn complete(
    e: &Emu,
    bucket: &str,
    key: &str,
    creds: &Creds,
    upload_id: &str,
    body: String,
) -> reqwest::Response {
    let mut c = OssCall::new("POST", bucket, key, Some(creds)).body(body);
    c.query = q(&[("uploadId", upload_id)]);
    c.send(e).await
}

#[tokio::test]
async fn multipart_upload_completes_a_video() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let id = initiate(&e, bucket, key, &creds).await;

    // `docs/reference/oss.md` §3.3: byte[i] = i % 251, parts 102400/102400/10, with known CRCs.
    let whole = data(204_810);
    let chunks = [
        &whole[..102_400],
        &whole[102_400..204_800],
        &whole[204_800..],
    ];
    let expected_crcs = [
        "5409316634556368277",
        "8193091521729089674",
        "3825798828729329316",
    ];
    let mut etags = Vec::new();
    // Upload out of order; the last one first.
    for (i, n) in [(2usize, "3"), (0, "1"), (1, "2")] {
        let resp = upload_part(&e, bucket, key, &creds, &id, n, chunks[i].to_vec()).await;
        assert_eq!(resp.status(), 200);
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(
            etag,
            format!("\"{}\"", hex::encode_upper(md5::Md5::digest(chunks[i])))
        );
        assert_eq!(resp.headers()["x-oss-hash-crc64ecma"], expected_crcs[i]);
        etags.push((n.parse::<u32>().unwrap(), etag));
    }
    etags.sort();

    let mut c = OssCall::new("GET", bucket, key, Some(&creds));
    c.query = q(&[("uploadId", &id)]);
    let list = c.send(&e).await.text().await.unwrap();
    assert_eq!(list.matches("<Part>").count(), 3);
    assert_eq!(xml_text(&list, "IsTruncated").as_deref(), Some("false"));
    assert_eq!(
        xml_text(&list, "HashCrc64ecma").as_deref(),
        Some(expected_crcs[0])
    );
    assert_eq!(xml_text(&list, "Size").as_deref(), Some("102400"));

    let parts: Vec<(u32, &str)> = etags.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let resp = complete(&e, bucket, key, &creds, &id, complete_body(&parts)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-oss-hash-crc64ecma"],
        "7503305724105795270"
    );
    let hex_concat: String = etags.iter().map(|(_, t)| t.trim_matches('"')).collect();
    let expected_etag = format!(
        "\"{}-3\"",
        hex::encode_upper(md5::Md5::digest(hex_concat.as_bytes()))
    );
    assert_eq!(resp.headers()["etag"], expected_etag.as_str());
    let text = resp.text().await.unwrap();
    assert_eq!(
        xml_text(&text, "ETag").unwrap().replace("&quot;", "\""),
        expected_etag
    );
    assert_eq!(xml_text(&text, "Key").as_deref(), Some(key));

    let head = OssCall::new("HEAD", bucket, key, Some(&creds))
        .send(&e)
        .await;
    assert_eq!(head.headers()["x-oss-object-type"], "Multipart");
    assert_eq!(head.headers()["content-length"], "204810");
    assert_eq!(head.headers()["content-type"], "video/mp4");
    assert!(head.headers().get("content-md5").is_none());
    let get = OssCall::new("GET", bucket, key, Some(&creds))
        .send(&e)
        .await;
    assert!(get.bytes().await.unwrap() == whole);
    assert!(std::fs::read(e.emu.object_path(bucket, key)).unwrap() == whole);

    let v = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
    assert_eq!(v.1["Video"]["Size"], 204_810);
    assert_ne!(v.1["Video"]["Status"], "Uploading");
    let stats = e.emu.stats();
    assert_eq!(stats.parts, 3);
    assert_eq!(stats.requests.get("UploadPart"), Some(&3));
    assert_eq!(stats.requests.get("CompleteMultipartUpload"), Some(&1));
    // The upload is gone once completed.
    let resp = upload_part(&e, bucket, key, &creds, &id, "4", b"x".to_vec()).await;
    assert_oss_error(resp, 404, "NoSuchUpload").await;
}

#[tokio::test]
async fn list_parts_pages_and_parts_can_be_replaced() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let id = initiate(&e, bucket, key, &creds).await;
    for n in 1..=5 {
        let resp = upload_part(
            &e,
            bucket,
            key,
            &creds,
            &id,
            &n.to_string(),
            vec![n as u8; 10],
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let resp = upload_part(&e, bucket, key, &creds, &id, "2", vec![9; 20]).await;
    assert_eq!(resp.status(), 200);
    let mut c = OssCall::new("GET", bucket, key, Some(&creds));
    c.query = q(&[
        ("uploadId", &id),
        ("max-parts", "2"),
        ("part-number-marker", "1"),
    ]);
    let text = c.send(&e).await.text().await.unwrap();
    assert_eq!(xml_text(&text, "IsTruncated").as_deref(), Some("true"));
    assert_eq!(
        xml_text(&text, "NextPartNumberMarker").as_deref(),
        Some("3")
    );
    assert_eq!(xml_text(&text, "PartNumber").as_deref(), Some("2"));
    assert_eq!(xml_text(&text, "Size").as_deref(), Some("20"));
    assert_eq!(text.matches("<Part>").count(), 2);

    // The bucket's uploads, with the configured AccessKey.
    let root = Creds::root();
    let mut c = OssCall::new("GET", bucket, "", Some(&root));
    c.query = q(&[("uploads", ""), ("prefix", "sv/"), ("encoding-type", "url")]);
    let resp = c.send(&e).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert_eq!(xml_text(&text, "UploadId").as_deref(), Some(id.as_str()));
    assert_eq!(xml_text(&text, "Key").as_deref(), Some(key));
    // Upload credentials cannot list the bucket.
    let mut c = OssCall::new("GET", bucket, "", Some(&creds));
    c.query = q(&[("uploads", "")]);
    assert_oss_error(c.send(&e).await, 403, "AccessDenied").await;

    let mut c = OssCall::new("DELETE", bucket, key, Some(&creds));
    c.query = q(&[("uploadId", &id)]);
    assert_eq!(c.send(&e).await.status(), 204);
    let mut c = OssCall::new("DELETE", bucket, key, Some(&creds));
    c.query = q(&[("uploadId", &id)]);
    let f = assert_oss_error(c.send(&e).await, 404, "NoSuchUpload").await;
    assert_eq!(f["UploadId"], id);
}

#[tokio::test]
async fn multipart_rejections() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.as_str(), up.address.file_name.as_str());
    let id = initiate(&e, bucket, key, &creds).await;

    for bad in ["0", "10001", "x"] {
        let resp = upload_part(&e, bucket, key, &creds, &id, bad, b"x".to_vec()).await;
        let f = assert_oss_error(resp, 400, "InvalidArgument").await;
        assert_eq!(f["ArgumentName"], "PartNumber");
        assert_eq!(f["ArgumentValue"], bad);
    }
    let resp = upload_part(
        &e,
        bucket,
        key,
        &creds,
        "0123456789ABCDEF0123456789ABCDEF",
        "1",
        b"x".to_vec(),
    )
    .await;
    assert_oss_error(resp, 404, "NoSuchUpload").await;
    let mut c = OssCall::new("PUT", bucket, key, Some(&creds))
        .header("content-md5", "eB5eJF1ptWaXm4bijSPyxw==")
        .body(b"not 0123456789".to_vec());
    c.query = q(&[("uploadId", &id), ("partNumber", "1")]);
    assert_oss_error(c.send(&e).await, 400, "InvalidDigest").await;

    let small = upload_part(&e, bucket, key, &creds, &id, "1", data(1000)).await;
    let small_etag = small.headers()["etag"].to_str().unwrap().to_owned();
    let last = upload_part(&e, bucket, key, &creds, &id, "2", data(10)).await;
    let last_etag = last.headers()["etag"].to_str().unwrap().to_owned();

    let cases = [
        (
            complete_body(&[(2, &last_etag), (1, &small_etag)]),
            "InvalidPartOrder",
        ),
        (
            complete_body(&[(1, &small_etag), (1, &small_etag)]),
            "InvalidPartOrder",
        ),
        (
            complete_body(&[(1, &small_etag), (3, &last_etag)]),
            "InvalidPart",
        ),
        (
            complete_body(&[(1, "\"00000000000000000000000000000000\"")]),
            "InvalidPart",
        ),
        (
            complete_body(&[(1, &small_etag), (2, &last_etag)]),
            "EntityTooSmall",
        ),
        (complete_body(&[]), "MalformedXML"),
        ("<CompleteMultipartUpload><Part>".to_owned(), "MalformedXML"),
    ];
    for (body, code) in cases {
        let resp = complete(&e, bucket, key, &creds, &id, body).await;
        let f = assert_oss_error(resp, 400, code).await;
        if code == "EntityTooSmall" {
            assert_eq!(f["EC"], "0042-00000213");
        }
    }
    // A single small part is fine: only non-last parts have a minimum.
    let resp = complete(
        &e,
        bucket,
        key,
        &creds,
        &id,
        complete_body(&[(1, &small_etag)]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let head = OssCall::new("HEAD", bucket, key, Some(&creds))
        .send(&e)
        .await;
    assert_eq!(head.headers()["content-length"], "1000");

    // Another media's credentials cannot touch this upload's object.
    let other = create_video(&e, &[]).await;
    let other_creds = Creds::from_upload_auth(&other.auth);
    let mut c = OssCall::new("POST", bucket, key, Some(&other_creds));
    c.query = q(&[("uploads", "")]);
    assert_oss_error(c.send(&e).await, 403, "AccessDenied").await;
}

#[tokio::test]
async fn complete_all_uses_every_uploaded_part() {
    let e = start().await;
    let root = Creds::root();
    let bucket = create_video(&e, &[]).await.address.bucket;
    let key = "free/all.bin";
    let id = initiate(&e, &bucket, key, &root).await;
    let whole = data(102_400 + 5);
    upload_part(&e, &bucket, key, &root, &id, "1", whole[..102_400].to_vec()).await;
    upload_part(&e, &bucket, key, &root, &id, "7", whole[102_400..].to_vec()).await;
    let mut c = OssCall::new("POST", &bucket, key, Some(&root)).header("x-oss-complete-all", "yes");
    c.query = q(&[("uploadId", &id)]);
    let resp = c.send(&e).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-oss-hash-crc64ecma"],
        vod_ingest::crc64::checksum(&whole).to_string()
    );
}

#[tokio::test]
async fn credentials_expiring_mid_upload_are_refreshed() {
    let e = start().await;
    set_faults(&e, json!({"credential_ttl_seconds": 2})).await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.clone(), up.address.file_name.clone());
    let id = initiate(&e, &bucket, &key, &creds).await;
    let p1 = upload_part(&e, &bucket, &key, &creds, &id, "1", data(102_400)).await;
    assert_eq!(p1.status(), 200);
    let etag1 = p1.headers()["etag"].to_str().unwrap().to_owned();

    wait_until(up.auth.expires_at).await;
    let resp = upload_part(&e, &bucket, &key, &creds, &id, "2", data(10)).await;
    assert_oss_error(resp, 403, "SecurityTokenExpired").await;

    set_faults(&e, json!({"credential_ttl_seconds": null})).await;
    let refreshed = vod(&e, "RefreshUploadVideo", &[("VideoId", &up.id)]).await;
    let fresh = Creds::from_upload_auth(&decode_upload(&refreshed.1, "VideoId").auth);
    let p2 = upload_part(&e, &bucket, &key, &fresh, &id, "2", data(10)).await;
    assert_eq!(p2.status(), 200);
    let etag2 = p2.headers()["etag"].to_str().unwrap().to_owned();
    let resp = complete(
        &e,
        &bucket,
        &key,
        &fresh,
        &id,
        complete_body(&[(1, &etag1), (2, &etag2)]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let status = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
    assert_ne!(status.1["Video"]["Status"], "Uploading");
    assert!(
        wait_for(Duration::from_secs(5), || async {
            vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await.1["Video"]["Status"] == "Normal"
        })
        .await
    );
}

/// A restarted emulator on the same data directory keeps its media, the STS credentials it
/// issued and multipart uploads in progress (`data_dir/.emulator-state.json`).
#[tokio::test]
async fn a_restart_loses_nothing_it_issued() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let (bucket, key) = (up.address.bucket.clone(), up.address.file_name.clone());
    let id = initiate(&e, &bucket, &key, &creds).await;
    let first = data(102_400);
    let resp = upload_part(&e, &bucket, &key, &creds, &id, "1", first.clone()).await;
    assert_eq!(resp.status(), 200);
    let etag1 = resp.headers()["etag"].to_str().unwrap().to_owned();
    let sts = call(
        &e,
        &Creds::root(),
        "AssumeRole",
        STS,
        &[
            ("RoleArn", "acs:ram::1234567890123456:role/r"),
            ("RoleSessionName", "restart"),
        ],
    )
    .await;
    assert_eq!(sts.0, 200, "{}", sts.1);
    let c = &sts.1["Credentials"];
    let sts = Creds {
        id: c["AccessKeyId"].as_str().unwrap().into(),
        secret: c["AccessKeySecret"].as_str().unwrap().into(),
        token: Some(c["SecurityToken"].as_str().unwrap().into()),
    };

    let Emu { emu, dir, http } = e;
    emu.shutdown().await;
    assert!(dir.path().join(".emulator-state.json").exists());
    let config = vod_ingest::emulator::EmulatorConfig::new(dir.path().to_path_buf());
    let e = Emu {
        emu: vod_ingest::emulator::start(config).await.unwrap(),
        dir,
        http,
    };

    // The media is still there, and STS credentials issued before the restart still sign.
    let info = call(&e, &sts, "GetVideoInfo", VOD, &[("VideoId", &up.id)]).await;
    assert_eq!(info.0, 200, "{}", info.1);
    assert_eq!(info.1["Video"]["VideoId"], up.id.as_str());
    assert_eq!(info.1["Video"]["Status"], "Uploading");
    // The multipart upload goes on with the same upload credential and completes.
    let second = data(10);
    let resp = upload_part(&e, &bucket, &key, &creds, &id, "2", second.clone()).await;
    assert_eq!(resp.status(), 200);
    let etag2 = resp.headers()["etag"].to_str().unwrap().to_owned();
    let resp = complete(
        &e,
        &bucket,
        &key,
        &creds,
        &id,
        complete_body(&[(1, &etag1), (2, &etag2)]),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let mut whole = first;
    whole.extend_from_slice(&second);
    let resp = OssCall::new("GET", &bucket, &key, Some(&creds))
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), whole);
    let info = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
    assert_eq!(info.1["Video"]["Status"], "UploadSucc", "{}", info.1);

    // And once more: the completed object and status survive too.
    let Emu { emu, dir, http } = e;
    emu.shutdown().await;
    let config = vod_ingest::emulator::EmulatorConfig::new(dir.path().to_path_buf());
    let e = Emu {
        emu: vod_ingest::emulator::start(config).await.unwrap(),
        dir,
        http,
    };
    let resp = OssCall::new("HEAD", &bucket, &key, Some(&creds))
        .send(&e)
        .await;
    assert_eq!(resp.status(), 200);
    let info = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
    assert_ne!(info.1["Video"]["Status"], "Uploading", "{}", info.1);
}

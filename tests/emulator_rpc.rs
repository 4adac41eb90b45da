//! The emulator's VOD and STS RPC API, over real HTTP: gateway checks, action validation,
//! successful uploads' tickets, STS credentials.

mod emulator_support;

use std::collections::BTreeMap;
use std::time::Duration;

use emulator_support::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use vod_ingest::sign;

#[tokio::test]
async fn create_upload_video_returns_a_usable_ticket() {
    let e = start().await;
    let resp = vod(
        &e,
        "CreateUploadVideo",
        &[("Title", "t"), ("FileName", r"D:\clips\Movie 1.MP4")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert!(is_upper_uuid(resp.1["RequestId"].as_str().unwrap()));
    let up = decode_upload(&resp.1, "VideoId");
    assert!(
        up.id.len() == 32
            && up
                .id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(up.address.endpoint, e.emu.base_url());
    let bucket = up.address.bucket.strip_prefix("outin-").unwrap();
    assert!(bucket.len() == 32 && bucket.chars().all(|c| c.is_ascii_hexdigit()));
    // sv/<8 hex>-<11 hex ms>/<same>.<ext>
    let parts: Vec<&str> = up.address.file_name.split('/').collect();
    assert_eq!(parts.len(), 3, "{}", up.address.file_name);
    assert_eq!(parts[0], "sv");
    assert_eq!(parts[2], format!("{}.mp4", parts[1]));
    let (a, b) = parts[1].split_once('-').unwrap();
    assert_eq!(a.len(), 8);
    let ms = i64::from_str_radix(b, 16).unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - ms).abs() < 60_000);
    assert_eq!(
        up.address.object_prefix.as_deref(),
        Some(format!("sv/{}/", parts[1]).as_str())
    );
    assert!(up.auth.access_key_id.starts_with("STS."));
    assert_eq!(up.auth.region.as_deref(), Some("cn-shanghai"));
    let remaining = (up.auth.expires_at - chrono::Utc::now()).num_seconds();
    assert!((2990..=3000).contains(&remaining), "{remaining}");
    // The raw UploadAuth carries every field as a string, Expiration the remaining seconds.
    let raw: serde_json::Value =
        serde_json::from_slice(&base64_decode(up.raw["UploadAuth"].as_str().unwrap())).unwrap();
    assert_eq!(raw["Expiration"], "3000");
    for k in [
        "SecurityToken",
        "AccessKeyId",
        "ExpireUTCTime",
        "AccessKeySecret",
        "Region",
    ] {
        assert!(raw[k].is_string(), "{k}");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[tokio::test]
async fn each_missing_common_parameter_is_named() {
    let e = start().await;
    for name in [
        "Action",
        "Version",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    ] {
        let mut p = rpc_params("GetVideoInfo", VOD, &Creds::root(), &[("VideoId", "x")]);
        sign_rpc("POST", &mut p, SECRET);
        p.remove(name);
        let resp = rpc_send(&e, "POST", &p).await;
        assert_rpc_error(&resp, 400, &format!("Missing{name}"));
        assert_eq!(
            resp.1["Message"],
            format!("{name} is mandatory for this action.")
        );
    }
}

#[tokio::test]
async fn unknown_actions_and_versions() {
    let e = start().await;
    let resp = vod(&e, "GetPlayInfo", &[("VideoId", "x")]).await;
    assert_rpc_error(&resp, 404, "InvalidApi.NotFound");
    assert_eq!(resp.1["HostId"], "vod.cn-shanghai.aliyuncs.com");
    let resp = call(&e, &Creds::root(), "CreateUploadVideo", "2099-01-01", &[]).await;
    assert_rpc_error(&resp, 400, "InvalidVersion");
    let resp = call(&e, &Creds::root(), "GetCallerIdentity", STS, &[]).await;
    assert_rpc_error(&resp, 404, "InvalidApi.NotFound");
    assert_eq!(resp.1["HostId"], "sts.aliyuncs.com");
}

#[tokio::test]
async fn signature_method_version_and_timestamp_are_checked() {
    let e = start().await;
    let cases: &[(&str, &str, u16, &str)] = &[
        (
            "SignatureMethod",
            "HMAC-SHA256",
            400,
            "InvalidSignatureMethod",
        ),
        ("SignatureVersion", "2.0", 400, "InvalidSignatureVersion"),
        (
            "Timestamp",
            "2024-01-02T03:04:05",
            400,
            "InvalidTimeStamp.Format",
        ),
        (
            "Timestamp",
            "2024-1-2T03:04:05Z",
            400,
            "InvalidTimeStamp.Format",
        ),
        (
            "Timestamp",
            "2020-01-02T03:04:05Z",
            400,
            "InvalidTimeStamp.Expired",
        ),
    ];
    for (name, value, status, code) in cases {
        let resp = vod(&e, "GetVideoInfo", &[("VideoId", "x"), (name, value)]).await;
        assert_rpc_error(&resp, *status, code);
    }
    // 16 minutes in the future is too far; 14 minutes is fine (the video just does not exist).
    let ts = |mins: i64| {
        (chrono::Utc::now() + chrono::Duration::minutes(mins))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let resp = vod(
        &e,
        "GetVideoInfo",
        &[("VideoId", "x"), ("Timestamp", &ts(16))],
    )
    .await;
    assert_rpc_error(&resp, 400, "InvalidTimeStamp.Expired");
    let resp = vod(
        &e,
        "GetVideoInfo",
        &[("VideoId", "x"), ("Timestamp", &ts(-14))],
    )
    .await;
    assert_rpc_error(&resp, 404, "InvalidVideo.NotFound");
}

#[tokio::test]
async fn unknown_access_key_and_wrong_signature() {
    let e = start().await;
    let stranger = Creds {
        id: "LTAI-nobody".into(),
        secret: "x".into(),
        token: None,
    };
    let resp = call(&e, &stranger, "GetVideoInfo", VOD, &[("VideoId", "x")]).await;
    assert_rpc_error(&resp, 404, "InvalidAccessKeyId.NotFound");
    assert_eq!(resp.1["Message"], "Specified access key is not found.");

    let wrong = Creds {
        secret: "not-the-secret".into(),
        ..Creds::root()
    };
    let mut p = rpc_params(
        "CreateUploadVideo",
        VOD,
        &wrong,
        &[("Title", "测试 a+b*c~d/e"), ("FileName", "m.mp4")],
    );
    let expected_sts = sign::rpc::string_to_sign("POST", &p);
    sign_rpc("POST", &mut p, &wrong.secret);
    let resp = rpc_send(&e, "POST", &p).await;
    assert_rpc_error(&resp, 400, "SignatureDoesNotMatch");
    assert_eq!(
        resp.1["Message"],
        format!("Specified signature is not matched with our calculation. server string to sign is:{expected_sts}")
    );
    // What the official Python SDK does with it: split on ':' and compare with its own.
    assert_eq!(
        resp.1["Message"].as_str().unwrap().split(':').nth(1),
        Some(expected_sts.as_str())
    );

    // Signed for POST, sent as GET: the method is part of the signature.
    let mut p = rpc_params("GetVideoInfo", VOD, &Creds::root(), &[("VideoId", "x")]);
    sign_rpc("POST", &mut p, SECRET);
    let resp = rpc_send(&e, "GET", &p).await;
    assert_rpc_error(&resp, 400, "SignatureDoesNotMatch");
    assert!(resp.1["Message"]
        .as_str()
        .unwrap()
        .contains("server string to sign is:GET&%2F&"));
}

#[tokio::test]
async fn a_nonce_is_used_once() {
    let e = start().await;
    let mut p = rpc_params("GetVideoInfo", VOD, &Creds::root(), &[("VideoId", "x")]);
    sign_rpc("POST", &mut p, SECRET);
    assert_rpc_error(
        &rpc_send(&e, "POST", &p).await,
        404,
        "InvalidVideo.NotFound",
    );
    let again = rpc_send(&e, "POST", &p).await;
    assert_rpc_error(&again, 400, "SignatureNonceUsed");
    // A request with a wrong signature does not use up its nonce.
    let mut p = rpc_params("GetVideoInfo", VOD, &Creds::root(), &[("VideoId", "x")]);
    let nonce = p["SignatureNonce"].clone();
    sign_rpc("POST", &mut p, "wrong");
    assert_rpc_error(
        &rpc_send(&e, "POST", &p).await,
        400,
        "SignatureDoesNotMatch",
    );
    let mut p = rpc_params(
        "GetVideoInfo",
        VOD,
        &Creds::root(),
        &[("VideoId", "x"), ("SignatureNonce", &nonce)],
    );
    sign_rpc("POST", &mut p, SECRET);
    assert_rpc_error(
        &rpc_send(&e, "POST", &p).await,
        404,
        "InvalidVideo.NotFound",
    );
}

#[tokio::test]
async fn parameters_may_come_in_a_form_body_and_get_works() {
    let e = start().await;
    let mut p = rpc_params(
        "CreateUploadVideo",
        VOD,
        &Creds::root(),
        &[("Title", "a b+c"), ("FileName", "movie 1.mp4")],
    );
    sign_rpc("POST", &mut p, SECRET);
    let body: Vec<(String, String)> = ["Title", "FileName"]
        .iter()
        .map(|k| (k.to_string(), p.remove(*k).unwrap()))
        .collect();
    let url = format!("{}/?{}", e.emu.base_url(), sign::rpc::to_query_string(&p));
    let resp = e.http.post(url).form(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let mut p = rpc_params(
        "CreateUploadVideo",
        VOD,
        &Creds::root(),
        &[("Title", "t"), ("FileName", "m.mov")],
    );
    sign_rpc("GET", &mut p, SECRET);
    let resp = rpc_send(&e, "GET", &p).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
}

#[tokio::test]
async fn xml_format_gives_xml_bodies() {
    let e = start().await;
    let resp = vod(
        &e,
        "GetVideoInfo",
        &[("VideoId", "nope"), ("Format", "XML")],
    )
    .await;
    assert_eq!(resp.0, 404);
    let text = resp.1.as_str().unwrap();
    assert!(text.starts_with("<?xml"), "{text}");
    assert!(
        text.contains("<Code>InvalidVideo.NotFound</Code>"),
        "{text}"
    );
    assert!(
        text.contains("<RequestId>") && text.contains("<HostId>") && text.contains("<Recommend>")
    );
    let resp = vod(
        &e,
        "CreateUploadVideo",
        &[("Title", "t"), ("FileName", "m.mp4"), ("Format", "XML")],
    )
    .await;
    let text = resp.1.as_str().unwrap();
    assert!(
        text.contains("<CreateUploadVideoResponse>") && text.contains("<VideoId>"),
        "{text}"
    );
}

#[tokio::test]
async fn create_upload_video_validation() {
    let e = start().await;
    let long_title = "x".repeat(129);
    let tags17 = (0..17)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let long_tag = "y".repeat(33);
    let long_extend = json!({"MessageCallback": {"CallbackURL": "http://h/cb"}, "Extend": {"k": "z".repeat(600)}}).to_string();
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("FileName", "m.mp4")], 400, "MissingTitle"),
        (vec![("Title", "t")], 400, "MissingFileName"),
        (
            vec![("Title", "t"), ("FileName", "m.txt")],
            400,
            "InvalidFileName.Extension",
        ),
        (
            vec![("Title", "t"), ("FileName", "noext")],
            400,
            "InvalidFileName.Extension",
        ),
        (
            vec![("Title", &long_title), ("FileName", "m.mp4")],
            400,
            "LengthExceededMax",
        ),
        (
            vec![("Title", "🎬 film"), ("FileName", "m.mp4")],
            400,
            "IllegalCharacters",
        ),
        (
            vec![("Title", "t"), ("FileName", "m.mp4"), ("Tags", &tags17)],
            400,
            "TagsExceededMax",
        ),
        (
            vec![("Title", "t"), ("FileName", "m.mp4"), ("Tags", &long_tag)],
            400,
            "LengthExceededMax",
        ),
        (
            vec![("Title", "t"), ("FileName", "m.mp4"), ("CateId", "abc")],
            400,
            "InvalidParameter",
        ),
        (
            vec![
                ("Title", "t"),
                ("FileName", "m.mp4"),
                ("StorageLocation", "out-x.oss-cn-shanghai.aliyuncs.com"),
            ],
            404,
            "InvalidStorage.NotFound",
        ),
        (
            vec![
                ("Title", "t"),
                ("FileName", "m.mp4"),
                ("UserData", "not json"),
            ],
            400,
            "InvalidParameter",
        ),
        (
            vec![
                ("Title", "t"),
                ("FileName", "m.mp4"),
                (
                    "UserData",
                    r#"{"MessageCallback":{"CallbackURL":"ftp://x/y"}}"#,
                ),
            ],
            400,
            "InvalidParameter",
        ),
        (
            vec![
                ("Title", "t"),
                ("FileName", "m.mp4"),
                ("UserData", &long_extend),
            ],
            400,
            "LengthExceededMax",
        ),
    ];
    for (params, status, code) in cases {
        let resp = vod(&e, "CreateUploadVideo", &params).await;
        assert_rpc_error(&resp, status, code);
    }
    let resp = vod(
        &e,
        "CreateUploadVideo",
        &[("Title", &"x".repeat(128)), ("FileName", "a.FLAC")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let msg = vod(
        &e,
        "CreateUploadVideo",
        &[("Title", &long_title), ("FileName", "m.mp4")],
    )
    .await;
    assert_eq!(
        msg.1["Message"],
        "The specified Title length has exceeded 128 bytes."
    );
}

#[tokio::test]
async fn create_upload_image_and_attached_media() {
    let e = start().await;
    assert_rpc_error(
        &vod(&e, "CreateUploadImage", &[]).await,
        400,
        "MissingImageType",
    );
    assert_rpc_error(
        &vod(&e, "CreateUploadImage", &[("ImageType", "banner")]).await,
        400,
        "InvalidParameter",
    );
    assert_rpc_error(
        &vod(
            &e,
            "CreateUploadImage",
            &[("ImageType", "default"), ("ImageExt", "bmp")],
        )
        .await,
        400,
        "InvalidParameter",
    );
    let resp = vod(
        &e,
        "CreateUploadImage",
        &[("ImageType", "default"), ("ImageExt", "JPG")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let up = decode_upload(&resp.1, "ImageId");
    assert!(
        up.address.file_name.starts_with("image/default/")
            && up.address.file_name.ends_with(".jpg")
    );
    assert_eq!(up.address.object_prefix.as_deref(), Some("image/default/"));
    assert!(resp.1["ImageURL"]
        .as_str()
        .unwrap()
        .ends_with(&up.address.file_name));
    assert!(resp.1["FileURL"].is_string());
    let resp = vod(&e, "CreateUploadImage", &[("ImageType", "cover")]).await;
    let up = decode_upload(&resp.1, "ImageId");
    assert!(
        up.address.file_name.ends_with(".png"),
        "default ImageExt is png"
    );

    assert_rpc_error(
        &vod(&e, "CreateUploadAttachedMedia", &[]).await,
        400,
        "MissingBusinessType",
    );
    assert_rpc_error(
        &vod(
            &e,
            "CreateUploadAttachedMedia",
            &[("BusinessType", "poster"), ("MediaExt", "png")],
        )
        .await,
        400,
        "InvalidParameter",
    );
    assert_rpc_error(
        &vod(
            &e,
            "CreateUploadAttachedMedia",
            &[("BusinessType", "subtitle"), ("MediaExt", "png")],
        )
        .await,
        400,
        "InvalidParameter",
    );
    assert_rpc_error(
        &vod(
            &e,
            "CreateUploadAttachedMedia",
            &[("BusinessType", "subtitle"), ("FileName", "a.png")],
        )
        .await,
        400,
        "InvalidFileName.Extension",
    );
    assert_rpc_error(
        &vod(
            &e,
            "CreateUploadAttachedMedia",
            &[
                ("BusinessType", "material"),
                ("MediaExt", "zip"),
                ("CateIds", "1,2,3,4,5,6"),
            ],
        )
        .await,
        400,
        "InvalidParameter",
    );
    let resp = vod(
        &e,
        "CreateUploadAttachedMedia",
        &[("BusinessType", "subtitle"), ("FileName", "a.VTT")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let up = decode_upload(&resp.1, "MediaId");
    assert!(
        up.address.file_name.starts_with("subtitle/") && up.address.file_name.ends_with(".vtt")
    );
    assert!(resp.1["MediaURL"].is_string() && resp.1["FileURL"].is_string());
}

#[tokio::test]
async fn refresh_keeps_the_address_and_issues_a_new_credential() {
    let e = start().await;
    let up = create_video(&e, &[]).await;
    let resp = vod(&e, "RefreshUploadVideo", &[("VideoId", &up.id)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let refreshed = decode_upload(&resp.1, "VideoId");
    assert_eq!(refreshed.id, up.id);
    assert_eq!(refreshed.address, up.address);
    assert_ne!(refreshed.auth.access_key_id, up.auth.access_key_id);
    assert_rpc_error(
        &vod(&e, "RefreshUploadVideo", &[]).await,
        400,
        "MissingVideoId",
    );
    assert_rpc_error(
        &vod(
            &e,
            "RefreshUploadVideo",
            &[("VideoId", "0123456789abcdef0123456789abcdef")],
        )
        .await,
        404,
        "InvalidVideo.NotFound",
    );
    // An image id is not a video.
    let img = vod(&e, "CreateUploadImage", &[("ImageType", "default")]).await;
    let image_id = img.1["ImageId"].as_str().unwrap();
    assert_rpc_error(
        &vod(&e, "RefreshUploadVideo", &[("VideoId", image_id)]).await,
        404,
        "InvalidVideo.NotFound",
    );
}

#[tokio::test]
async fn media_info_before_upload_and_unknown_ids() {
    let e = start().await;
    let ud = r#"{"Extend":{"job":"1"}}"#;
    let up = create_video(
        &e,
        &[
            ("Description", "d"),
            ("Tags", "a,b"),
            ("CateId", "7"),
            ("UserData", ud),
        ],
    )
    .await;
    let resp = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let v = &resp.1["Video"];
    assert_eq!(v["Status"], "Uploading");
    assert_eq!(v["Title"], "a video");
    assert_eq!(v["CateId"], 7);
    assert_eq!(v["Tags"], "a,b");
    assert_eq!(v["UserData"], ud);
    assert!(v.get("Size").is_none());
    assert_rpc_error(
        &vod(
            &e,
            "GetVideoInfo",
            &[("VideoId", "ffffffffffffffffffffffffffffffff")],
        )
        .await,
        404,
        "InvalidVideo.NotFound",
    );
    assert_rpc_error(
        &vod(&e, "GetImageInfo", &[("ImageId", &up.id)]).await,
        404,
        "NoSuchResource",
    );
    let img = vod(
        &e,
        "CreateUploadImage",
        &[("ImageType", "default"), ("Title", "pic")],
    )
    .await;
    let resp = vod(
        &e,
        "GetImageInfo",
        &[("ImageId", img.1["ImageId"].as_str().unwrap())],
    )
    .await;
    assert_eq!(resp.0, 200);
    assert_eq!(resp.1["ImageInfo"]["Status"], "Uploading");
    assert_eq!(resp.1["ImageInfo"]["ImageType"], "default");
}

async fn assume_role(e: &Emu, extra: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut params = vec![
        ("RoleArn", "acs:ram::1234567890123456:role/vod-upload"),
        ("RoleSessionName", "vod-client-1"),
    ];
    params.extend_from_slice(extra);
    call(e, &Creds::root(), "AssumeRole", STS, &params).await
}

#[tokio::test]
async fn assume_role_issues_credentials_that_sign_vod_calls() {
    let e = start().await;
    let resp = assume_role(&e, &[("DurationSeconds", "900")]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let c = &resp.1["Credentials"];
    let creds = Creds {
        id: c["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: c["AccessKeySecret"].as_str().unwrap().to_owned(),
        token: Some(c["SecurityToken"].as_str().unwrap().to_owned()),
    };
    assert!(creds.id.starts_with("STS."));
    let exp = chrono::DateTime::parse_from_rfc3339(c["Expiration"].as_str().unwrap()).unwrap();
    let left = (exp.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!((890..=900).contains(&left), "{left}");
    assert!(resp.1["AssumedRoleUser"]["Arn"]
        .as_str()
        .unwrap()
        .ends_with(":assumed-role/vod-upload/vod-client-1"));
    assert!(resp.1["AssumedRoleUser"]["AssumedRoleId"]
        .as_str()
        .unwrap()
        .ends_with(":vod-client-1"));

    let resp = call(
        &e,
        &creds,
        "CreateUploadVideo",
        VOD,
        &[("Title", "t"), ("FileName", "m.mp4")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);

    // Token problems.
    let no_token = Creds {
        token: None,
        ..creds.clone()
    };
    assert_rpc_error(
        &call(&e, &no_token, "GetVideoInfo", VOD, &[("VideoId", "x")]).await,
        400,
        "MissingSecurityToken",
    );
    let garbled = Creds {
        token: Some("CAISgarbage".into()),
        ..creds.clone()
    };
    assert_rpc_error(
        &call(&e, &garbled, "GetVideoInfo", VOD, &[("VideoId", "x")]).await,
        400,
        "InvalidSecurityToken.Malformed",
    );
    let other = assume_role(&e, &[]).await;
    let foreign = Creds {
        token: Some(
            other.1["Credentials"]["SecurityToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        ..creds.clone()
    };
    assert_rpc_error(
        &call(&e, &foreign, "GetVideoInfo", VOD, &[("VideoId", "x")]).await,
        400,
        "InvalidSecurityToken.MismatchWithAccessKey",
    );
    let unknown = Creds {
        id: "STS.unknown".into(),
        ..creds.clone()
    };
    assert_rpc_error(
        &call(&e, &unknown, "GetVideoInfo", VOD, &[("VideoId", "x")]).await,
        404,
        "InvalidAccessKeyId.NotFound",
    );
    let wrong_secret = Creds {
        secret: "nope".into(),
        ..creds.clone()
    };
    assert_rpc_error(
        &call(&e, &wrong_secret, "GetVideoInfo", VOD, &[("VideoId", "x")]).await,
        400,
        "SignatureDoesNotMatch",
    );

    // STS credentials cannot assume roles.
    let resp = call(
        &e,
        &creds,
        "AssumeRole",
        STS,
        &[("RoleArn", "acs:ram::1:role/r"), ("RoleSessionName", "ab")],
    )
    .await;
    assert_rpc_error(&resp, 403, "NoPermission");
}

#[tokio::test]
async fn assume_role_validation() {
    let e = start().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("RoleArn", "arn:aws:iam::1:role/x")],
            "InvalidParameter.RoleArn",
        ),
        (
            &[("RoleArn", "acs:ram::12ab:role/x")],
            "InvalidParameter.RoleArn",
        ),
        (
            &[("RoleSessionName", "a")],
            "InvalidParameter.RoleSessionName",
        ),
        (
            &[("RoleSessionName", "bad name")],
            "InvalidParameter.RoleSessionName",
        ),
        (
            &[("DurationSeconds", "899")],
            "InvalidParameter.DurationSeconds",
        ),
        (
            &[("DurationSeconds", "3601")],
            "InvalidParameter.DurationSeconds",
        ),
        (
            &[("DurationSeconds", "1h")],
            "InvalidParameter.DurationSeconds",
        ),
        (&[("Policy", "{not json")], "InvalidParameter.PolicyGrammar"),
    ];
    for (extra, code) in cases {
        assert_rpc_error(&assume_role(&e, extra).await, 400, code);
    }
    let missing = call(
        &e,
        &Creds::root(),
        "AssumeRole",
        STS,
        &[("RoleSessionName", "ab")],
    )
    .await;
    assert_rpc_error(&missing, 400, "MissingRoleArn");
    let ok = assume_role(
        &e,
        &[
            ("RoleSessionName", "a.b@c_d-e"),
            ("DurationSeconds", "3600"),
        ],
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
}

/// Credentials from an AssumeRole response.
fn sts_creds(resp: &(u16, serde_json::Value)) -> Creds {
    assert_eq!(resp.0, 200, "{}", resp.1);
    let c = &resp.1["Credentials"];
    Creds {
        id: c["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: c["AccessKeySecret"].as_str().unwrap().to_owned(),
        token: Some(c["SecurityToken"].as_str().unwrap().to_owned()),
    }
}

fn policy_of(statements: &str) -> String {
    format!(r#"{{"Version":"1","Statement":[{statements}]}}"#)
}

/// Asserts VOD's refusal of an action the caller's RAM identity may not call.
#[track_caller]
fn assert_forbidden_ram(resp: &(u16, serde_json::Value)) {
    assert_rpc_error(resp, 403, "Forbidden.RAM");
    assert_eq!(
        resp.1["Message"],
        "User not authorized to operate on the specified resource, or this API doesn't support RAM."
    );
    assert_eq!(resp.1["HostId"], "vod.cn-shanghai.aliyuncs.com");
    let keys: Vec<&str> = resp
        .1
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
}

#[tokio::test]
async fn session_policy_limits_what_the_token_may_call() {
    let e = start().await;
    let policy =
        policy_of(r#"{"Effect":"Allow","Action":["vod:CreateUploadVideo"],"Resource":"*"}"#);
    let creds = sts_creds(&assume_role(&e, &[("Policy", &policy)]).await);
    let resp = call(
        &e,
        &creds,
        "CreateUploadVideo",
        VOD,
        &[("Title", "t"), ("FileName", "m.mp4")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let video_id = resp.1["VideoId"].as_str().unwrap().to_owned();

    // Refused before the action runs: an existing video and a missing parameter alike.
    let resp = call(&e, &creds, "GetVideoInfo", VOD, &[("VideoId", &video_id)]).await;
    assert_forbidden_ram(&resp);
    let resp = call(
        &e,
        &creds,
        "CreateUploadImage",
        VOD,
        &[("ImageType", "default")],
    )
    .await;
    assert_forbidden_ram(&resp);
    let resp = call(&e, &creds, "CreateUploadImage", VOD, &[]).await;
    assert_forbidden_ram(&resp);
    // XML callers get the same refusal in XML.
    let resp = call(
        &e,
        &creds,
        "RefreshUploadVideo",
        VOD,
        &[("VideoId", &video_id), ("Format", "XML")],
    )
    .await;
    assert_eq!(resp.0, 403);
    let xml = resp.1.as_str().unwrap();
    assert!(xml.contains("<Code>Forbidden.RAM</Code>"), "{xml}");

    // The same role without a session policy has its full rights.
    let full = sts_creds(&assume_role(&e, &[]).await);
    let resp = call(&e, &full, "GetVideoInfo", VOD, &[("VideoId", &video_id)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let stats = e.emu.stats();
    assert_eq!(stats.requests["GetVideoInfo"], 2);
}

#[tokio::test]
async fn session_policy_deny_wins_and_wildcards_match() {
    let e = start().await;
    let video = create_video(&e, &[]).await;
    let params = [("VideoId", video.id.as_str())];

    let deny = policy_of(
        r#"{"Effect":"Allow","Action":"vod:*","Resource":"*"},
           {"Effect":"Deny","Action":"vod:getvideoinfo","Resource":"*"}"#,
    );
    let creds = sts_creds(&assume_role(&e, &[("Policy", &deny)]).await);
    assert_forbidden_ram(&call(&e, &creds, "GetVideoInfo", VOD, &params).await);
    let resp = call(&e, &creds, "RefreshUploadVideo", VOD, &params).await;
    assert_eq!(resp.0, 200, "{}", resp.1);

    let upload_only = policy_of(
        r#"{"Effect":"Allow","Action":"vod:CreateUpload*","Resource":["acs:vod:*:*:*"]}"#,
    );
    let creds = sts_creds(&assume_role(&e, &[("Policy", &upload_only)]).await);
    let resp = call(
        &e,
        &creds,
        "CreateUploadImage",
        VOD,
        &[("ImageType", "cover")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let resp = call(
        &e,
        &creds,
        "CreateUploadAttachedMedia",
        VOD,
        &[("BusinessType", "subtitle"), ("MediaExt", "vtt")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_forbidden_ram(&call(&e, &creds, "RefreshUploadVideo", VOD, &params).await);

    for everything in ["*", "vod:*"] {
        let p = policy_of(&format!(
            r#"{{"Effect":"Allow","Action":"{everything}","Resource":"*"}}"#
        ));
        let creds = sts_creds(&assume_role(&e, &[("Policy", &p)]).await);
        let resp = call(&e, &creds, "GetVideoInfo", VOD, &params).await;
        assert_eq!(resp.0, 200, "{everything}: {}", resp.1);
    }

    // A policy for another service grants nothing on VOD.
    let oss_only = policy_of(r#"{"Effect":"Allow","Action":"oss:*","Resource":"*"}"#);
    let creds = sts_creds(&assume_role(&e, &[("Policy", &oss_only)]).await);
    assert_forbidden_ram(&call(&e, &creds, "GetVideoInfo", VOD, &params).await);
}

#[tokio::test]
async fn session_policy_grammar_is_checked() {
    let e = start().await;
    let ok = r#"{"Effect":"Allow","Action":"vod:*","Resource":"*"}"#;
    let too_long = format!(
        r#"{{"Version":"1","Statement":[{ok}]}}{}"#,
        " ".repeat(2049 - policy_of(ok).len())
    );
    assert_eq!(too_long.len(), 2049);
    let bad = [
        "{not json".to_owned(),
        r#"{"Version":"1"}"#.to_owned(),
        r#"{"Version":"1","Statement":[]}"#.to_owned(),
        format!(r#"{{"Version":"2","Statement":[{ok}]}}"#),
        format!(r#"{{"Statement":[{ok}]}}"#),
        policy_of(r#"{"Effect":"Permit","Action":"vod:*","Resource":"*"}"#),
        policy_of(r#"{"Effect":"Allow","Resource":"*"}"#),
        too_long,
    ];
    for policy in &bad {
        let resp = assume_role(&e, &[("Policy", policy)]).await;
        assert_rpc_error(&resp, 400, "InvalidParameter.PolicyGrammar");
        assert_eq!(
            resp.1["Message"], "The parameter Policy has not passed grammar check.",
            "{policy}"
        );
        assert_eq!(resp.1["HostId"], "sts.aliyuncs.com");
    }
    // 2048 characters is the limit, not over it.
    let longest = format!(
        "{}{}",
        policy_of(ok),
        " ".repeat(2048 - policy_of(ok).len())
    );
    let resp = assume_role(&e, &[("Policy", &longest)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
}

#[tokio::test]
async fn duration_seconds_is_capped_by_the_roles_maximum() {
    let e = start_with(|c| c.role_max_session_seconds = 7200).await;
    for too_long in ["7201", "43200"] {
        let resp = assume_role(&e, &[("DurationSeconds", too_long)]).await;
        assert_rpc_error(&resp, 400, "InvalidParameter.DurationSeconds");
        assert_eq!(
            resp.1["Message"],
            "The Min/Max value of DurationSeconds is 15min/2hr."
        );
    }
    let resp = assume_role(&e, &[("DurationSeconds", "7200")]).await;
    let creds = sts_creds(&resp);
    let exp =
        chrono::DateTime::parse_from_rfc3339(resp.1["Credentials"]["Expiration"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    let left = (exp - chrono::Utc::now()).num_seconds();
    assert!((7190..=7200).contains(&left), "{left}");
    let resp = call(
        &e,
        &creds,
        "CreateUploadVideo",
        VOD,
        &[("Title", "t"), ("FileName", "m.mp4")],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    // Without DurationSeconds STS issues 3600 s whatever the maximum.
    let resp = assume_role(&e, &[]).await;
    let exp =
        chrono::DateTime::parse_from_rfc3339(resp.1["Credentials"]["Expiration"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    let left = (exp - chrono::Utc::now()).num_seconds();
    assert!((3590..=3600).contains(&left), "{left}");

    // The default role allows an hour, with the documented message.
    let e = start().await;
    let resp = assume_role(&e, &[("DurationSeconds", "3601")]).await;
    assert_rpc_error(&resp, 400, "InvalidParameter.DurationSeconds");
    assert_eq!(
        resp.1["Message"],
        "The Min/Max value of DurationSeconds is 15min/1hr."
    );
    assert_eq!(assume_role(&e, &[("DurationSeconds", "3600")]).await.0, 200);

    // RAM's range for the maximum itself.
    for bad in [3599, 43201] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = vod_ingest::emulator::EmulatorConfig::new(dir.path().to_path_buf());
        config.role_max_session_seconds = bad;
        let err = vod_ingest::emulator::start(config).await.err().unwrap();
        assert!(err.to_string().contains("3600 to 43200"), "{err}");
    }
}

#[tokio::test]
async fn assume_role_credentials_expire() {
    let e = start().await;
    set_faults(&e, json!({"assume_role_ttl_seconds": 1})).await;
    let policy = policy_of(r#"{"Effect":"Allow","Action":"vod:*","Resource":"*"}"#);
    let resp = assume_role(&e, &[("DurationSeconds", "900"), ("Policy", &policy)]).await;
    let creds = sts_creds(&resp);
    let exp =
        chrono::DateTime::parse_from_rfc3339(resp.1["Credentials"]["Expiration"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    assert!((exp - chrono::Utc::now()).num_seconds() <= 1);
    wait_until(exp).await;
    let resp = call(&e, &creds, "GetVideoInfo", VOD, &[("VideoId", "x")]).await;
    assert_rpc_error(&resp, 400, "InvalidSecurityToken.Expired");
    // `null` restores DurationSeconds.
    set_faults(&e, json!({"assume_role_ttl_seconds": null})).await;
    let resp = assume_role(&e, &[("DurationSeconds", "900")]).await;
    let exp =
        chrono::DateTime::parse_from_rfc3339(resp.1["Credentials"]["Expiration"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    assert!((exp - chrono::Utc::now()).num_seconds() > 890);
}

#[tokio::test]
async fn upload_credentials_do_not_sign_vod_calls_and_expire() {
    let e = start().await;
    set_faults(&e, json!({"credential_ttl_seconds": 1})).await;
    let up = create_video(&e, &[]).await;
    let creds = Creds::from_upload_auth(&up.auth);
    let resp = call(&e, &creds, "GetVideoInfo", VOD, &[("VideoId", &up.id)]).await;
    assert_rpc_error(&resp, 403, "Forbidden.RAM");
    wait_until(up.auth.expires_at).await;
    let resp = call(&e, &creds, "GetVideoInfo", VOD, &[("VideoId", &up.id)]).await;
    assert_rpc_error(&resp, 400, "InvalidSecurityToken.Expired");
}

#[tokio::test]
async fn unsigned_progress_reports_are_accepted() {
    let e = start().await;
    let url = format!(
        "{}/?Action=ReportUploadProgress&Version=2017-03-21&Format=JSON&VideoId=x",
        e.emu.base_url()
    );
    let resp = e.http.post(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn injected_failures_and_stats() {
    let e = start().await;
    set_faults(&e, json!({"fail_next": [{"action": "CreateUploadVideo", "code": "ServiceUnavailable", "status": 503}]})).await;
    let resp = vod(
        &e,
        "CreateUploadVideo",
        &[("Title", "t"), ("FileName", "m.mp4")],
    )
    .await;
    assert_rpc_error(&resp, 503, "ServiceUnavailable");
    let resp = vod(
        &e,
        "CreateUploadVideo",
        &[("Title", "t"), ("FileName", "m.mp4")],
    )
    .await;
    assert_eq!(resp.0, 200);
    vod(&e, "GetPlayInfo", &[]).await;
    let stats: vod_ingest::emulator::Stats = e
        .http
        .get(format!("{}/_emulator/stats", e.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.requests.get("CreateUploadVideo"), Some(&2));
    assert_eq!(stats.requests.get("Unknown"), Some(&1));
    assert_eq!(stats.injected_failures.get("CreateUploadVideo"), Some(&1));
    assert_eq!(e.emu.stats().requests, stats.requests);
    let faults = set_faults(&e, json!({"delay_ms": 0})).await;
    assert_eq!(faults["fail_next"], json!([]));

    // Error rates: 1.0 always fails, an empty map never.
    set_faults(&e, json!({"error_rates": {"GetVideoInfo": 1.0}})).await;
    let resp = vod(&e, "GetVideoInfo", &[("VideoId", "x")]).await;
    assert_rpc_error(&resp, 503, "ServiceUnavailable");
    assert_eq!(
        resp.1["Message"],
        "The request has failed due to a temporary failure of the server."
    );
    set_faults(&e, json!({"error_rates": {}})).await;
    assert_rpc_error(
        &vod(&e, "GetVideoInfo", &[("VideoId", "x")]).await,
        404,
        "InvalidVideo.NotFound",
    );
}

#[tokio::test]
async fn shutdown_is_graceful_and_frees_the_port() {
    let e = start().await;
    let addr = e.emu.addr();
    vod(&e, "GetVideoInfo", &[("VideoId", "x")]).await;
    tokio::time::timeout(Duration::from_secs(10), e.emu.shutdown())
        .await
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn the_emulator_command_takes_the_roles_maximum_session_duration() {
    use clap::Parser as _;
    use vod_ingest::cli::{Cli, Command};
    let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
        Command::Emulator(a) => a.role_max_session_duration,
        other => panic!("{other:?}"),
    };
    assert_eq!(parse(&["vod-ingest", "emulator"]), 3600);
    assert_eq!(
        parse(&[
            "vod-ingest",
            "emulator",
            "--role-max-session-duration",
            "43200"
        ]),
        43200
    );
}

/// GetVideoInfos, GetImageInfos and GetAttachedMediaInfo: up to 20 ids, found ones in the
/// list, the rest in NonExist*Ids; a media of another kind does not exist for the call.
#[tokio::test]
async fn batch_reads_answer_found_and_missing_ids() {
    let e = start().await;
    let v1 = create_video(&e, &[]).await.id;
    let v2 = create_video(&e, &[]).await.id;
    let img = vod(&e, "CreateUploadImage", &[("ImageType", "default")]).await;
    let img = img.1["ImageId"].as_str().unwrap().to_owned();
    let att = vod(
        &e,
        "CreateUploadAttachedMedia",
        &[("BusinessType", "subtitle"), ("MediaExt", "vtt")],
    )
    .await;
    let att = att.1["MediaId"].as_str().unwrap().to_owned();
    let unknown = "ffffffffffffffffffffffffffffffff";

    let ids = format!("{v1},{unknown},{v2},{img}");
    let resp = vod(&e, "GetVideoInfos", &[("VideoIds", &ids)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let found: Vec<&str> = resp.1["VideoList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["VideoId"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec![v1.as_str(), v2.as_str()]);
    assert_eq!(resp.1["VideoList"][0]["Status"], "Uploading");
    assert_eq!(resp.1["NonExistVideoIds"], json!([unknown, img]));

    let resp = vod(&e, "GetImageInfos", &[("ImageIds", &format!("{img},{v1}"))]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_eq!(resp.1["ImageInfo"][0]["ImageId"], img.as_str());
    assert_eq!(resp.1["ImageInfo"][0]["Status"], "Uploading");
    assert_eq!(resp.1["NonExistImageIds"], json!([v1]));

    let resp = vod(
        &e,
        "GetAttachedMediaInfo",
        &[("MediaIds", &format!("{att},{unknown}"))],
    )
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let a = &resp.1["AttachedMediaList"][0];
    assert_eq!(a["MediaId"], att.as_str());
    assert_eq!(a["BusinessType"], "subtitle");
    assert_eq!(a["Status"], "Uploading");
    assert_eq!(resp.1["NonExistMediaIds"], json!([unknown]));

    // 21 ids are one too many, with the real code; 20 are fine.
    let many: Vec<String> = (0..21).map(|i| format!("{i:032x}")).collect();
    for (action, param) in [
        ("GetVideoInfos", "VideoIds"),
        ("GetImageInfos", "ImageIds"),
        ("GetAttachedMediaInfo", "MediaIds"),
    ] {
        let resp = vod(&e, action, &[(param, &many.join(","))]).await;
        assert_rpc_error(&resp, 400, &format!("LimitExceeded.{param}"));
        assert_eq!(
            resp.1["Message"],
            format!("The input parameter \"{param}\" Exceed the limit.")
        );
        let resp = vod(&e, action, &[(param, &many[..20].join(","))]).await;
        assert_eq!(resp.0, 200, "{action}: {}", resp.1);
        assert_rpc_error(&vod(&e, action, &[]).await, 400, &format!("Missing{param}"));
    }
}
#[tokio::test]
async fn faults_refuse_unknown_fields_and_name_them() {
    let e = start().await;
    for (body, field) in [
        (json!({"callback_dorp": true}), "callback_dorp"),
        (
            json!({"fail_next": [{"action": "PutObject", "code": "X", "status": 500, "statsu": 1}]}),
            "statsu",
        ),
    ] {
        let resp = e
            .http
            .put(format!("{}/_emulator/faults", e.emu.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "InvalidFaults");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("unknown field `{field}`")),
            "{message}"
        );
        assert!(message.contains("expected one of"), "{message}");
    }
    // Nothing was applied.
    let faults = set_faults(&e, json!({})).await;
    assert_eq!(faults["callback_drop"], false);
}

// ---------------------------------------------------------------------------------------------
// Signature V3 (ACS3-HMAC-SHA256), as the V2.0 SDKs send it
// ---------------------------------------------------------------------------------------------

struct V3Call<'a> {
    creds: Creds,
    action: &'a str,
    version: &'a str,
    query: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
    date: String,
    nonce: String,
    /// Headers left out of SignedHeaders (still sent).
    unsigned: Vec<&'a str>,
    /// Overrides x-acs-content-sha256 (still signed).
    content_sha256: Option<String>,
    /// A signed `content-type` header (a form body needs one).
    content_type: Option<&'a str>,
}

impl<'a> V3Call<'a> {
    fn new(creds: Creds, action: &'a str, version: &'a str, query: &[(&'a str, &'a str)]) -> Self {
        Self {
            creds,
            action,
            version,
            query: query.to_vec(),
            body: Vec::new(),
            date: now_timestamp(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            unsigned: Vec::new(),
            content_sha256: None,
            content_type: None,
        }
    }

    async fn send(&self, e: &Emu) -> (u16, serde_json::Value) {
        let host = e.emu.addr().to_string();
        let hash = self
            .content_sha256
            .clone()
            .unwrap_or_else(|| sign::v3::hex_sha256(&self.body));
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-acs-action".into(), self.action.into()),
            ("x-acs-version".into(), self.version.into()),
            ("x-acs-date".into(), self.date.clone()),
            ("x-acs-signature-nonce".into(), self.nonce.clone()),
            ("x-acs-content-sha256".into(), hash.clone()),
        ];
        if let Some(content_type) = self.content_type {
            headers.push(("content-type".into(), content_type.into()));
        }
        if let Some(token) = &self.creds.token {
            headers.push(("x-acs-accesskey-id".into(), self.creds.id.clone()));
            headers.push(("x-acs-security-token".into(), token.clone()));
        }
        let query: std::collections::BTreeMap<String, String> = self
            .query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let signed: Vec<String> = headers
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !self.unsigned.contains(&k.as_str()))
            .collect();
        let input = sign::v3::CanonicalInput {
            method: "POST",
            query: &query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            signed_headers: &signed,
            hashed_payload: &hash,
        };
        let (authorization, _) = sign::v3::sign(&input, &self.creds.id, &self.creds.secret);
        let mut url = url::Url::parse(&e.emu.base_url()).unwrap();
        if !query.is_empty() {
            url.set_query(Some(&sign::v3::canonical_query(&query)));
        }
        let mut req = e
            .http
            .post(url)
            .header("authorization", authorization)
            .body(self.body.clone());
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn v3_signed_calls_work_for_vod_and_sts() {
    let e = start().await;
    let resp = V3Call::new(
        Creds::root(),
        "CreateUploadVideo",
        VOD,
        &[
            ("Title", "v3 测试 a+b*c~d/e"),
            ("FileName", "dir with space/ü clip.mp4"),
        ],
    )
    .send(&e)
    .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let video_id = resp.1["VideoId"].as_str().unwrap().to_owned();

    // STS answers as STS (told apart by x-acs-version), with a form body covered by the hash.
    let mut call = V3Call::new(Creds::root(), "AssumeRole", STS, &[]);
    call.body = b"RoleArn=acs%3Aram%3A%3A1%3Arole%2Fr&RoleSessionName=v3-test".to_vec();
    call.content_type = Some("application/x-www-form-urlencoded");
    let resp = call.send(&e).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    let c = &resp.1["Credentials"];
    let sts = Creds {
        id: c["AccessKeyId"].as_str().unwrap().into(),
        secret: c["AccessKeySecret"].as_str().unwrap().into(),
        token: Some(c["SecurityToken"].as_str().unwrap().into()),
    };
    let resp = V3Call::new(sts.clone(), "GetVideoInfo", VOD, &[("VideoId", &video_id)])
        .send(&e)
        .await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_eq!(resp.1["Video"]["VideoId"], video_id.as_str());

    // STS credentials: a garbled token and an unsigned token header are refused.
    let mut garbled = sts.clone();
    garbled.token = Some(format!("{}x", sts.token.clone().unwrap()));
    let resp = V3Call::new(garbled, "GetVideoInfo", VOD, &[("VideoId", &video_id)])
        .send(&e)
        .await;
    assert_rpc_error(&resp, 400, "InvalidSecurityToken.Malformed");
    let mut call = V3Call::new(sts, "GetVideoInfo", VOD, &[("VideoId", &video_id)]);
    call.unsigned = vec!["x-acs-security-token"];
    assert_rpc_error(&call.send(&e).await, 400, "IncompleteSignature");
}

#[tokio::test]
async fn v3_refusals() {
    let e = start().await;
    let get = |creds: Creds| V3Call::new(creds, "GetVideoInfo", VOD, &[("VideoId", "x")]);
    // Correctly signed: reaches the action.
    assert_rpc_error(
        &get(Creds::root()).send(&e).await,
        404,
        "InvalidVideo.NotFound",
    );

    let mut wrong = Creds::root();
    wrong.secret = "wrong".into();
    let resp = get(wrong).send(&e).await;
    assert_rpc_error(&resp, 400, "SignatureDoesNotMatch");
    let message = resp.1["Message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Specified signature is not matched with our calculation. server string to sign is:ACS3-HMAC-SHA256\n"
        ),
        "{message}"
    );

    let mut unknown = Creds::root();
    unknown.id = "no-such-key".into();
    assert_rpc_error(
        &get(unknown).send(&e).await,
        404,
        "InvalidAccessKeyId.NotFound",
    );

    for header in ["host", "x-acs-action", "x-acs-date", "x-acs-content-sha256"] {
        let mut call = get(Creds::root());
        call.unsigned = vec![header];
        let resp = call.send(&e).await;
        assert_rpc_error(&resp, 400, "IncompleteSignature");
        assert!(
            resp.1["Message"].as_str().unwrap().contains(header),
            "{}",
            resp.1
        );
    }

    let mut call = get(Creds::root());
    call.content_sha256 = Some(sign::v3::hex_sha256(b"another body"));
    let resp = call.send(&e).await;
    assert_rpc_error(&resp, 400, "IncompleteSignature");
    assert!(resp.1["Message"]
        .as_str()
        .unwrap()
        .contains("x-acs-content-sha256"));

    let mut call = get(Creds::root());
    call.date = (chrono::Utc::now() - chrono::Duration::minutes(16))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_rpc_error(&call.send(&e).await, 400, "InvalidTimeStamp.Expired");
    let mut call = get(Creds::root());
    call.date = "2026-11-28 08:00:00".into();
    assert_rpc_error(&call.send(&e).await, 400, "InvalidTimeStamp.Format");

    let call = get(Creds::root());
    assert_rpc_error(&call.send(&e).await, 404, "InvalidVideo.NotFound");
    assert_rpc_error(&call.send(&e).await, 400, "SignatureNonceUsed");

    // No Authorization at all, and a malformed one.
    let resp = e
        .http
        .post(format!("{}/?VideoId=x", e.emu.base_url()))
        .header("x-acs-action", "GetVideoInfo")
        .header("x-acs-version", VOD)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["Code"], "IncompleteSignature");
    let resp = e
        .http
        .post(format!("{}/?VideoId=x", e.emu.base_url()))
        .header("x-acs-action", "GetVideoInfo")
        .header("x-acs-version", VOD)
        .header(
            "authorization",
            "ACS3-HMAC-SHA256 Credential=emulator-access-key-id",
        )
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["Code"], "IncompleteSignature");
    assert!(
        v["Message"].as_str().unwrap().contains("SignedHeaders"),
        "{v}"
    );
}

/// Our own client on V3: AssumeRole through STS, then VOD calls signed with the STS
/// credentials, a wrong secret refused with the V3 string to sign.
#[tokio::test]
async fn our_client_signs_v3_with_access_keys_and_assumed_roles() {
    use vod_ingest::secret::Secret;
    use vod_ingest::vod::{
        CreateUploadVideoRequest, CredentialProvider, SignatureVersion, StsClient, VodClient,
        VodConfig,
    };
    let e = start().await;
    let endpoint = url::Url::parse(&format!("{}/", e.emu.base_url())).unwrap();
    let config = VodConfig {
        endpoint: endpoint.clone(),
        region: "cn-shanghai".into(),
        timeout: Duration::from_secs(10),
    };
    let http = reqwest::Client::new();
    let sts = StsClient::new(endpoint, "cn-shanghai".into(), http.clone())
        .with_signature_version(SignatureVersion::V3);
    let provider = CredentialProvider::assume_role(
        AK,
        Secret::new(SECRET),
        "acs:ram::1234567890123456:role/r".into(),
        "v3-client".into(),
        sts,
    );
    let client = VodClient::new(config.clone(), provider, http.clone())
        .with_signature_version(SignatureVersion::V3);
    let ticket = client
        .create_upload_video(&CreateUploadVideoRequest {
            title: "v3 测试 a+b*c~d/e".into(),
            file_name: "dir with space/ü clip.mp4".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let info = client.get_video_info(&ticket.media_id).await.unwrap();
    assert_eq!(info.video_id, ticket.media_id);
    let stats = e.emu.stats();
    assert_eq!(stats.signatures.get("v3"), Some(&3), "{stats:?}");
    assert_eq!(stats.signatures.get("v1"), None);

    let wrong = VodClient::new(
        config,
        CredentialProvider::access_key(AK, Secret::new("wrong")),
        http,
    )
    .with_signature_version(SignatureVersion::V3);
    let err = wrong.get_video_info(&ticket.media_id).await.unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch", "{err}");
    assert!(!err.is_retryable());
}

/// A call as VOD's Web and mini-program upload SDKs make it in STS mode
/// (`h5/UploadSDK/src/upload/vod/data.js`): a GET from the app's page, every parameter in
/// the query, a `RequestId` of the caller's and no `Timestamp`.
fn device_params(creds: &Creds, action: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    for (k, v) in [
        ("AccessKeyId", creds.id.as_str()),
        ("SecurityToken", creds.token.as_deref().unwrap_or_default()),
        ("Action", action),
        ("Version", VOD),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("RequestId", "c8d1a2f0-5d0b-4c39-9a52-3f1f0c6f9e11"),
    ] {
        p.insert(k.to_owned(), v.to_owned());
    }
    p.insert(
        "SignatureNonce".to_owned(),
        uuid::Uuid::new_v4().to_string(),
    );
    for (k, v) in extra {
        p.insert((*k).to_owned(), (*v).to_owned());
    }
    p
}

async fn device_get(e: &Emu, params: &BTreeMap<String, String>) -> (u16, Value, HeaderMap) {
    let url = format!(
        "{}/?{}",
        e.emu.base_url(),
        sign::rpc::to_query_string(params)
    );
    let resp = e
        .http
        .get(url)
        .header("Origin", "http://app.localhost:5173")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    (status, value, headers)
}

#[tokio::test]
async fn device_signed_sts_calls_without_a_timestamp_work_from_another_origin() {
    let e = start().await;
    let creds = sts_creds(&assume_role(&e, &[("DurationSeconds", "900")]).await);

    let mut p = device_params(
        &creds,
        "CreateUploadVideo",
        &[
            ("Title", "clip"),
            ("FileName", "clip.mp4"),
            ("FileSize", "2048"),
        ],
    );
    sign_rpc("GET", &mut p, &creds.secret);
    let (status, body, headers) = device_get(&e, &p).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let up = decode_upload(&body, "VideoId");

    let mut p = device_params(&creds, "RefreshUploadVideo", &[("VideoId", &up.id)]);
    sign_rpc("GET", &mut p, &creds.secret);
    let (status, body, _) = device_get(&e, &p).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["VideoId"], up.id.as_str());

    let mut p = device_params(&creds, "CreateUploadImage", &[("ImageType", "default")]);
    sign_rpc("GET", &mut p, &creds.secret);
    let (status, body, _) = device_get(&e, &p).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["ImageId"].is_string(), "{body}");

    // Every other rule holds: the signature, the nonce, the token.
    let mut p = device_params(&creds, "CreateUploadImage", &[("ImageType", "default")]);
    sign_rpc("GET", &mut p, "not-the-secret");
    let (status, body, headers) = device_get(&e, &p).await;
    assert_rpc_error(&(status, body), 400, "SignatureDoesNotMatch");
    // Errors carry the CORS header too, or the page could not read why it failed.
    assert_eq!(headers["access-control-allow-origin"], "*");

    let mut p = device_params(&creds, "CreateUploadImage", &[("ImageType", "default")]);
    sign_rpc("GET", &mut p, &creds.secret);
    assert_eq!(device_get(&e, &p).await.0, 200);
    let (status, body, _) = device_get(&e, &p).await;
    assert_rpc_error(&(status, body), 400, "SignatureNonceUsed");

    let mut p = device_params(&creds, "CreateUploadImage", &[("ImageType", "default")]);
    p.insert("SecurityToken".to_owned(), "forged-token".to_owned());
    sign_rpc("GET", &mut p, &creds.secret);
    let (status, body, _) = device_get(&e, &p).await;
    assert_rpc_error(&(status, body), 400, "InvalidSecurityToken.Malformed");

    // A timestamp, when sent, is checked as before.
    let mut p = device_params(&creds, "CreateUploadImage", &[("ImageType", "default")]);
    p.insert("Timestamp".to_owned(), "2020-01-02T03:04:05Z".to_owned());
    sign_rpc("GET", &mut p, &creds.secret);
    let (status, body, _) = device_get(&e, &p).await;
    assert_rpc_error(&(status, body), 400, "InvalidTimeStamp.Expired");
}

#[tokio::test]
async fn a_long_term_access_key_still_needs_a_timestamp() {
    let e = start().await;
    let root = Creds::root();
    // With or without a (meaningless) token, the account's own key must send a Timestamp.
    for token in [None, Some("some-token")] {
        let mut p = device_params(
            &Creds {
                token: token.map(str::to_owned),
                ..root.clone()
            },
            "GetVideoInfo",
            &[("VideoId", "x")],
        );
        if token.is_none() {
            p.remove("SecurityToken");
        }
        sign_rpc("GET", &mut p, &root.secret);
        let (status, body, _) = device_get(&e, &p).await;
        assert_rpc_error(&(status, body), 400, "MissingTimestamp");
    }
}

/// The client over https, resolving `names` to the emulator as a hosts entry would, and
/// trusting only the emulator's generated certificate.
fn https_client(e: &Emu, names: &[&str]) -> reqwest::Client {
    let pem = std::fs::read(e.emu.tls_cert_path().expect("TLS is on")).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    for name in names {
        builder = builder.resolve(name, e.emu.addr());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn with_tls_one_port_answers_https_for_the_vod_host_and_plain_http() {
    let e = start_with(|c| c.tls = Some(vod_ingest::emulator::TlsCertificate::Generated)).await;
    let creds = sts_creds(&assume_role(&e, &[("DurationSeconds", "900")]).await);
    let port = e.emu.addr().port();
    let vod_host = "vod.cn-shanghai.aliyuncs.com";
    let http = https_client(&e, &[vod_host, "localhost"]);

    // The SDK's call, on the host it hard-codes.
    let mut p = device_params(
        &creds,
        "CreateUploadVideo",
        &[("Title", "clip"), ("FileName", "clip.mp4")],
    );
    sign_rpc("GET", &mut p, &creds.secret);
    let resp = http
        .get(format!(
            "https://{vod_host}:{port}/?{}",
            sign::rpc::to_query_string(&p)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let up = decode_upload(&body, "VideoId");

    // The bucket as a sub-domain of localhost, over https, on the same certificate.
    let bucket_host = format!("{}.localhost", up.address.bucket);
    let http = https_client(&e, &[bucket_host.as_str()]);
    let resp = http
        .request(
            reqwest::Method::OPTIONS,
            format!("https://{bucket_host}:{port}/{}", up.address.file_name),
        )
        .header("Origin", "http://app.localhost:5173")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Plain HTTP on the same port still serves the server SDKs.
    let resp = vod(&e, "GetVideoInfo", &[("VideoId", &up.id)]).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
}

#[tokio::test]
async fn a_tls_certificate_that_is_not_pem_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let mut config = vod_ingest::emulator::EmulatorConfig::new(dir.path().to_path_buf());
    config.tls = Some(vod_ingest::emulator::TlsCertificate::Files {
        cert: cert.clone(),
        key,
    });
    let err = vod_ingest::emulator::start(config).await.err().unwrap();
    let text = format!("{err:#}");
    assert!(text.contains(&cert.display().to_string()), "{text}");
    assert!(text.contains("PEM"), "{text}");
}

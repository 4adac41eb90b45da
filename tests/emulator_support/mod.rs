//! Shared helpers for the emulator tests: start an emulator on port 0 with a temporary data
//! directory, and sign VOD/STS and OSS requests with the crate's own signing code.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use vod_ingest::emulator::{self, EmulatorConfig, RunningEmulator};
use vod_ingest::sign;
use vod_ingest::vod::{UploadAddress, UploadAuth};

pub const AK: &str = "emulator-access-key-id";
pub const SECRET: &str = "emulator-access-key-secret";
pub const VOD: &str = "2017-03-21";
pub const STS: &str = "2015-04-01";

pub struct Emu {
    pub emu: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub async fn start() -> Emu {
    start_with(|_| {}).await
}

pub async fn start_with(configure: impl FnOnce(&mut EmulatorConfig)) -> Emu {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path().to_path_buf());
    configure(&mut config);
    let emu = emulator::start(config).await.unwrap();
    Emu {
        emu,
        dir,
        http: reqwest::Client::new(),
    }
}

/// Credentials to sign with.
#[derive(Debug, Clone)]
pub struct Creds {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Creds {
    pub fn root() -> Self {
        Self {
            id: AK.to_owned(),
            secret: SECRET.to_owned(),
            token: None,
        }
    }

    pub fn from_upload_auth(auth: &UploadAuth) -> Self {
        Self {
            id: auth.access_key_id.clone(),
            secret: auth.access_key_secret.expose().to_owned(),
            token: Some(auth.security_token.expose().to_owned()),
        }
    }
}

pub fn now_timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Common parameters plus `extra`, not yet signed.
pub fn rpc_params(
    action: &str,
    version: &str,
    creds: &Creds,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    for (k, v) in [
        ("Action", action),
        ("Version", version),
        ("Format", "JSON"),
        ("AccessKeyId", creds.id.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("RegionId", "cn-shanghai"),
    ] {
        p.insert(k.to_owned(), v.to_owned());
    }
    p.insert(
        "SignatureNonce".to_owned(),
        uuid::Uuid::new_v4().to_string(),
    );
    p.insert("Timestamp".to_owned(), now_timestamp());
    if let Some(t) = &creds.token {
        p.insert("SecurityToken".to_owned(), t.clone());
    }
    for (k, v) in extra {
        p.insert((*k).to_owned(), (*v).to_owned());
    }
    p
}

pub fn sign_rpc(method: &str, params: &mut BTreeMap<String, String>, secret: &str) {
    sign::rpc::sign_params(method, params, secret);
}

/// Sends already signed parameters, all in the query string.
pub async fn rpc_send(e: &Emu, method: &str, params: &BTreeMap<String, String>) -> (u16, Value) {
    let url = format!(
        "{}/?{}",
        e.emu.base_url(),
        sign::rpc::to_query_string(params)
    );
    let req = match method {
        "GET" => e.http.get(url),
        _ => e.http.post(url),
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// A signed POST, as the official SDKs send it.
pub async fn call(
    e: &Emu,
    creds: &Creds,
    action: &str,
    version: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut p = rpc_params(action, version, creds, extra);
    sign_rpc("POST", &mut p, &creds.secret);
    rpc_send(e, "POST", &p).await
}

pub async fn vod(e: &Emu, action: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    call(e, &Creds::root(), action, VOD, extra).await
}

/// Asserts a POP error body and returns it.
#[track_caller]
pub fn assert_rpc_error(resp: &(u16, Value), status: u16, code: &str) {
    let (s, body) = resp;
    assert_eq!(
        (*s, body["Code"].as_str()),
        (status, Some(code)),
        "body: {body}"
    );
    let rid = body["RequestId"].as_str().unwrap();
    assert!(is_upper_uuid(rid), "{rid}");
    assert!(body["HostId"].is_string() && body["Message"].is_string());
    assert!(body["Recommend"].as_str().unwrap().contains(code));
}

pub fn is_upper_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('A'..='F').contains(&c),
        })
}

pub struct Upload {
    pub id: String,
    pub address: UploadAddress,
    pub auth: UploadAuth,
    pub raw: Value,
}

pub fn decode_upload(body: &Value, id_field: &str) -> Upload {
    Upload {
        id: body[id_field].as_str().unwrap().to_owned(),
        address: UploadAddress::decode(body["UploadAddress"].as_str().unwrap()).unwrap(),
        auth: UploadAuth::decode(body["UploadAuth"].as_str().unwrap(), chrono::Utc::now()).unwrap(),
        raw: body.clone(),
    }
}

pub async fn create_video(e: &Emu, extra: &[(&str, &str)]) -> Upload {
    let mut params = vec![("Title", "a video"), ("FileName", "movie.mp4")];
    params.extend_from_slice(extra);
    let resp = vod(e, "CreateUploadVideo", &params).await;
    assert_eq!(resp.0, 200, "{}", resp.1);
    decode_upload(&resp.1, "VideoId")
}

// ---------------------------------------------------------------------------------------------
// OSS

/// What oss2 does to a key in a URL: everything but unreserved characters, `/` included.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_SET).to_string()
}

pub fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// An OSS request, signed V1 unless `creds` is `None`. `headers` may override `date` and may
/// carry `content-md5`, `content-type`, `x-oss-*`; an `authorization` entry replaces the
/// computed one. Path-style unless `host` is given.
pub struct OssCall<'a> {
    pub method: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub body: Option<Vec<u8>>,
    pub creds: Option<&'a Creds>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub host: Option<String>,
    /// Send a `Date` header (when `headers` has none); browsers cannot, and send `x-oss-date`.
    pub date: bool,
}

impl<'a> OssCall<'a> {
    pub fn new(method: &'a str, bucket: &'a str, key: &'a str, creds: Option<&'a Creds>) -> Self {
        Self {
            method,
            bucket,
            key,
            body: None,
            creds,
            headers: Vec::new(),
            query: Vec::new(),
            host: None,
            date: true,
        }
    }

    /// No `Date` header, as from a browser (ali-oss signs `x-oss-date` instead).
    pub fn without_date(mut self) -> Self {
        self.date = false;
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn host(mut self, host: String) -> Self {
        self.host = Some(host);
        self
    }

    /// The StringToSign this request is signed with.
    pub fn string_to_sign(&self, headers: &[(String, String)]) -> String {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let (md5, ct, date) = (get("content-md5"), get("content-type"), get("date"));
        sign::oss::string_to_sign(&sign::oss::SignedRequest {
            method: self.method,
            content_md5: &md5,
            content_type: &ct,
            date: &date,
            headers,
            bucket: Some(self.bucket),
            key: self.key,
            query: &self.query,
        })
    }

    pub async fn send(self, e: &Emu) -> reqwest::Response {
        let mut headers = self.headers.clone();
        if self.date && !headers.iter().any(|(k, _)| k == "date") {
            headers.push(("date".to_owned(), http_date(std::time::SystemTime::now())));
        }
        if let Some(c) = self.creds {
            if let Some(t) = &c.token {
                if !headers.iter().any(|(k, _)| k == "x-oss-security-token") {
                    headers.push(("x-oss-security-token".to_owned(), t.clone()));
                }
            }
            if !headers.iter().any(|(k, _)| k == "authorization") {
                let sts = self.string_to_sign(&headers);
                let sig = sign::oss::signature(&sts, &c.secret);
                headers.push((
                    "authorization".to_owned(),
                    sign::oss::authorization(&c.id, &sig),
                ));
            }
        }
        let path = match &self.host {
            Some(_) => format!("/{}", encode_key(self.key)),
            None => format!("/{}/{}", self.bucket, encode_key(self.key)),
        };
        let mut url = format!("{}{}", e.emu.base_url(), path);
        if !self.query.is_empty() {
            let q: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", encode_key(k), encode_key(v)))
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut req = e.http.request(method, url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(h) = &self.host {
            req = req.header("host", h.as_str());
        }
        if let Some(b) = self.body {
            req = req.body(b);
        }
        req.send().await.unwrap()
    }
}

/// Reads an OSS XML error body into (element, text) pairs.
pub fn xml_fields(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let inner = xml
        .split("<Error>")
        .nth(1)
        .and_then(|s| s.split("</Error>").next())
        .unwrap_or_default();
    let mut rest = inner;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let name = &after[..end];
        let close = format!("</{name}>");
        let body = &after[end + 1..];
        let Some(stop) = body.find(&close) else { break };
        let text = body[..stop]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        out.insert(name.to_owned(), text);
        rest = &body[stop + close.len()..];
    }
    out
}

/// Checks an OSS error answer and returns its fields.
pub async fn assert_oss_error(
    resp: reqwest::Response,
    status: u16,
    code: &str,
) -> BTreeMap<String, String> {
    assert_eq!(resp.status().as_u16(), status);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/xml");
    assert_eq!(headers["server"], "AliyunOSS");
    let rid = headers["x-oss-request-id"].to_str().unwrap().to_owned();
    assert!(
        rid.len() == 24
            && rid
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{rid}"
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{text}"
    );
    let fields = xml_fields(&text);
    assert_eq!(fields.get("Code").map(String::as_str), Some(code), "{text}");
    assert_eq!(fields["RequestId"], rid);
    assert!(fields.contains_key("Message") && fields.contains_key("HostId"));
    fields
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the wall clock is past `t` (credential expiry), polling time.
pub async fn wait_until(t: chrono::DateTime<chrono::Utc>) {
    while chrono::Utc::now() <= t {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn set_faults(e: &Emu, faults: Value) -> Value {
    let resp = e
        .http
        .put(format!("{}/_emulator/faults", e.emu.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

//! OSS header signature, version 1 (`Authorization: OSS <AccessKeyId>:<Signature>`).
//! Reference: `docs/reference/oss.md` §1.1.

/// Query parameters that are sub-resources and therefore part of `CanonicalizedResource`.
/// Everything else in the query (`max-parts`, `part-number-marker`, `prefix`, ...) is unsigned.
const SUB_RESOURCES: &[&str] = &[
    "acl",
    "append",
    "bucketInfo",
    "callback",
    "callback-var",
    "cname",
    "comp",
    "continuation-token",
    "cors",
    "delete",
    "endTime",
    "img",
    "lifecycle",
    "live",
    "location",
    "logging",
    "objectMeta",
    "partNumber",
    "policy",
    "position",
    "qos",
    "referer",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "startTime",
    "stat",
    "status",
    "style",
    "styleName",
    "symlink",
    "tagging",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "vod",
    "website",
    "x-oss-process",
];

fn is_sub_resource(name: &str) -> bool {
    SUB_RESOURCES.contains(&name) || name.starts_with("x-oss-")
}

/// What a V1 signature covers. Header values are as sent; `oss_headers` may hold any headers,
/// only `x-oss-*` ones are used. `query` holds decoded names and values.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub content_md5: &'a str,
    pub content_type: &'a str,
    /// The `Date` header; ignored when an `x-oss-date` header is present.
    pub date: &'a str,
    pub headers: &'a [(String, String)],
    pub bucket: Option<&'a str>,
    /// The raw (decoded) object key, without a leading `/`.
    pub key: &'a str,
    pub query: &'a [(String, String)],
}

/// `CanonicalizedOSSHeaders`: `x-oss-*` headers, lower-cased, sorted, `name:value\n` each.
pub fn canonicalized_headers(headers: &[(String, String)]) -> String {
    let mut oss: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim()))
        .filter(|(n, _)| n.starts_with("x-oss-"))
        .collect();
    oss.sort();
    oss.iter().map(|(n, v)| format!("{n}:{v}\n")).collect()
}

/// `CanonicalizedResource`: `/bucket/key` with the raw key, then the sorted sub-resources.
pub fn canonicalized_resource(
    bucket: Option<&str>,
    key: &str,
    query: &[(String, String)],
) -> String {
    let mut resource = match bucket {
        Some(bucket) => format!("/{bucket}/{key}"),
        None => "/".to_owned(),
    };
    let mut subs: Vec<&(String, String)> =
        query.iter().filter(|(n, _)| is_sub_resource(n)).collect();
    subs.sort_by(|a, b| a.0.cmp(&b.0));
    if !subs.is_empty() {
        resource.push('?');
        let parts: Vec<String> = subs
            .iter()
            .map(|(n, v)| {
                if v.is_empty() {
                    n.clone()
                } else {
                    format!("{n}={v}")
                }
            })
            .collect();
        resource.push_str(&parts.join("&"));
    }
    resource
}

/// The exact bytes that are signed.
pub fn string_to_sign(req: &SignedRequest<'_>) -> String {
    let date = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-oss-date"))
        .map(|(_, v)| v.as_str())
        .unwrap_or(req.date);
    format!(
        "{}\n{}\n{}\n{}\n{}{}",
        req.method.to_ascii_uppercase(),
        req.content_md5,
        req.content_type,
        date,
        canonicalized_headers(req.headers),
        canonicalized_resource(req.bucket, req.key, req.query)
    )
}

/// `Base64(HMAC-SHA1(AccessKeySecret, StringToSign))`.
pub fn signature(string_to_sign: &str, access_key_secret: &str) -> String {
    super::hmac_sha1_base64(access_key_secret.as_bytes(), string_to_sign.as_bytes())
}

/// The `Authorization` header value.
pub fn authorization(access_key_id: &str, signature: &str) -> String {
    format!("OSS {access_key_id}:{signature}")
}

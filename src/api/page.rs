//! The browser upload page (`/upload`): our own HTML and JS, compiled in, and the official OSS
//! browser SDK (`ali-oss`), read at run time from `web/node_modules` (`npm ci --prefix web`), so
//! that building the service never needs Node and the SDK is not copied into the repository.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;

const INDEX: &str = include_str!("../../web/upload/index.html");
const SCRIPT: &str = include_str!("../../web/upload/upload.js");

/// Where `npm ci --prefix web` puts the browser bundle, relative to the web directory.
pub const ALI_OSS_BUNDLE: &str = "node_modules/ali-oss/dist/aliyun-oss-sdk.min.js";

/// The page's one inline `<style>` block, allowed by its hash so that no other inline style
/// or script can run.
static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine as _;
    use sha2::Digest as _;
    let style = INDEX
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map_or("", |(style, _)| style);
    let digest = sha2::Sha256::digest(style.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// The content security policy of the page: its own scripts only, its one style block, no
/// framing (clickjacking the key field), and uploads only to the API and OSS (`connect_src`).
pub(super) fn content_security_policy(connect_src: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src {}; img-src 'self' data: blob:; \
         connect-src 'self' {connect_src}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        *STYLE_HASH
    )
}

/// `connect-src` for the OSS endpoints VOD hands out: Alibaba Cloud's domains, and for an
/// emulator (any other endpoint) its own origin and the bucket names below it.
pub fn upload_connect_src(vod_endpoint: &url::Url) -> String {
    let mut sources = vec!["https://*.aliyuncs.com".to_owned()];
    let host = vod_endpoint.host_str().unwrap_or_default();
    if !host.ends_with(".aliyuncs.com") && !host.is_empty() {
        let scheme = vod_endpoint.scheme();
        let port = vod_endpoint
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        sources.push(format!("{scheme}://{host}{port}"));
        if vod_endpoint.domain().is_some() {
            sources.push(format!("{scheme}://*.{host}{port}"));
        }
        // An emulator's OSS endpoint is its public URL, which for browsers is a `localhost`
        // name (`--public-url http://localhost:9000`, or `emulator.localhost` in Compose):
        // only this machine, whatever the port.
        sources.push("http://localhost:* http://*.localhost:*".to_owned());
    }
    sources.join(" ")
}

pub(super) async fn index(State(state): State<ApiState>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&state.upload_page_connect_src))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

pub(super) async fn ali_oss(State(state): State<ApiState>) -> Response {
    let path = state.web_dir.join(ALI_OSS_BUNDLE);
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the ali-oss browser bundle is missing");
            (
                StatusCode::NOT_FOUND,
                format!(
                    "the ali-oss browser bundle is not installed at {}: run `npm ci --prefix web` in the repository, or set VOD_INGEST_WEB_DIR\n",
                    path.display()
                ),
            )
                .into_response()
        }
    }
}

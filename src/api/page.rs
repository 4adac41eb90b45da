//! The browser upload page (`/upload`): our own HTML and JS, compiled in, and the official OSS
//! browser SDK (`ali-oss`), read at run time from `web/node_modules` (`npm ci --prefix web`), so
//! that building the service never needs Node and the SDK is not copied into the repository.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;

const INDEX: &str = include_str!("../../web/upload/index.html");
const SCRIPT: &str = include_str!("../../web/upload/upload.js");

/// Where `npm ci --prefix web` puts the browser bundle, relative to the web directory.
pub const ALI_OSS_BUNDLE: &str = "node_modules/ali-oss/dist/aliyun-oss-sdk.min.js";

pub(super) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
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

//! M3U8 jobs end to end: segments under `ObjectPrefix`, the rewritten playlist last at
//! `FileName`, refusals before anything reaches VOD or OSS.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{path_str, pattern, TestApp, TestAppOptions};
use serde_json::json;
use vod_ingest::jobs::{Job, JobState};

/// The directory the segments were stored in: the playlist's (the emulator's ObjectPrefix).
fn object_prefix(job: &Job) -> String {
    let key = job.upload_key.as_deref().expect("key recorded");
    key[..=key.rfind('/').expect("keys have a directory")].to_owned()
}

fn stored(app: &TestApp, job: &Job, key: &str) -> Vec<u8> {
    let path = app
        .emulator()
        .object_path(job.upload_bucket.as_deref().unwrap(), key);
    std::fs::read(&path).unwrap_or_else(|e| panic!("object {key} missing: {e}"))
}

fn modified(app: &TestApp, job: &Job, key: &str) -> SystemTime {
    let path = app
        .emulator()
        .object_path(job.upload_bucket.as_deref().unwrap(), key);
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn write(root: &Path, name: &str, bytes: &[u8]) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn request_count(app: &TestApp, action: &str) -> u64 {
    app.emulator()
        .stats()
        .requests
        .get(action)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_playlist_is_stored_with_its_segments_and_rewritten_last() {
    let app = TestApp::spawn().await;
    let root = app.media.path().to_owned();
    let segments = [
        ("seg0.ts", "show/seg0.ts", pattern(200_000, 1)),
        ("seg1.ts", "show/hi/seg1.ts", pattern(150_001, 2)),
        ("seg2.ts", "show/seg2.ts", pattern(90_000, 3)),
    ];
    for (_, path, bytes) in &segments {
        write(&root, path, bytes);
    }
    let playlist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n# made by hand\n#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\nhi/seg1.ts?v=2\n#EXTINF:2.0,\n./seg2.ts\n#EXT-X-ENDLIST\n";
    let rewritten = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n# made by hand\n#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\nseg1.ts\n#EXTINF:2.0,\nseg2.ts\n#EXT-X-ENDLIST\n";
    write(&root, "show/index.m3u8", playlist.as_bytes());

    app.publish(
        json!({"job_id": "hls-local", "kind": "video", "title": "HLS",
        "source": path_str(&root.join("show/index.m3u8"))}),
    )
    .await;
    let job = app.wait_for_state("hls-local", JobState::Completed).await;

    assert!(job.upload_key.as_deref().unwrap().ends_with(".m3u8"));
    assert_eq!(
        String::from_utf8(app.object_bytes(&job)).unwrap(),
        rewritten,
        "the stored playlist names its segments by base name"
    );
    let prefix = object_prefix(&job);
    let playlist_written = modified(&app, &job, job.upload_key.as_deref().unwrap());
    for (name, _, bytes) in &segments {
        let key = format!("{prefix}{name}");
        assert_eq!(&stored(&app, &job, &key), bytes, "{key} differs");
        assert!(
            modified(&app, &job, &key) <= playlist_written,
            "{key} was written after the playlist"
        );
    }
    let total = rewritten.len() + segments.iter().map(|s| s.2.len()).sum::<usize>();
    assert_eq!(job.bytes_total, Some(total as i64));
    assert_eq!(job.bytes_uploaded, total as i64);
    assert_eq!(request_count(&app, "CreateUploadVideo"), 1);
    assert_eq!(request_count(&app, "PutObject"), 4);
    assert_eq!(app.emulator().stats().objects, 4);
    app.stop().await;
}

/// Serves the files `files(base_url)` returns (path → bytes) over plain HTTP on loopback;
/// no range support, so the worker spools what it fetches, as it must for many real servers.
async fn serve(files: impl FnOnce(&str) -> HashMap<String, Vec<u8>>) -> String {
    use axum::extract::State;
    use axum::http::{StatusCode, Uri};
    use axum::response::IntoResponse;

    async fn file(
        State(files): State<Arc<HashMap<String, Vec<u8>>>>,
        uri: Uri,
    ) -> axum::response::Response {
        match files.get(uri.path()) {
            Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .fallback(file)
        .with_state(Arc::new(files(&base)));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remote_playlist_is_fetched_with_its_segments_and_stored() {
    let app = TestApp::spawn_with(TestAppOptions {
        allow_private_sources: true,
        ..Default::default()
    })
    .await;
    let segments = [
        ("seg0.ts", pattern(120_000, 4)),
        ("seg1.ts", pattern(80_000, 5)),
        ("seg2.ts", pattern(64_000, 6)),
    ];
    let served = segments.clone();
    let base = serve(move |base| {
        // Relative with a query string, relative upwards, and absolute.
        let playlist = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg0.ts?token=abc\n#EXTINF:4,\n../shared/seg1.ts\n#EXTINF:4,\n{base}/elsewhere/seg2.ts\n#EXT-X-ENDLIST\n"
        );
        HashMap::from([
            ("/hls/ep1/index.m3u8".to_owned(), playlist.into_bytes()),
            ("/hls/ep1/seg0.ts".to_owned(), served[0].1.clone()),
            ("/hls/shared/seg1.ts".to_owned(), served[1].1.clone()),
            ("/elsewhere/seg2.ts".to_owned(), served[2].1.clone()),
        ])
    })
    .await;

    app.publish(
        json!({"job_id": "hls-remote", "kind": "video", "title": "HLS",
        "source": format!("{base}/hls/ep1/index.m3u8")}),
    )
    .await;
    let job = app.wait_for_state("hls-remote", JobState::Completed).await;

    let rewritten = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg0.ts\n#EXTINF:4,\nseg1.ts\n#EXTINF:4,\nseg2.ts\n#EXT-X-ENDLIST\n";
    assert_eq!(
        String::from_utf8(app.object_bytes(&job)).unwrap(),
        rewritten
    );
    let prefix = object_prefix(&job);
    for (name, bytes) in &segments {
        assert_eq!(
            &stored(&app, &job, &format!("{prefix}{name}")),
            bytes,
            "{name}"
        );
    }
    let total = rewritten.len() + segments.iter().map(|s| s.1.len()).sum::<usize>();
    assert_eq!(job.bytes_total, Some(total as i64));
    assert_eq!(request_count(&app, "CreateUploadVideo"), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_credential_and_a_server_error_mid_playlist_are_survived() {
    let app = TestApp::spawn().await;
    let root = app.media.path().to_owned();
    let mut playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n".to_owned();
    let mut segments = Vec::new();
    for i in 0..6 {
        let name = format!("part{i}.ts");
        let bytes = pattern(30_000 + i * 1000, i as u8);
        write(&root, &format!("hls/{name}"), &bytes);
        playlist.push_str(&format!("#EXTINF:2,\n{name}\n"));
        segments.push((name, bytes));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    write(&root, "hls/list.m3u8", playlist.as_bytes());
    let faults = app
        .http
        .put(format!("{}/_emulator/faults", app.emulator().base_url()))
        .json(&json!({"fail_next": [
            {"action": "PutObject", "code": "SecurityTokenExpired", "status": 403},
            {"action": "PutObject", "code": "InternalError", "status": 500},
        ]}))
        .send()
        .await
        .unwrap();
    assert!(faults.status().is_success(), "{faults:?}");

    app.publish(
        json!({"job_id": "hls-faults", "kind": "video", "title": "HLS",
        "source": path_str(&root.join("hls/list.m3u8"))}),
    )
    .await;
    let job = app.wait_for_state("hls-faults", JobState::Completed).await;

    assert_eq!(job.attempts, 1, "retried within the attempt");
    assert_eq!(
        String::from_utf8(app.object_bytes(&job)).unwrap(),
        playlist,
        "bare names are left as they are"
    );
    let prefix = object_prefix(&job);
    for (name, bytes) in &segments {
        assert_eq!(
            &stored(&app, &job, &format!("{prefix}{name}")),
            bytes,
            "{name}"
        );
    }
    assert_eq!(request_count(&app, "CreateUploadVideo"), 1);
    assert_eq!(
        request_count(&app, "RefreshUploadVideo"),
        1,
        "one renewal for the refused credential, the address kept"
    );
    app.stop().await;
}

/// A playlist's progress reaches the store while it uploads, as any upload's does (the same
/// session writes it); every emulator answer is held back so that the upload takes a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_playlist_reports_its_progress_while_it_uploads() {
    let app = TestApp::spawn().await;
    let root = app.media.path().to_owned();
    let mut playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n".to_owned();
    for i in 0..8 {
        write(&root, &format!("slow/s{i}.ts"), &pattern(100_000, i as u8));
        playlist.push_str(&format!("#EXTINF:2,\ns{i}.ts\n"));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    write(&root, "slow/index.m3u8", playlist.as_bytes());
    let total = (8 * 100_000 + playlist.len()) as i64;
    app.set_faults(json!({"delay_ms": 200})).await;

    app.publish(
        json!({"job_id": "hls-progress", "kind": "video", "title": "HLS",
        "source": path_str(&root.join("slow/index.m3u8"))}),
    )
    .await;
    let midway = app
        .wait_for("hls-progress", Duration::from_secs(30), |j| {
            j.state() == JobState::Uploading && j.bytes_uploaded > 0 && j.bytes_uploaded < total
        })
        .await;
    assert_eq!(midway.bytes_total, Some(total), "set with the media id");
    assert!(midway.media_id.is_some(), "the media id is stored first");
    let job = app
        .wait_for_state("hls-progress", JobState::Completed)
        .await;
    assert_eq!(job.bytes_uploaded, total);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn playlists_naming_files_outside_the_roots_or_missing_fail_before_any_upload() {
    let app = TestApp::spawn().await;
    let root = app.media.path().to_owned();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.ts"), b"not yours").unwrap();
    write(&root, "ok.ts", &pattern(1000, 7));
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path().join("secret.ts"), root.join("link.ts")).unwrap();

    let cases = [
        (
            "dotdot",
            "../../../../../../../../etc/passwd",
            "SourceNotAllowed",
        ),
        ("symlink", "link.ts", "SourceNotAllowed"),
        ("missing", "nowhere/missing.ts", "SourceNotFound"),
        // Remote segments obey the SSRF policy of remote sources (private hosts refused here).
        ("ssrf", "http://127.0.0.1:9/seg.ts", "SourceForbidden"),
    ];
    for (id, segment, _) in &cases {
        let playlist =
            format!("#EXTM3U\n#EXTINF:4,\nok.ts\n#EXTINF:4,\n{segment}\n#EXT-X-ENDLIST\n");
        write(&root, &format!("{id}.m3u8"), playlist.as_bytes());
        app.publish(json!({"job_id": id, "kind": "video", "title": "HLS",
            "source": path_str(&root.join(format!("{id}.m3u8")))}))
            .await;
    }
    for (id, segment, code) in &cases {
        let job = app.wait_for_state(id, JobState::Failed).await;
        let message = job.last_error_message.clone().unwrap_or_default();
        assert_eq!(
            job.last_error_code.as_deref(),
            Some(*code),
            "{id}: {message}"
        );
        assert_eq!(job.attempts, 1, "{id}: not retried");
        assert!(
            message.contains(&format!("{segment:?} (playlist line 5)")),
            "{id}: the message names the segment and its line: {message}"
        );
        let advice = match *code {
            "SourceNotAllowed" => "VOD_INGEST_SOURCE_ROOTS",
            "SourceForbidden" => "VOD_INGEST_ALLOW_PRIVATE_SOURCES",
            _ => "fix the playlist",
        };
        assert!(message.contains(advice), "{id}: {message}");
        assert_eq!(job.media_id, None, "{id}: no video was created");
    }
    assert_eq!(request_count(&app, "CreateUploadVideo"), 0);
    assert_eq!(request_count(&app, "PutObject"), 0);
    assert_eq!(app.emulator().stats().objects, 0);
    app.stop().await;
}

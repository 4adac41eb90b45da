//! Limits at every edge of both listeners: header size, slow headers, slow bodies, body size,
//! and overload, answered with a status instead of a hung or fallen-over listener.

mod common;

use std::time::{Duration, Instant};

use common::{open_limits, TestApp, TestAppOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use vod_ingest::http_server::Limits;

async fn app_with_tight_limits() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        http_limits: Limits {
            header_read_timeout: Duration::from_secs(1),
            max_header_bytes: 8 * 1024,
            request_timeout: Duration::from_secs(2),
            max_in_flight: 2,
            max_connections: 64,
            max_in_flight_per_client: 64,
            max_connections_per_client: 64,
        },
        ..Default::default()
    })
    .await
}

fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads what the server sends until it closes the connection (or `within` passes).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            within.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {within:?}"),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_get_431_on_both_listeners() {
    let app = app_with_tight_limits().await;
    for base in [app.http_base(), app.admin_base()] {
        let resp = app
            .http
            .get(format!("{base}/healthz"))
            .header("x-padding", "a".repeat(20 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 431, "{base}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = app_with_tight_limits().await;
    for base in [app.http_base(), app.admin_base()] {
        let mut stream = TcpStream::connect(addr(&base)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (_, took) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(
            took >= Duration::from_millis(900),
            "{base}: closed after {took:?}"
        );
    }
    // Meanwhile the listener keeps serving.
    let ok = app
        .http
        .get(format!("{}/healthz", app.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.stop().await;
}

/// Sends the head of a POST that promises a body and then sends only part of it.
async fn stalled_post(base: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr(base)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"Event"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_gets_408_and_overload_gets_503_with_retry_after() {
    let app = app_with_tight_limits().await;
    let base = app.http_base();
    // Two stalled bodies take both slots.
    let mut first = stalled_post(&base, "/callbacks/vod").await;
    let _second = stalled_post(&base, "/callbacks/vod").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed = app
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["code"], "Overloaded");

    let (answer, took) = read_until_closed(&mut first, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // The slots are free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = app
            .http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_get_413() {
    let app = app_with_tight_limits().await;
    let key = app.api_key(open_limits()).await;
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(format!("{{\"title\":\"{}\"}}", "x".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    app.stop().await;
}

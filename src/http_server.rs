//! Serves a listener's router with the limits an internet-facing service needs and
//! `axum::serve` does not expose: a deadline for a request's headers (slow clients holding
//! connections open), a cap on header size, a deadline for the whole request (slow bodies),
//! a bound on requests in flight that answers `503` with `Retry-After` instead of queueing
//! without end, and a bound on open connections (beyond it, new ones wait in the kernel's
//! backlog). Both bounds also hold per client address, so that one address holding slow
//! requests cannot take every slot and make VOD's callbacks wait. Hand-written around hyper
//! because axum has no knobs for the first two.
//!
//! Behind a reverse proxy every request comes from the proxy's address: raise the per-client
//! bounds to the totals there, and bound clients in the proxy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// What one listener tolerates.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Time a request may take, its body included; longer gets 408.
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests handled at once for one client address while fewer than this many slots are
    /// free; more get 503 with `Retry-After`. (With room to spare an address may use more.)
    pub max_in_flight_per_client: usize,
    /// Connections open at once from one client address; more are closed at once.
    pub max_connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 256,
            max_connections: 1024,
            max_in_flight_per_client: 64,
            max_connections_per_client: 256,
        }
    }
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// How many connections or requests each client address holds, with a bound. The map holds
/// only addresses with something open, so it is bounded by the connections.
#[derive(Debug)]
struct PerClient {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One slot of a [`PerClient`], given back on drop.
struct ClientSlot {
    owner: Arc<PerClient>,
    addr: IpAddr,
}

impl PerClient {
    fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `addr`, if it holds fewer than the limit, or `spare` (the listener has room
    /// to spare, so going over harms nobody).
    fn try_take(self: &Arc<Self>, addr: IpAddr, spare: bool) -> Option<ClientSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(addr).or_insert(0);
        if *n >= self.limit && !spare {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            owner: self.clone(),
            addr,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.addr);
            }
        }
    }
}

/// Wraps `router` in the request deadline and the in-flight bounds (in total and per client).
pub fn limited(router: Router, limits: Limits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let per_client = PerClient::new(limits.max_in_flight_per_client);
    let timeout = limits.request_timeout;
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let in_flight = in_flight.clone();
        let per_client = per_client.clone();
        async move {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            // An address may go over its share only while the listener keeps that many slots
            // free for everyone else: a burst from one address (VOD, an emulator) passes, and
            // slow requests from one address never take the last slots.
            let spare = in_flight.available_permits() > per_client.limit;
            let _client_slot = match peer {
                Some(addr) => match per_client.try_take(addr, spare) {
                    Some(slot) => Some(slot),
                    None => {
                        metrics::counter!("vod_ingest_http_shed_total", "bound" => "client")
                            .increment(1);
                        return refusal(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "TooManyRequestsFromClient",
                            "this address has too many requests in flight; wait for them to finish, then retry",
                        );
                    }
                },
                None => None,
            };
            let Ok(_permit) = in_flight.try_acquire() else {
                metrics::counter!("vod_ingest_http_shed_total", "bound" => "total").increment(1);
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Overloaded",
                    "the service is at its limit of requests in flight; retry shortly",
                );
            };
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeout",
                    "the request took too long (a slow body?); send it again",
                ),
            }
        }
    }))
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (at most
/// 10 s). Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = limited(router, limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = PerClient::new(limits.max_connections_per_client);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Over its address's bound, a connection is closed before anything is read from it.
        let Some(client_slot) = per_client.try_take(peer.ip(), false) else {
            metrics::counter!("vod_ingest_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(client_slot);
            drop(permit);
        });
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within 10 s of shutdown");
    }
    Ok(())
}

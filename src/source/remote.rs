//! `http(s)://` sources: SSRF checks, bounded redirects, range reads or spooling.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_RANGE, LOCATION, RANGE};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt as _;

use super::{exact_length, ByteStream, OpenedSource};

/// What remote sources may do.
#[derive(Debug, Clone)]
pub struct RemotePolicy {
    /// Allow hosts on loopback, private and link-local networks (`VOD_INGEST_ALLOW_PRIVATE_SOURCES`).
    pub allow_private: bool,
    pub max_redirects: usize,
    /// Where sources without range support are copied first.
    pub spool_dir: PathBuf,
    /// Largest file that may be spooled (`VOD_INGEST_SPOOL_LIMIT_BYTES`).
    pub spool_limit: u64,
    pub timeout: Duration,
}

impl Default for RemotePolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_redirects: 5,
            spool_dir: std::env::temp_dir(),
            spool_limit: 10 * 1024 * 1024 * 1024,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why a remote source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{url}: host {host} resolves to {addr}, a loopback, private or link-local address; set VOD_INGEST_ALLOW_PRIVATE_SOURCES=true if that is intended")]
    Forbidden {
        url: String,
        host: String,
        addr: IpAddr,
    },
    #[error("{url}: cannot resolve its host: {detail}")]
    Resolve { url: String, detail: String },
    #[error("{url}: more than {max} redirects")]
    TooManyRedirects { url: String, max: usize },
    #[error("{url}: a redirect to {location:?} is not an http(s) URL")]
    BadRedirect { url: String, location: String },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("{url}: the file is larger than VOD_INGEST_SPOOL_LIMIT_BYTES ({limit} bytes) and the server does not support range requests, so it cannot be streamed")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: the server's range answer is inconsistent: {detail}")]
    BadRange { url: String, detail: String },
    #[error("spooling to {dir}: {source}")]
    Spool {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Forbidden { .. } => "SourceForbidden",
            SourceError::Resolve { .. } => "SourceUnresolvable",
            SourceError::TooManyRedirects { .. } | SourceError::BadRedirect { .. } => {
                "SourceRedirects"
            }
            SourceError::Status { .. } => "SourceHttpStatus",
            SourceError::Http { .. } => "SourceHttpError",
            SourceError::TooLarge { .. } => "SourceTooLarge",
            SourceError::BadRange { .. } => "SourceBadRange",
            SourceError::Spool { .. } => "SourceSpoolFailed",
        }
    }

    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            SourceError::Http { .. } | SourceError::Resolve { .. } | SourceError::Spool { .. } => {
                true
            }
            _ => false,
        }
    }
}

/// Whether an address is one a remote source may not point at by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// A URL whose server gave a length and honours `Range`.
#[derive(Debug)]
pub struct RangedUrl {
    pub url: url::Url,
    pub len: u64,
    /// Pinned to the checked address, so a DNS answer cannot change between check and use.
    client: reqwest::Client,
}

impl RangedUrl {
    pub async fn range(&self, offset: u64, len: u64) -> std::io::Result<ByteStream> {
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let io = |e: String| std::io::Error::other(format!("{}: {e}", self.url));
        let resp = self
            .client
            .get(self.url.clone())
            .header(RANGE, format!("bytes={}-{}", offset, offset + len - 1))
            .send()
            .await
            .map_err(|e| io(e.to_string()))?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(io(format!(
                "expected 206 for a range request, got HTTP {}",
                resp.status().as_u16()
            )));
        }
        let stream = resp
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other));
        Ok(exact_length(Box::pin(stream), len))
    }
}

/// Resolves `url`'s host and checks every address; returns the one to connect to.
async fn resolve_checked(url: &url::Url, policy: &RemotePolicy) -> Result<SocketAddr, SourceError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let lookup_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup_host.as_str(), port))
        .await
        .map_err(|e| SourceError::Resolve {
            url: url.to_string(),
            detail: e.to_string(),
        })?
        .collect();
    let first = *addrs.first().ok_or_else(|| SourceError::Resolve {
        url: url.to_string(),
        detail: "no addresses".into(),
    })?;
    if !policy.allow_private {
        if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
            return Err(SourceError::Forbidden {
                url: url.to_string(),
                host,
                addr: bad.ip(),
            });
        }
    }
    Ok(first)
}

fn pinned_client(
    url: &url::Url,
    addr: SocketAddr,
    policy: &RemotePolicy,
) -> Result<reqwest::Client, SourceError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(policy.timeout);
    if let Some(domain) = url.domain() {
        builder = builder.resolve(domain, addr);
    }
    builder.build().map_err(|e| SourceError::Http {
        url: url.to_string(),
        detail: e.to_string(),
    })
}

fn total_from_content_range(value: &str) -> Option<u64> {
    // "bytes 0-0/12345"
    value.rsplit('/').next()?.trim().parse().ok()
}

/// Opens an `http(s)://` source: range-capable servers are read on demand, others spooled.
pub async fn open(url: &url::Url, policy: &RemotePolicy) -> Result<OpenedSource, SourceError> {
    let mut url = url.clone();
    for _ in 0..=policy.max_redirects {
        let addr = resolve_checked(&url, policy).await?;
        let client = pinned_client(&url, addr, policy)?;
        let http_err = |e: reqwest::Error| SourceError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        };
        let resp = client
            .get(url.clone())
            .header(RANGE, "bytes=0-0")
            .send()
            .await
            .map_err(http_err)?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let next = url
                .join(&location)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            url = next.ok_or_else(|| SourceError::BadRedirect {
                url: url.to_string(),
                location,
            })?;
            continue;
        }
        if status == StatusCode::PARTIAL_CONTENT {
            let total = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(total_from_content_range)
                .ok_or_else(|| SourceError::BadRange {
                    url: url.to_string(),
                    detail: "206 without a usable Content-Range total".into(),
                })?;
            return Ok(OpenedSource::Ranged(RangedUrl {
                url,
                len: total,
                client,
            }));
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            // An empty file: nothing to range over; fetch it whole.
            let resp = client.get(url.clone()).send().await.map_err(http_err)?;
            return spool(&url, resp, policy).await;
        }
        if status.is_success() {
            return spool(&url, resp, policy).await;
        }
        return Err(SourceError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    Err(SourceError::TooManyRedirects {
        url: url.to_string(),
        max: policy.max_redirects,
    })
}

async fn spool(
    url: &url::Url,
    resp: reqwest::Response,
    policy: &RemotePolicy,
) -> Result<OpenedSource, SourceError> {
    if !resp.status().is_success() {
        return Err(SourceError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    if resp
        .content_length()
        .is_some_and(|n| n > policy.spool_limit)
    {
        return Err(SourceError::TooLarge {
            url: url.to_string(),
            limit: policy.spool_limit,
        });
    }
    let spool_err = |source| SourceError::Spool {
        dir: policy.spool_dir.clone(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix("vod-ingest-spool-")
        .tempfile_in(&policy.spool_dir)
        .map_err(spool_err)?;
    let (std_file, path) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut written = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SourceError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        written += chunk.len() as u64;
        if written > policy.spool_limit {
            return Err(SourceError::TooLarge {
                url: url.to_string(),
                limit: policy.spool_limit,
            });
        }
        file.write_all(&chunk).await.map_err(spool_err)?;
    }
    file.flush().await.map_err(spool_err)?;
    Ok(OpenedSource::Spooled {
        file: path,
        len: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "47.100.1.1", "2400:3200::1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn content_range_totals_parse() {
        assert_eq!(total_from_content_range("bytes 0-0/12345"), Some(12345));
        assert_eq!(total_from_content_range("bytes 0-0/*"), None);
    }
}

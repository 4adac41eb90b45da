//! HTTPS for the emulator, so that VOD's client upload SDKs can reach it. In STS mode they call
//! `https://vod.<region>.aliyuncs.com` (the host and the scheme are fixed in the SDKs; only the
//! region can be set), so a device or a browser is pointed at the emulator by name (a hosts
//! entry, Chromium's `--host-resolver-rules`) and the emulator must answer TLS for that name.
//!
//! With TLS on, the one port speaks both: a connection whose first byte is a TLS handshake
//! record (0x16) gets TLS, any other plain HTTP. The server-side SDKs keep using
//! `http://127.0.0.1:PORT` and a device uses `https://` on the same port.
//!
//! The certificate is the operator's (`--tls-cert`, `--tls-key`) or generated at start for
//! the names a client uses: `localhost`, `*.localhost` and `<bucket>.localhost` (the bucket
//! sub-domain a mini program builds), the VOD and STS hosts of the region, the public URL's
//! host, its sub-domains and its bucket sub-domain, and the loopback addresses. A generated one is written to
//! `<data dir>/tls/cert.pem` so that a client can be told to trust it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Where the emulator's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCertificate {
    /// A self-signed certificate made at start (see the module's comment for its names).
    Generated,
    /// PEM files: the certificate chain and its private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// The TLS side of the listener, ready to accept.
pub(super) struct Tls {
    acceptor: TlsAcceptor,
    /// The certificate a client should trust (the operator's file, or the generated one).
    pub(super) cert_path: PathBuf,
}

/// The DNS names and addresses a generated certificate covers.
pub(super) fn certificate_names(
    region: &str,
    public_url: &str,
    listen: SocketAddr,
    bucket: &str,
) -> Vec<String> {
    // The bucket's own names too: TLS clients do not match a wildcard one label above a
    // top-level name, so `*.localhost` alone does not cover `<bucket>.localhost`.
    let mut names = vec![
        "localhost".to_owned(),
        "*.localhost".to_owned(),
        format!("{bucket}.localhost"),
        format!("vod.{region}.aliyuncs.com"),
        "sts.aliyuncs.com".to_owned(),
        format!("sts.{region}.aliyuncs.com"),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    if let Some(host) = url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        let host = host.trim_matches(|c| c == '[' || c == ']').to_owned();
        if host.parse::<std::net::IpAddr>().is_err() {
            names.push(format!("*.{host}"));
            names.push(format!("{bucket}.{host}"));
        }
        names.push(host);
    }
    names.sort();
    names.dedup();
    names
}

pub(super) fn load(
    source: &TlsCertificate,
    data_dir: &Path,
    names: Vec<String>,
) -> anyhow::Result<Tls> {
    let (chain, key, cert_path) = match source {
        TlsCertificate::Files { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| {
                    format!(
                        "cannot read the TLS certificate {}: it must be a PEM file",
                        cert.display()
                    )
                })?;
            anyhow::ensure!(
                !chain.is_empty(),
                "{} holds no certificate: give a PEM file with a CERTIFICATE block",
                cert.display()
            );
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!(
                    "cannot read the TLS key {}: it must be a PEM file with a private key",
                    key.display()
                )
            })?;
            (chain, key, cert.clone())
        }
        TlsCertificate::Generated => {
            let generated = rcgen::generate_simple_self_signed(names)
                .context("cannot generate the emulator's TLS certificate")?;
            let dir = data_dir.join("tls");
            std::fs::create_dir_all(&dir)?;
            let cert_path = dir.join("cert.pem");
            std::fs::write(&cert_path, generated.cert.pem())
                .with_context(|| format!("cannot write {}", cert_path.display()))?;
            let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der())
                .map_err(|e| anyhow::anyhow!("the generated TLS key is unusable: {e}"))?;
            (vec![generated.cert.der().clone()], key, cert_path)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_path,
    })
}

/// Time a new connection has to send its first byte and finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over TLS and plain HTTP on one listener until `shutdown`, then lets open
/// requests finish (at most 5 s).
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Tls,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = tls.acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = async {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HANDSHAKE_TIMEOUT);
                if starts_with_tls_handshake(&stream).await? {
                    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                        .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await.map_err(std::io::Error::other)
                } else {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await.map_err(std::io::Error::other)
                }
            }
            .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "emulator connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open emulator connections did not finish within 5 s of shutdown");
    }
    Ok(())
}

/// Whether the client opens with a TLS handshake record; waits for its first byte.
async fn starts_with_tls_handshake(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
        .await
        .map_err(|_| std::io::Error::other("no request within the handshake timeout"))??;
    Ok(n == 1 && first[0] == 0x16)
}

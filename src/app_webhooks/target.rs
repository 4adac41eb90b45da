//! Where a webhook may go. A key's webhook URL is typed by an operator but points wherever the
//! app's owner asked, and the service POSTs to it with its own network position: so it may not
//! reach the service's own listeners, link-local addresses (the cloud's metadata service at
//! 169.254.169.254 among them) or, unless an operator allows it, loopback. The URL is checked
//! when it is set and again at every attempt, and the client's resolver drops forbidden
//! addresses at connect time, so a DNS name that changes after the check gains nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use url::Url;

/// Longest URL accepted (it is stored and shown in the console).
const MAX_URL_LEN: usize = 1024;

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("webhook-url {0:?} is not an http(s) URL with a host (at most 1024 characters)")]
    NotHttp(String),
    #[error("webhook-url must not carry a user name or password (they would be stored in the database): authenticate the webhook by its signature instead")]
    HasCredentials,
    #[error("webhook-url resolves to {addr}, {why}: give an address the service may call")]
    Forbidden { addr: SocketAddr, why: &'static str },
    /// DNS gave no address (a retry may help).
    #[error("webhook-url host {host:?} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
}

/// What addresses webhooks may not reach.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// The service's listeners (as bound: `0.0.0.0:8080` covers every local address).
    pub own_listeners: Vec<SocketAddr>,
    /// Allow loopback addresses (`VOD_INGEST_WEBHOOK_ALLOW_LOOPBACK`): for a receiver on the
    /// same host, in development and tests. The own listeners stay refused.
    pub allow_loopback: bool,
}

impl TargetPolicy {
    /// Checks a URL's form and, when its host is an IP address, that address. Names are
    /// checked by [`TargetPolicy::check`], which resolves them.
    pub fn parse(&self, raw: &str) -> Result<Url, TargetError> {
        let raw = raw.trim();
        let url = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .filter(|_| raw.len() <= MAX_URL_LEN)
            .ok_or_else(|| TargetError::NotHttp(raw.chars().take(200).collect()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::HasCredentials);
        }
        if let Some(ip) = literal_ip(&url) {
            self.check_addr(SocketAddr::new(ip, port_of(&url)))?;
        }
        Ok(url)
    }

    /// Resolves the URL's host and checks every address it resolves to.
    pub async fn check(&self, url: &Url) -> Result<(), TargetError> {
        let port = port_of(url);
        if let Some(ip) = literal_ip(url) {
            return self.check_addr(SocketAddr::new(ip, port));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| TargetError::Unresolved {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TargetError::Unresolved {
                host,
                reason: "no addresses".into(),
            });
        }
        addrs.into_iter().try_for_each(|a| self.check_addr(a))
    }

    fn check_addr(&self, addr: SocketAddr) -> Result<(), TargetError> {
        let ip = canonical(addr.ip());
        let why = forbidden_ip(ip, self.allow_loopback).or_else(|| {
            self.own_listeners
                .iter()
                .any(|l| l.port() == addr.port() && listener_covers(l.ip(), ip))
                .then_some("one of this service's own listeners")
        });
        match why {
            Some(why) => Err(TargetError::Forbidden {
                addr: SocketAddr::new(ip, addr.port()),
                why,
            }),
            None => Ok(()),
        }
    }

    /// A resolver for the webhook client that drops the addresses no webhook may reach
    /// whatever the port, so that DNS answers given after [`TargetPolicy::check`] cannot
    /// lead the connection elsewhere.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            allow_loopback: self.allow_loopback,
        })
    }
}

/// Why an address is never called, whatever the port.
fn forbidden_ip(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        ip if ip.is_unspecified() => Some("an unspecified address"),
        ip if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        ip if ip.is_loopback() && !allow_loopback => {
            Some("a loopback address (set VOD_INGEST_WEBHOOK_ALLOW_LOOPBACK=true for a receiver on this host)")
        }
        _ => None,
    }
}

/// Whether a listener bound to `bound` accepts connections to `ip`.
fn listener_covers(bound: IpAddr, ip: IpAddr) -> bool {
    let bound = canonical(bound);
    if bound.is_unspecified() {
        // Bound to every address: any address of this host reaches it. Binding a socket to an
        // address succeeds only for the host's own ones.
        ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
    } else {
        bound == ip
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) as the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

fn port_of(url: &Url) -> u16 {
    url.port_or_known_default().unwrap_or(80)
}

/// See [`TargetPolicy::resolver`].
#[derive(Debug)]
pub struct GuardedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| forbidden_ip(canonical(a.ip()), allow_loopback).is_none())
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves to no address a webhook may reach (link-local, loopback and unspecified addresses are refused)"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_loopback: bool) -> TargetPolicy {
        TargetPolicy {
            own_listeners: vec![
                "0.0.0.0:8080".parse().unwrap(),
                "127.0.0.1:9090".parse().unwrap(),
            ],
            allow_loopback,
        }
    }

    #[test]
    fn refuses_what_no_webhook_may_reach() {
        let p = policy(true);
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]:8000/",
            "http://[::ffff:169.254.169.254]/",
            "http://127.0.0.1:8080/hook",
            "http://127.0.0.1:9090/v1/jobs",
            "http://0.0.0.0:7000/",
        ] {
            assert!(
                matches!(p.parse(bad), Err(TargetError::Forbidden { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            policy(false).parse("http://127.0.0.1:7000/"),
            Err(TargetError::Forbidden { .. })
        ));
        assert_eq!(
            p.parse("https://user:pw@app.example.com/"),
            Err(TargetError::HasCredentials)
        );
        for bad in ["ftp://app.example.com/", "not a url", "http://"] {
            assert!(
                matches!(p.parse(bad), Err(TargetError::NotHttp(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn accepts_ordinary_receivers() {
        let p = policy(true);
        for good in [
            "https://app.example.com/hooks/vod",
            "http://127.0.0.1:7000/hook",
            "http://10.0.0.8:8080/hook",
        ] {
            assert!(p.parse(good).is_ok(), "{good}");
        }
    }
}

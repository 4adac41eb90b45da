//! Who may use the console, and which requests may change something.
//!
//! - **Token.** With `VOD_INGEST_ADMIN_TOKEN` set, the console needs it: either the bearer
//!   header the other admin endpoints take, or the session cookie the login form sets (a
//!   random id of a server-side session, see [`crate::keys::sessions`]).
//! - **CSRF.** Every POST must come from a console page: `Sec-Fetch-Site: same-origin`, or,
//!   from browsers that do not send it, an `Origin` naming this very host. A request with
//!   neither is refused: browsers send them on every form POST, so only scripts lack them, and
//!   scripts have the CLI. With a token the cookie is also `SameSite=Strict`.
//! - **DNS rebinding.** Without a token, a page on a hostile name that resolves to 127.0.0.1
//!   would be "same origin" with the console. So without a token the `Host` must be an IP
//!   address or `localhost`; a console reached by any other name needs the token.

use axum::http::{header, HeaderMap};

use crate::secret::Secret;

/// The session cookie's name over plain HTTP (the admin listener on loopback).
pub const SESSION_COOKIE: &str = "vod_ingest_console";
/// Its name behind HTTPS: browsers accept a `__Host-` cookie only with `Secure`, `Path=/` and
/// no `Domain`, so no other site or sub-domain can set or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-vod_ingest_console";

/// `Set-Cookie` for a login (the session id, for its lifetime) or, with `None`, for a logout.
pub fn session_cookie(value: Option<&str>, https: bool) -> String {
    let (name, attributes) = if https {
        (
            SECURE_SESSION_COOKIE,
            "Path=/; Secure; HttpOnly; SameSite=Strict",
        )
    } else {
        (SESSION_COOKIE, "Path=/console; HttpOnly; SameSite=Strict")
    };
    match value {
        Some(v) => format!(
            "{name}={v}; {attributes}; Max-Age={}",
            crate::keys::sessions::SESSION_LIFETIME.as_secs()
        ),
        None => format!("{name}=; {attributes}; Max-Age=0"),
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// The session id the request presents, if any.
pub fn session_id(headers: &HeaderMap, https: bool) -> Option<&str> {
    cookie(
        headers,
        if https {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        },
    )
    .filter(|v| !v.is_empty())
}

/// Whether the request presents the token itself (`Authorization: Bearer`, for scripts).
/// Compared in constant time.
pub fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .is_some_and(|b| token_matches(b, token))
}

/// Whether `presented` is the token (the login form).
pub fn token_matches(presented: &str, token: &Secret) -> bool {
    crate::sign::constant_time_eq(presented.as_bytes(), token.expose().as_bytes())
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// A POST must come from one of the console's own pages (see the module comment).
pub fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return if site.eq_ignore_ascii_case("same-origin") {
            Ok(())
        } else {
            Err("this request came from another site (Sec-Fetch-Site), so it was refused: use the console's own pages")
        };
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Err("the request has no Origin header, so it cannot be told from a forged one: send console forms from a browser, or use the CLI for scripts");
    };
    let authority = url::Url::parse(origin).ok().and_then(|u| {
        let host = u.host_str()?.to_owned();
        Some(match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    match (authority, host(headers)) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(
            "this request came from another origin, so it was refused: use the console's own pages",
        ),
    }
}

/// Without a token, only an IP address or `localhost` may name the console (DNS rebinding).
pub fn host_allowed(headers: &HeaderMap, token_configured: bool) -> Result<(), &'static str> {
    if token_configured {
        return Ok(());
    }
    let Some(host) = host(headers) else {
        return Err("the request has no Host header");
    };
    // `[::1]:9090`, `127.0.0.1:9090`, `localhost:9090`, `localhost`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.');
    let ok = name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost");
    if ok {
        Ok(())
    } else {
        Err("the admin listener was reached by a host name, which a hostile page could point at this machine (DNS rebinding): open it by IP address or as localhost, or set VOD_INGEST_ADMIN_TOKEN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn posts_must_come_from_the_console_itself() {
        let host = ("host", "127.0.0.1:9090");
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "same-site")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9090")])).is_ok());
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9091")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "https://evil.example")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "null")])).is_err());
        assert!(same_origin(&headers(&[host])).is_err());
    }

    #[test]
    fn without_a_token_only_addresses_and_localhost_name_the_console() {
        for ok in [
            "127.0.0.1:9090",
            "[::1]:9090",
            "localhost:9090",
            "localhost",
            "10.0.0.5",
        ] {
            assert!(
                host_allowed(&headers(&[("host", ok)]), false).is_ok(),
                "{ok}"
            );
        }
        for bad in ["rebind.evil.example:9090", "console.internal"] {
            assert!(
                host_allowed(&headers(&[("host", bad)]), false).is_err(),
                "{bad}"
            );
            assert!(
                host_allowed(&headers(&[("host", bad)]), true).is_ok(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_bearer_header_must_be_the_token() {
        let token = Secret::from("ops-secret");
        assert!(bearer_matches(
            &headers(&[("authorization", "Bearer ops-secret")]),
            &token
        ));
        assert!(!bearer_matches(
            &headers(&[("authorization", "Bearer ops-secre")]),
            &token
        ));
        assert!(!bearer_matches(&headers(&[]), &token));
    }

    #[test]
    fn behind_https_the_cookie_is_secure_and_host_only() {
        let c = session_cookie(Some("abc"), true);
        assert!(
            c.starts_with("__Host-vod_ingest_console=abc; Path=/; Secure; HttpOnly"),
            "{c}"
        );
        assert!(!c.contains("Domain"));
        let c = session_cookie(Some("abc"), false);
        assert!(
            c.starts_with("vod_ingest_console=abc; Path=/console; HttpOnly"),
            "{c}"
        );
        assert!(session_cookie(None, true).contains("Max-Age=0"));
        let h = headers(&[("cookie", "a=b; __Host-vod_ingest_console=xyz")]);
        assert_eq!(session_id(&h, true), Some("xyz"));
        assert_eq!(session_id(&h, false), None);
    }
}

//! Alibaba Cloud API signature V3 (`ACS3-HMAC-SHA256`), the signature of today's official
//! "V2.0" SDKs. One implementation for our client and for the emulator's verifier; pinned to the
//! official vectors in `tests/fixtures/vod_v3_sign_vectors.out` (`tests/signing.rs`).
//!
//! canonical request = METHOD \n "/" \n canonical query \n canonical headers \n
//!                     signed header names \n hex(SHA-256(body))
//! signature = hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(SHA-256(canonical request))))

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::rpc::percent_encode;

/// The algorithm name, first word of `Authorization`.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Lower-case hex SHA-256, as `x-acs-content-sha256` carries it.
pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every parameter sorted by name, both sides RFC 3986 encoded, joined with `&`. A parameter
/// with an empty value still appears (`Name=`), as the official signer writes it.
pub fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signed headers as `name:value\n` lines, names lower-cased and sorted, values trimmed;
/// a header given more than once has its values sorted and joined with `,`. Returns the block
/// and the `SignedHeaders` list (`a;b;c`). Headers not named in `signed` are left out.
pub fn canonical_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    signed: &[String],
) -> (String, String) {
    let wanted: Vec<String> = signed.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut by_name: BTreeMap<String, Vec<String>> = wanted
        .iter()
        .map(|name| (name.clone(), Vec::new()))
        .collect();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if let Some(values) = by_name.get_mut(&name) {
            values.push(value.trim().to_owned());
        }
    }
    let mut block = String::new();
    for (name, values) in &mut by_name {
        values.sort();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    let names = by_name.keys().cloned().collect::<Vec<_>>().join(";");
    (block, names)
}

/// What is signed: everything but the secret.
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    pub query: &'a BTreeMap<String, String>,
    /// Header names (any case) and values as sent.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The header names to sign (any case, any order).
    pub signed_headers: &'a [String],
    /// `x-acs-content-sha256`: lower-case hex SHA-256 of the body.
    pub hashed_payload: &'a str,
}

/// The canonical request and the `SignedHeaders` value that goes with it.
pub fn canonical_request(input: &CanonicalInput<'_>) -> (String, String) {
    let (headers, names) = canonical_headers(input.headers.iter().copied(), input.signed_headers);
    let request = format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        canonical_query(input.query),
        headers,
        names,
        input.hashed_payload
    );
    (request, names)
}

/// `ACS3-HMAC-SHA256\n` + hex(SHA-256(canonical request)).
pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", hex_sha256(canonical_request.as_bytes()))
}

/// hex(HMAC-SHA256(secret, string to sign)).
pub fn signature(access_key_secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(access_key_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value.
pub fn authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!("{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}")
}

/// Signs `input` and returns the `Authorization` value, with the string to sign (for error
/// messages that compare it with the server's).
pub fn sign(input: &CanonicalInput<'_>, access_key_id: &str, secret: &str) -> (String, String) {
    let (request, names) = canonical_request(input);
    let sts = string_to_sign(&request);
    let sig = signature(secret, &sts);
    (authorization(access_key_id, &names, &sig), sts)
}

/// A parsed `Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub credential: String,
    /// Lower-cased, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why an `Authorization` value is not a V3 one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("the Authorization header does not start with {ALGORITHM}")]
    Algorithm,
    #[error("the Authorization header has no {0}")]
    Missing(&'static str),
}

impl Authorization {
    pub fn parse(value: &str) -> Result<Self, AuthorizationError> {
        let rest = value
            .trim()
            .strip_prefix(ALGORITHM)
            .filter(|r| r.starts_with(' '))
            .ok_or(AuthorizationError::Algorithm)?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let Some((k, v)) = part.trim().split_once('=') else {
                continue;
            };
            match k.trim() {
                "Credential" => credential = Some(v.trim().to_owned()),
                "SignedHeaders" => signed = Some(v.trim().to_owned()),
                "Signature" => signature = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        let credential = credential
            .filter(|c| !c.is_empty())
            .ok_or(AuthorizationError::Missing("Credential"))?;
        let signed = signed
            .filter(|s| !s.is_empty())
            .ok_or(AuthorizationError::Missing("SignedHeaders"))?;
        let signature = signature
            .filter(|s| !s.is_empty())
            .ok_or(AuthorizationError::Missing("Signature"))?;
        Ok(Self {
            credential,
            signed_headers: signed
                .split(';')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_writes() {
        let a = authorization("id", "host;x-acs-date", "abc");
        let p = Authorization::parse(&a).unwrap();
        assert_eq!(p.credential, "id");
        assert_eq!(p.signed_headers, vec!["host", "x-acs-date"]);
        assert_eq!(p.signature, "abc");
        assert_eq!(
            Authorization::parse("ACS3-HMAC-SHA256 Credential=id,Signature=x"),
            Err(AuthorizationError::Missing("SignedHeaders"))
        );
        assert_eq!(
            Authorization::parse("acs id:sig"),
            Err(AuthorizationError::Algorithm)
        );
    }

    #[test]
    fn repeated_headers_are_sorted_and_joined() {
        let (block, names) = canonical_headers(
            [
                ("X-B", " 2 "),
                ("x-b", "1"),
                ("host", "h"),
                ("ignored", "z"),
            ],
            &["x-b".into(), "Host".into()],
        );
        assert_eq!(block, "host:h\nx-b:1,2\n");
        assert_eq!(names, "host;x-b");
    }
}

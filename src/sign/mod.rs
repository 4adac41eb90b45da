//! Request signatures shared by our clients and by the emulator that verifies them.
//!
//! Both sides call the same functions, and both are pinned to the official vectors in
//! `tests/fixtures/` (see `tests/signing.rs`), so a bug cannot hide by being symmetric.

pub mod callback;
pub mod oss;
pub mod post_policy;
pub mod rpc;
pub mod standard_webhooks;
pub mod v3;

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// `base64(HMAC-SHA1(key, message))`: the primitive behind both RPC v1 and OSS v1 signatures.
pub(crate) fn hmac_sha1_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two signatures, so that a verifier leaks no prefix length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

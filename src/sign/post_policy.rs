//! Signatures of PostObject forms (OSS "PostObject" and "Appendix: Policy"): what a client
//! signs on the device or the service signs for it, and what the emulator checks. The string
//! signed is the Base64 policy itself, as the client sends it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// V1: `base64(HMAC-SHA1(secret, policy))`, the form field `Signature` (VOD's mini-program
/// SDK sends it as `signature`).
pub fn v1_signature(access_key_secret: &str, policy_base64: &str) -> String {
    super::hmac_sha1_base64(access_key_secret.as_bytes(), policy_base64.as_bytes())
}

/// V4: the form field `x-oss-credential`, `<AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request`.
pub fn v4_credential(access_key_id: &str, date: &str, region: &str) -> String {
    format!("{access_key_id}/{date}/{region}/oss/aliyun_v4_request")
}

/// V4: `x-oss-signature`, hex HMAC-SHA256 of the Base64 policy with the V4 signing key of
/// `date` (`yyyymmdd`) and `region` (the region id, `cn-shanghai`).
pub fn v4_signature(
    access_key_secret: &str,
    date: &str,
    region: &str,
    policy_base64: &str,
) -> String {
    let k = hmac(
        format!("aliyun_v4{access_key_secret}").as_bytes(),
        date.as_bytes(),
    );
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"oss");
    let k = hmac(&k, b"aliyun_v4_request");
    hex::encode(hmac(&k, policy_base64.as_bytes()))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

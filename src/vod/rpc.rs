//! One signed RPC call (VOD 2017-03-21 or STS 2015-04-01), sent like the official SDKs send it:
//! POST, every parameter in the query string, empty body, signature v1 (`docs/reference/vod-api.md` §3).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::error::{self, VodError, VodErrorKind};
use super::signing::{Credentials, SignatureVersion};
use crate::sign::rpc as sign;

/// What to call: the action's own parameters; the common ones are added when signing.
pub(crate) struct RpcCall<'a> {
    pub action: &'static str,
    pub version: &'static str,
    pub region: &'a str,
    pub params: Vec<(&'static str, String)>,
}

/// The official SDKs send every VOD and STS action as POST.
const METHOD: &str = "POST";

/// All parameters of one attempt, signed. Each attempt gets a fresh nonce and timestamp so a
/// retry is never refused as a replay (`SignatureNonceUsed`) or as stale.
pub(crate) fn signed_params(
    call: &RpcCall<'_>,
    creds: &Credentials,
    nonce: &str,
    timestamp: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = call
        .params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let common = [
        ("Action", call.action.to_owned()),
        ("Version", call.version.to_owned()),
        ("Format", "JSON".to_owned()),
        ("AccessKeyId", creds.access_key_id().to_owned()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        ("SignatureVersion", "1.0".to_owned()),
        ("SignatureNonce", nonce.to_owned()),
        (
            "Timestamp",
            timestamp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        ("RegionId", call.region.to_owned()),
    ];
    for (k, v) in common {
        params.insert(k.to_owned(), v);
    }
    if let Some(token) = creds.security_token() {
        params.insert("SecurityToken".to_owned(), token.expose().to_owned());
    }
    sign::sign_params(METHOD, &mut params, creds.access_key_secret().expose());
    params
}

/// A V3 request as the V2.0 SDKs build it: the action's parameters (and `RegionId`) in the
/// query, action, version, date, nonce and body hash (of the empty body) in `x-acs-*` headers,
/// every header signed. Returns the query, the headers with `authorization`, and the string
/// to sign.
pub(crate) fn v3_signed(
    call: &RpcCall<'_>,
    creds: &Credentials,
    nonce: &str,
    date: DateTime<Utc>,
    url: &url::Url,
) -> (BTreeMap<String, String>, Vec<(String, String)>, String) {
    let mut query: BTreeMap<String, String> = call
        .params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    query.insert("RegionId".to_owned(), call.region.to_owned());
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    };
    let hash = crate::sign::v3::hex_sha256(b"");
    let mut headers: Vec<(String, String)> = vec![
        ("accept".into(), "application/json".into()),
        ("host".into(), host),
        ("x-acs-action".into(), call.action.into()),
        ("x-acs-content-sha256".into(), hash.clone()),
        (
            "x-acs-date".into(),
            date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        ("x-acs-signature-nonce".into(), nonce.into()),
        ("x-acs-version".into(), call.version.into()),
    ];
    if let Some(token) = creds.security_token() {
        headers.push(("x-acs-accesskey-id".into(), creds.access_key_id().into()));
        headers.push(("x-acs-security-token".into(), token.expose().into()));
    }
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let input = crate::sign::v3::CanonicalInput {
        method: METHOD,
        query: &query,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        signed_headers: &signed,
        hashed_payload: &hash,
    };
    let (authorization, string_to_sign) = crate::sign::v3::sign(
        &input,
        creds.access_key_id(),
        creds.access_key_secret().expose(),
    );
    headers.push(("authorization".into(), authorization));
    (query, headers, string_to_sign)
}

/// Sends one attempt and decodes the JSON answer.
pub(crate) async fn call_once<T: DeserializeOwned>(
    http: &reqwest::Client,
    endpoint: &url::Url,
    timeout: Option<Duration>,
    creds: &Credentials,
    call: &RpcCall<'_>,
    signature: SignatureVersion,
) -> Result<T, VodError> {
    if endpoint.cannot_be_a_base() {
        return Err(VodError::from(VodErrorKind::Config {
            detail: format!(
                "endpoint {endpoint} is not an http(s) URL: check VOD_ENDPOINT / STS_ENDPOINT"
            ),
        }));
    }
    let nonce = uuid::Uuid::new_v4().to_string();
    let mut url = endpoint.clone();
    let mut request;
    let string_to_sign;
    match signature {
        SignatureVersion::V1 => {
            let params = signed_params(call, creds, &nonce, Utc::now());
            let mut unsigned = params.clone();
            unsigned.remove("Signature");
            string_to_sign = sign::string_to_sign(METHOD, &unsigned);
            url.set_query(Some(&sign::to_query_string(&params)));
            request = http
                .post(url)
                .header(reqwest::header::ACCEPT, "application/json");
        }
        SignatureVersion::V3 => {
            let (query, headers, sts) = v3_signed(call, creds, &nonce, Utc::now(), &url);
            string_to_sign = sts;
            url.set_query(Some(&crate::sign::v3::canonical_query(&query)));
            request = http.post(url);
            for (name, value) in headers {
                // reqwest sets Host itself, from the URL: the value we signed.
                if name != "host" {
                    request = request.header(name, value);
                }
            }
        }
    }
    // (V3 sends, and signs, its own `accept`: a second one would change what was signed.)
    request = request
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .body(Vec::new());
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let response = request
        .send()
        .await
        .map_err(|e| VodError::transport(call.action, e))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| VodError::transport(call.action, e))?;
    if !(200..300).contains(&status) {
        let mut secrets = vec![creds.access_key_secret().expose().to_owned()];
        if let Some(token) = creds.security_token() {
            // As sent, and as it appears once or twice encoded in an echoed StringToSign.
            let once = sign::percent_encode(token.expose());
            secrets.push(sign::percent_encode(&once));
            secrets.push(once);
            secrets.push(token.expose().to_owned());
        }
        return Err(
            error::from_error_response(call.action, status, &body, &string_to_sign)
                .redact(&secrets),
        );
    }
    decode_answer(call.action, status, &body)
}

/// Decodes a successful answer; the error names neither the body nor any value in it.
pub(crate) fn decode_answer<T: DeserializeOwned>(
    action: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, VodError> {
    serde_json::from_slice(body).map_err(|e| {
        VodError::from(VodErrorKind::InvalidResponse {
            action,
            http_status: status,
            request_id: request_id_of(body),
            detail: json_error_detail(&e),
        })
    })
}

/// serde_json's messages for type errors quote the offending value, which may be a credential:
/// keep the category and position, and the field name for missing fields.
fn json_error_detail(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") {
        text
    } else {
        format!(
            "the answer is not the expected JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

fn request_id_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "RequestId")]
        request_id: Option<String>,
    }
    serde_json::from_slice::<Id>(body).ok()?.request_id
}

/// Runs `attempt` up to three times with jittered exponential backoff. Idempotent calls retry on
/// any retryable error; non-idempotent ones only when the server certainly did not execute the
/// request, because a CreateUpload* that timed out may have created an asset already.
pub(crate) async fn with_retries<T, F, Fut>(
    action: &'static str,
    idempotent: bool,
    attempt: F,
) -> Result<T, VodError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VodError>>,
{
    attempt
        .retry(backoff())
        .when(move |e: &VodError| {
            if idempotent {
                e.is_retryable()
            } else {
                e.request_not_executed()
            }
        })
        .notify(move |e: &VodError, delay: Duration| {
            tracing::warn!(action, error = %e, ?delay, "VOD call failed; retrying");
        })
        .await
}

/// At most 3 attempts: 200 ms, then 400 ms (each plus up to 100 % jitter).
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .with_jitter_seed(rand::random())
        .with_max_times(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Vector V3 (`docs/reference/vod-api.md` §3.6): STS-signed CreateUploadVideo. PYCORE also signs an empty
    /// `SignatureType`, which we pass as an action parameter to reproduce its signature exactly.
    #[test]
    fn signs_like_the_official_sdk() {
        let call = RpcCall {
            action: "CreateUploadVideo",
            version: "2017-03-21",
            region: "ap-southeast-1",
            params: vec![
                ("CateId", "1000".into()),
                ("FileName", "movie 1.mp4".into()),
                ("FileSize", "123456789".into()),
                ("SignatureType", String::new()),
                ("Title", "a+b*c~d/e 中文标题".into()),
            ],
        };
        let creds = Credentials::StsToken {
            access_key_id: "STS.testid".into(),
            access_key_secret: Secret::new("testsecret"),
            security_token: Secret::new("CAIS+test/token=="),
        };
        let ts = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let params = signed_params(&call, &creds, "f0e1d2c3-b4a5-4697-8899-aabbccddeeff", ts);
        assert_eq!(params["Signature"], "fw0/2Orim5+ra3lwN5uo2e8hTNk=");
        assert_eq!(params["SecurityToken"], "CAIS+test/token==");
        assert_eq!(params["Timestamp"], "2024-01-02T03:04:05Z");
    }

    fn api_error(code: &str, status: u16) -> VodError {
        VodError::from(VodErrorKind::Api {
            action: "X",
            code: code.into(),
            message: "m".into(),
            request_id: None,
            host_id: None,
            recommend: None,
            http_status: status,
        })
    }

    async fn attempts_until_done(idempotent: bool, errors: Vec<VodError>) -> usize {
        let count = AtomicUsize::new(0);
        let errors = std::sync::Mutex::new(errors.into_iter());
        let _ = with_retries("X", idempotent, || {
            count.fetch_add(1, Ordering::SeqCst);
            let next = errors.lock().unwrap().next();
            async move {
                match next {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        })
        .await;
        count.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn idempotent_calls_retry_server_errors_at_most_three_times() {
        let five = || (0..5).map(|_| api_error("InternalError", 500)).collect();
        assert_eq!(attempts_until_done(true, five()).await, 3);
        assert_eq!(
            attempts_until_done(true, vec![api_error("ServiceUnavailable", 503)]).await,
            2
        );
        assert_eq!(
            attempts_until_done(true, vec![api_error("InvalidVideo.NotFound", 404)]).await,
            1
        );
    }

    #[tokio::test]
    async fn create_calls_retry_only_what_never_ran() {
        assert_eq!(
            attempts_until_done(false, vec![api_error("InternalError", 500)]).await,
            1
        );
        assert_eq!(
            attempts_until_done(false, vec![api_error("Throttling.User", 400)]).await,
            2
        );
        assert_eq!(
            attempts_until_done(false, vec![api_error("SignatureNonceUsed", 400)]).await,
            2
        );
    }
}

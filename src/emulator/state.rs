//! What the emulator remembers: issued STS credentials, used nonces, media assets, stored
//! objects, statistics and injected faults. Everything lives behind one mutex that is never
//! held across an `.await`.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, SubsecRound, Utc};
use rand::Rng as _;
use sha2::Digest as _;

use super::policy::SessionPolicy;
use super::{EmulatorConfig, Faults, Stats};
use crate::secret::Secret;

/// How long a `SignatureNonce` is remembered: the same 15 minutes the timestamp may be off by,
/// so a replayed request is caught either by its nonce or by its timestamp.
pub(crate) const NONCE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// What a temporary credential may do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Scope {
    /// Issued by AssumeRole: may call the VOD API (as far as its session policy allows, if it
    /// has one); has no rights on VOD's OSS buckets.
    Api {
        #[serde(with = "saved_as::arc_option")]
        policy: Option<std::sync::Arc<SessionPolicy>>,
    },
    /// Issued in an UploadAuth: may write (and read back) one object, or, for M3U8, anything
    /// under the media's prefix. Not valid for the VOD API.
    Object {
        bucket: String,
        key: String,
        prefix: Option<String>,
    },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StsCredential {
    pub access_key_id: String,
    #[serde(with = "saved_as::secret")]
    pub secret: Secret,
    #[serde(with = "saved_as::secret")]
    pub token: Secret,
    /// Whole seconds, so that the client's `ExpireUTCTime` and the server agree exactly.
    pub expires_at: DateTime<Utc>,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum MediaKind {
    Video,
    Image,
    Attached,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Media {
    pub id: String,
    pub kind: MediaKind,
    pub title: String,
    pub description: Option<String>,
    pub tags: Option<String>,
    pub cate_id: Option<i64>,
    pub cover_url: Option<String>,
    pub template_group_id: Option<String>,
    pub app_id: String,
    pub user_data: Option<String>,
    pub original_file_name: Option<String>,
    pub image_type: Option<String>,
    pub bucket: String,
    pub key: String,
    pub object_prefix: String,
    #[serde(with = "saved_as::static_str")]
    pub status: &'static str,
    pub size: Option<u64>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ObjectMeta {
    pub size: u64,
    /// Quoted, as on the wire: upper-hex MD5 for PutObject, `<hex>-<parts>` for multipart.
    pub etag: String,
    /// MD5 of the content; OSS reports `Content-MD5` only for `Normal` objects.
    pub content_md5: Option<[u8; 16]>,
    pub crc64: u64,
    /// `Normal` (PutObject) or `Multipart`.
    #[serde(with = "saved_as::static_str")]
    pub object_type: &'static str,
    pub content_type: String,
    pub last_modified: std::time::SystemTime,
    pub user_meta: Vec<(String, String)>,
}

/// One uploaded part of a multipart upload; its bytes are at `Shared::part_path`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PartMeta {
    pub size: u64,
    pub md5: [u8; 16],
    pub crc64: u64,
    pub last_modified: DateTime<Utc>,
}

impl PartMeta {
    pub(crate) fn etag_hex(&self) -> String {
        hex::encode_upper(self.md5)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct MultipartUpload {
    pub bucket: String,
    pub key: String,
    pub initiated: DateTime<Utc>,
    pub content_type: String,
    pub user_meta: Vec<(String, String)>,
    pub parts: std::collections::BTreeMap<u32, PartMeta>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub credentials: HashMap<String, StsCredential>,
    /// token -> AccessKeyId it was issued with, to tell a foreign token from a garbled one.
    pub tokens: HashMap<String, String>,
    pub nonces: HashMap<(String, String), Instant>,
    pub media: HashMap<String, Media>,
    /// (bucket, key) -> media id whose upload that object completes.
    pub media_by_object: HashMap<(String, String), String>,
    pub objects: HashMap<(String, String), ObjectMeta>,
    /// Multipart uploads in progress, by upload id.
    pub uploads: HashMap<String, MultipartUpload>,
    pub stats: Stats,
    pub faults: Faults,
    pub throttle: super::throttle::Windows,
    /// The most recent secrets handed out (STS secrets and tokens, UploadAuth strings), so a
    /// test can prove that none of them leaks into logs, tables or metrics.
    pub issued_secrets: std::collections::VecDeque<String>,
    last_prune: Option<Instant>,
}

/// How many issued secrets are remembered: bounded, so a long-running emulator does not grow.
const REMEMBERED_SECRETS: usize = 10_000;

pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub base_url: String,
    /// The one VOD-owned bucket of this emulated account (`outin-<32 hex>`).
    pub bucket: String,
    /// `StorageLocation` naming that bucket, as `GetVideoInfo` reports it.
    pub storage_location: String,
    /// 16-digit account id, for AssumeRole's `AssumedRoleUser`.
    pub account_id: String,
    pub http: reqwest::Client,
    inner: Mutex<Inner>,
    /// Set whenever the state is borrowed mutably: what the saver (`persist`) looks at
    /// instead of serialising everything to compare.
    changed: AtomicBool,
}

/// The locked state. Borrowing it mutably marks it changed, so no code path has to remember
/// to (a read-only borrow leaves it as it was).
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, Inner>,
    changed: &'a AtomicBool,
}

impl Deref for StateGuard<'_> {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.changed.store(true, Ordering::Relaxed);
        &mut self.guard
    }
}

impl Shared {
    /// The state over `inner`. `saved` is the (bucket, account id) of an earlier run, which
    /// `persist::open` reads along with `inner`; `None` makes a new account. The state is
    /// handed in rather than loaded here, so that `persist` builds on `state` one way.
    pub(crate) fn new(
        config: EmulatorConfig,
        base_url: String,
        saved: Option<(String, String)>,
        inner: Inner,
    ) -> anyhow::Result<Self> {
        let (bucket, account_id) = saved.unzip();
        let bucket = bucket.unwrap_or_else(|| format!("outin-{}", uuid::Uuid::new_v4().simple()));
        let storage_location = format!("{bucket}.oss-{}.aliyuncs.com", config.region);
        let account_id: String = account_id.unwrap_or_else(|| {
            let mut rng = rand::thread_rng();
            (0..16)
                .map(|_| char::from(b'0' + rng.gen_range(0..10)))
                .collect()
        });
        // VOD gives up after 5 s and never follows redirects (`docs/reference/callbacks.md` §3.2).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Apache-HttpClient/4.4.1 (Java/1.8.0_152)")
            .build()?;
        Ok(Self {
            config,
            base_url,
            bucket,
            storage_location,
            account_id,
            http,
            inner: Mutex::new(inner),
            changed: AtomicBool::new(false),
        })
    }

    pub(crate) fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            // A panic while holding the lock leaves plain data behind; keep serving.
            guard: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            changed: &self.changed,
        }
    }

    /// Whether the state may have changed since the last call (and forgets that it did).
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// Marks the state changed again (a save that failed).
    pub(crate) fn mark_changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, action: &str) {
        *self
            .lock()
            .stats
            .requests
            .entry(action.to_owned())
            .or_default() += 1;
    }

    /// Lifetime of UploadAuth credentials: the fault override, else the configured one.
    pub(crate) fn credential_ttl(&self) -> Duration {
        self.lock()
            .faults
            .credential_ttl_seconds
            .map(Duration::from_secs)
            .unwrap_or(self.config.credential_ttl)
    }

    pub(crate) fn known_bucket(&self, name: &str) -> bool {
        name == self.bucket
    }

    /// Where the bytes of `bucket/key` are kept: hashed, so any key is a safe file name.
    pub(crate) fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        object_path(&self.config.data_dir, bucket, key)
    }

    /// Where part `number` of upload `upload_id` is kept until Complete or Abort.
    pub(crate) fn part_path(&self, upload_id: &str, number: u32) -> PathBuf {
        self.upload_dir(upload_id).join(number.to_string())
    }

    pub(crate) fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.config.data_dir.join("multipart").join(upload_id)
    }

    pub(crate) fn tmp_path(&self) -> PathBuf {
        self.config
            .data_dir
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    pub(crate) fn remember_secret(&self, secret: &str) {
        let mut inner = self.lock();
        if inner.issued_secrets.len() == REMEMBERED_SECRETS {
            inner.issued_secrets.pop_front();
        }
        inner.issued_secrets.push_back(secret.to_owned());
    }

    /// Issues fresh STS credentials valid for `ttl`.
    pub(crate) fn issue_credential(&self, ttl: Duration, scope: Scope) -> StsCredential {
        let mut rng = rand::thread_rng();
        let alnum = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
            const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            (0..n)
                .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
                .collect()
        };
        let access_key_id = format!("STS.{}", alnum(&mut rng, 25));
        let secret = alnum(&mut rng, 44);
        // Real tokens are long Base64 blobs starting with "CAIS"; they contain `+`, `/`
        // and `=`, which exercises every client's encoding.
        let mut raw = [0u8; 480];
        rng.fill(&mut raw[..]);
        let token = format!(
            "CAIS{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(3000));
        let cred = StsCredential {
            access_key_id: access_key_id.clone(),
            secret: Secret::new(secret),
            token: Secret::new(token.clone()),
            expires_at: (Utc::now() + ttl).trunc_subsecs(0),
            scope,
        };
        self.remember_secret(cred.secret.expose());
        self.remember_secret(&token);
        let mut inner = self.lock();
        inner.prune();
        inner.tokens.insert(token, access_key_id.clone());
        inner.credentials.insert(access_key_id, cred.clone());
        cred
    }
}

impl Inner {
    /// Forgets nonces past their window and credentials long expired, so memory stays bounded
    /// by the request rate rather than by uptime.
    pub(crate) fn prune(&mut self) {
        let now = Instant::now();
        if self
            .last_prune
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            return;
        }
        self.last_prune = Some(now);
        self.nonces
            .retain(|_, seen| now.duration_since(*seen) < NONCE_WINDOW);
        // Expired credentials are kept a day so that their use still says "expired".
        let horizon = Utc::now() - chrono::Duration::days(1);
        let stale: Vec<String> = self
            .credentials
            .values()
            .filter(|c| c.expires_at < horizon)
            .map(|c| c.access_key_id.clone())
            .collect();
        for id in stale {
            if let Some(c) = self.credentials.remove(&id) {
                self.tokens.remove(c.token.expose());
            }
        }
    }
}

pub(crate) fn object_path(data_dir: &std::path::Path, bucket: &str, key: &str) -> PathBuf {
    let digest = sha2::Sha256::digest(key.as_bytes());
    data_dir
        .join("objects")
        .join(bucket)
        .join(hex::encode(digest))
}

/// How the fields serde cannot take as they are appear in the saved state (`persist`): kept
/// with the types, so that `state` needs nothing from `persist`.
mod saved_as {
    /// `Secret` as a plain string in the snapshot (the file holds what the emulator issued, as
    /// the objects beside it do; it is an emulator's, never a real account's).
    pub(super) mod secret {
        use crate::secret::Secret;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
            ser.serialize_str(s.expose())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
            String::deserialize(d).map(Secret::new)
        }
    }

    /// `&'static str` fields (statuses, object types): known values map to their constant; an
    /// unknown one (from a newer build) is leaked once per load, which a test tool can afford.
    pub(super) mod static_str {
        use serde::{Deserialize, Deserializer, Serializer};

        const KNOWN: &[&str] = &[
            "Uploading",
            "UploadSucc",
            "UploadFail",
            "Transcoding",
            "TranscodeFail",
            "Normal",
            "Blocked",
            "Checking",
            "Multipart",
            "Appendable",
            "success",
            "fail",
        ];

        pub fn serialize<S: Serializer>(s: &&'static str, ser: S) -> Result<S::Ok, S::Error> {
            ser.serialize_str(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
            let s = String::deserialize(d)?;
            Ok(KNOWN
                .iter()
                .find(|k| **k == s)
                .copied()
                .unwrap_or_else(|| Box::leak(s.into_boxed_str())))
        }
    }

    /// `Option<Arc<T>>` without serde's `rc` feature.
    pub(super) mod arc_option {
        use std::sync::Arc;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer, T: Serialize>(
            v: &Option<Arc<T>>,
            ser: S,
        ) -> Result<S::Ok, S::Error> {
            v.as_deref().serialize(ser)
        }

        pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
            d: D,
        ) -> Result<Option<Arc<T>>, D::Error> {
            Option::<T>::deserialize(d).map(|v| v.map(Arc::new))
        }
    }
}

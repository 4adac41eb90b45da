//! The emulator's state survives a restart: media records, the STS credentials it issued and
//! multipart uploads in progress are kept in `data_dir/.emulator-state.json`, beside the objects
//! and parts already stored there. A restarted emulator (or a second `demo` on the same data
//! directory) keeps its account id and bucket, so everything it handed out stays valid.
//!
//! Written by a background task every [`SAVE_INTERVAL`] when the state changed (any mutable
//! borrow of it marks it changed, so no code path has to remember to), less often when a save
//! takes long, and once more on shutdown; atomically, through a temporary file and a rename.
//! Not kept: used nonces (a restart forgets them, as the 15-minute timestamp window still
//! bounds replays), statistics and faults.
//! Every field is `#[serde(default)]`-tolerant, so a snapshot from an older build still loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::{Inner, Media, MultipartUpload, ObjectMeta, Shared, StsCredential};
use super::EmulatorConfig;

pub(crate) const FILE_NAME: &str = ".emulator-state.json";
const SAVE_INTERVAL: Duration = Duration::from_millis(200);
/// The share of the time the saver may spend saving.
const SAVE_SHARE: f64 = 0.05;

/// `&'static str` fields make serde require `'de: 'static`: the file's bytes are leaked once
/// at start-up (a few kilobytes) so they can be borrowed for the whole run.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'static"))]
struct Snapshot {
    pub bucket: String,
    pub account_id: String,
    #[serde(default)]
    credentials: Vec<StsCredential>,
    #[serde(default)]
    media: Vec<Media>,
    /// (bucket, key, media id)
    #[serde(default)]
    media_by_object: Vec<(String, String, String)>,
    /// (bucket, key, meta)
    #[serde(default)]
    objects: Vec<(String, String, ObjectMeta)>,
    /// (upload id, upload)
    #[serde(default)]
    uploads: Vec<(String, MultipartUpload)>,
}

pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The emulator's state: a restarted emulator keeps its account, bucket and everything it
/// issued; without a saved state it starts a new account.
pub(crate) fn open(config: EmulatorConfig, base_url: String) -> anyhow::Result<Shared> {
    let mut inner = Inner::default();
    let saved = load(&config.data_dir)?.map(|snapshot| {
        let account = (snapshot.bucket.clone(), snapshot.account_id.clone());
        snapshot.restore(&mut inner);
        account
    });
    Shared::new(config, base_url, saved, inner)
}

/// The saved state, if there is one. A file that cannot be read stops start-up with its path,
/// rather than silently starting empty.
fn load(data_dir: &Path) -> anyhow::Result<Option<Snapshot>> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            serde_json::from_slice(bytes).map(Some).map_err(|e| {
                anyhow::anyhow!(
                    "the emulator state {} is not readable ({e}): fix or delete it to start empty",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

impl Snapshot {
    fn of(shared: &Shared) -> Self {
        let inner = shared.lock();
        let mut s = Snapshot {
            bucket: shared.bucket.clone(),
            account_id: shared.account_id.clone(),
            credentials: inner.credentials.values().cloned().collect(),
            media: inner.media.values().cloned().collect(),
            media_by_object: inner
                .media_by_object
                .iter()
                .map(|((b, k), id)| (b.clone(), k.clone(), id.clone()))
                .collect(),
            objects: inner
                .objects
                .iter()
                .map(|((b, k), m)| (b.clone(), k.clone(), m.clone()))
                .collect(),
            uploads: inner
                .uploads
                .iter()
                .map(|(id, u)| (id.clone(), u.clone()))
                .collect(),
        };
        // Sorted, so that equal states serialise equally.
        s.credentials
            .sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        s.media.sort_by(|a, b| a.id.cmp(&b.id));
        s.media_by_object.sort();
        s.objects.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        s.uploads.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }

    fn restore(self, inner: &mut Inner) {
        for c in self.credentials {
            inner
                .tokens
                .insert(c.token.expose().to_owned(), c.access_key_id.clone());
            inner.credentials.insert(c.access_key_id.clone(), c);
        }
        for m in self.media {
            inner.media.insert(m.id.clone(), m);
        }
        for (b, k, id) in self.media_by_object {
            inner.media_by_object.insert((b, k), id);
        }
        for (b, k, m) in self.objects {
            inner.objects.insert((b, k), m);
        }
        inner.stats.objects = inner.objects.len() as u64;
        for (id, u) in self.uploads {
            inner.uploads.insert(id, u);
        }
    }
}

/// Writes the state, atomically; returns how long that took.
pub(crate) fn save(shared: &Shared) -> std::io::Result<Duration> {
    let started = std::time::Instant::now();
    let bytes = serde_json::to_vec(&Snapshot::of(shared)).map_err(std::io::Error::other)?;
    let target = path(&shared.config.data_dir);
    let tmp = shared.tmp_path();
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &target)?;
    Ok(started.elapsed())
}

/// Saves when the state changed, at most every [`SAVE_INTERVAL`] and at most a
/// [`SAVE_SHARE`] of the time (a large state under load is saved less often: serialising
/// 10 MB every 200 ms would take a fifth of a core from what the emulator emulates), until
/// `stop` resolves; then once more if anything changed.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let mut pause = SAVE_INTERVAL;
        if shared.take_changed() {
            let shared2 = shared.clone();
            match tokio::task::spawn_blocking(move || save(&shared2)).await {
                Ok(Ok(took)) => pause = pause.max(took.mul_f64(1.0 / SAVE_SHARE)),
                Ok(Err(e)) => {
                    shared.mark_changed();
                    tracing::warn!(error = %e, "could not save the emulator state");
                }
                Err(e) => {
                    shared.mark_changed();
                    tracing::warn!(error = %e, "the emulator state saver failed");
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_mutable_borrow_marks_the_state_changed() {
        let dir = tempfile::tempdir().unwrap();
        let shared = open(
            EmulatorConfig::new(dir.path().to_owned()),
            "http://127.0.0.1:1".into(),
        )
        .unwrap();
        assert!(!shared.take_changed(), "a new emulator has nothing to save");

        let known = shared.lock().media.len();
        assert_eq!(known, 0);
        assert!(!shared.take_changed(), "reading changes nothing");

        shared.lock().stats.objects += 1;
        assert!(shared.take_changed(), "a write is seen");
        assert!(!shared.take_changed(), "and taken once");
    }

    #[test]
    fn a_saved_state_loads_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = EmulatorConfig::new(dir.path().to_owned());
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let shared = open(config.clone(), "http://127.0.0.1:1".into()).unwrap();
        save(&shared).unwrap();
        let loaded = load(dir.path()).unwrap().expect("a snapshot was written");
        assert_eq!(loaded.bucket, shared.bucket);
        assert_eq!(loaded.account_id, shared.account_id);
    }
}

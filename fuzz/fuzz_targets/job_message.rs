//! Job messages from RabbitMQ (src/jobs/message.rs): `JobMessage::from_json`, then `validate`
//! (queue jobs) and `validate_client` (`POST /v1/uploads`).
//!
//! Properties: a message that parses round-trips through serde; a validated job has a valid id,
//! a trimmed title (and, for a video, a title and a file name), a lower-case extension its kind
//! accepts, at most 16 tags, object `user_data` with `callback_url` folded in, and no U+0000
//! (PostgreSQL cannot store it); and validation is idempotent (the stored message validates to
//! the same job), since the worker validates the stored request again.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vod_ingest::jobs::{attached_media_extensions, validate_job_id, JobKind, JobMessage};

/// One source root with a file of each kind, so that local sources can pass validation too
/// (seeds name `/tmp/vod-ingest-fuzz-root/clip.mp4` and the like).
fn roots() -> &'static [PathBuf] {
    static ROOTS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let dir = PathBuf::from("/tmp/vod-ingest-fuzz-root");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["clip.mp4", "a b.png", "sub.vtt", "logo.PNG", "noext"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        vec![std::fs::canonicalize(&dir).unwrap()]
    })
}

fn json(message: &JobMessage) -> serde_json::Value {
    serde_json::to_value(message).expect("a message serializes")
}

fn check_metadata(kind: JobKind, title: &str, file_name: &str, extension: &str, m: &JobMessage) {
    // An image or attached medium from a URL without a file name (`https://host`) has neither
    // a file name nor a title to derive; VOD needs neither.
    assert_eq!(title, title.trim(), "title {title:?}");
    if kind == JobKind::Video {
        assert!(!title.is_empty() && !file_name.is_empty());
    }
    assert_eq!(m.title.as_deref(), Some(title));
    assert_eq!(m.file_name.as_deref(), Some(file_name));
    assert_eq!(extension, extension.to_ascii_lowercase());
    match kind {
        JobKind::Video => assert!(
            file_name
                .to_ascii_lowercase()
                .ends_with(&format!(".{extension}")),
            "{file_name:?} / {extension:?}"
        ),
        JobKind::Image => assert_eq!(m.image_ext.as_deref(), Some(extension)),
        JobKind::AttachedMedia => {
            let allowed = attached_media_extensions(m.business_type.as_deref().unwrap())
                .expect("a validated business type is known");
            assert!(allowed.contains(&extension));
            assert_eq!(m.media_ext.as_deref(), Some(extension));
        }
    }
    assert!(m.tags.len() <= 16);
    assert!(m.tags.iter().all(|t| t.len() <= 32 && !t.contains(',')));
    // PostgreSQL refuses U+0000 in text and jsonb: a validated message must be storable.
    assert!(!serde_json::to_string(m).unwrap().contains("\\u0000"));
    assert!(
        m.callback_url.is_none(),
        "callback_url is folded into user_data"
    );
    assert!(matches!(
        m.user_data,
        None | Some(serde_json::Value::Object(_))
    ));
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = JobMessage::from_json(data) else {
        return;
    };
    let bytes = serde_json::to_vec(&message).expect("a message serializes");
    let again = JobMessage::from_json(&bytes).expect("a serialized message parses");
    assert_eq!(json(&again), json(&message));

    if let Ok(spec) = message.clone().validate(roots()) {
        validate_job_id(&spec.job_id).expect("a validated job id is valid");
        assert_eq!(spec.message.job_id.as_deref(), Some(spec.job_id.as_str()));
        check_metadata(
            spec.kind,
            &spec.title,
            &spec.file_name,
            &spec.extension,
            &spec.message,
        );
        let stored = serde_json::to_vec(&spec.message).unwrap();
        let again = JobMessage::from_json(&stored)
            .expect("a validated message parses")
            .validate(roots())
            .expect("a validated message validates again");
        assert_eq!(again.job_id, spec.job_id);
        assert_eq!(again.kind, spec.kind);
        assert_eq!(again.source, spec.source);
        assert_eq!(
            (&again.title, &again.file_name, &again.extension),
            (&spec.title, &spec.file_name, &spec.extension)
        );
        assert_eq!(json(&again.message), json(&spec.message));
    }

    if let Ok(spec) = message.validate_client() {
        check_metadata(
            spec.kind,
            &spec.title,
            &spec.file_name,
            &spec.extension,
            &spec.message,
        );
        assert!(!spec.file_name.contains(['/', '\\']));
        let again = spec
            .message
            .clone()
            .validate_client()
            .expect("a validated client message validates again");
        assert_eq!(again.kind, spec.kind);
        assert_eq!(
            (&again.title, &again.file_name, &again.extension),
            (&spec.title, &spec.file_name, &spec.extension)
        );
        assert_eq!(json(&again.message), json(&spec.message));
    }
});

//! The job model (kinds, states, the producer's message) and its PostgreSQL store.

mod apply;
mod batch;
mod callbacks;
mod checkpoint;
mod database;
mod deliveries;
mod event;
mod group;
mod listing;
mod media;
mod message;
mod model;
mod outbox;
mod reconcile;
mod status;
mod store;

pub use apply::{CallbackIntake, CallbackOutcome, VerifiedCallback};
pub use batch::MediaAssignment;
pub use callbacks::ToConfirm;
pub use checkpoint::{Checkpoint, Checkpoints, PartRecord};
pub use database::create_database_if_missing;
pub use deliveries::{DeliveryOutcome, DeliveryRow, DueDelivery};
pub use event::{parse_event, ParsedEvent};
pub use group::{GroupCommit, Stopped};
pub use listing::{
    ActiveUpload, Cursor, JobFilter, JobPage, MinuteStats, PageStart, ReceivedEvent, Waiting,
    MIN_SUBSTRING_SEARCH,
};
pub use media::{
    derive_status, milestones, MediaApplied, MediaDetail, MediaUpdate, Milestone, RawCallback,
    Slot, StepEntry,
};
pub use message::{
    attached_media_extensions, validate_job_id, ClientSpec, InvalidJob, JobMessage, JobSpec, Source,
};
pub use model::{JobKind, JobState, Origin, UnknownName};
pub use outbox::OutboxWaker;
pub use status::{UploadStatus, UploadStatusError};
pub use store::{
    ClientRefresh, Confirmation, Inserted, Job, JobEvent, JobStore, Lease, MediaMilestone,
    MoveRefused, NewClientUpload, OutboxError, OutboxMessage, StoreError, Transition,
};

/// The schema, embedded so `vod-ingest migrate` and the tests need no files at run time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

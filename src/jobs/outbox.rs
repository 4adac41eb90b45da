//! The outbox's doorbell. Every transaction that writes history rows (state changes, media
//! milestones) leaves them for the outbox publisher ([`crate::queue::run_event_publisher`]),
//! which reads what to publish from the table; ringing here after the commit makes it look at
//! once instead of at its next poll. A ring carries nothing, so rings coalesce, and one left
//! while the publisher is busy is kept for its next wait.

use std::sync::Arc;

use tokio::sync::Notify;

/// Cheap to clone; every clone rings the same publisher.
#[derive(Clone, Default)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call after a commit that wrote history rows.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Returns at the next ring (or at once for a ring left while nobody waited).
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

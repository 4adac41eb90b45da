//! The dead-letter queue as operators see it (the console): the messages in it with their
//! reasons, and two actions on one of them: publish it again (after fixing it) to the jobs
//! queue, or drop it.
//!
//! AMQP 0-9-1 has no "list a queue" and no "get message N". So a listing takes messages with
//! `basic.get` *without* acknowledging them, and once it has seen enough, returns all of them
//! with one `basic.nack(multiple, requeue)`: nothing leaves the queue, and a crash in between
//! returns them too (the broker requeues whatever a closed channel held). A message has no
//! id of its own (producers rarely set `message_id`), so the console names one by the SHA-256
//! of its body; to act on it, messages are taken the same way until that body turns up, the
//! action is applied to it alone (ack after a confirmed publish, or just ack to drop), and the
//! others are requeued. Identical bodies are the same dead letter for this purpose: acting on
//! either one is the same. Operations are serialised within a process; while one runs, the
//! messages it holds are invisible to others (another console, `rabbitmqadmin get`).
//!
//! RabbitMQ 3.x never counts a requeue against a queue's delivery limit unless one is set, and
//! the dead-letter queue sets none. RabbitMQ 4.0 to 4.2 give quorum queues a default limit of
//! 20 that also counts requeues: there, give the dead-letter queue a policy with
//! `delivery-limit: -1` (unlimited), or each look at it spends one of the messages' lives.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{confirm_channel, connect, publish_job, PublishError, Topology, REASON_HEADER};

/// How many messages an action looks through for the one it names before giving up.
const MAX_SCAN: usize = 10_000;

/// One dead letter, as it sits in the queue.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// SHA-256 of the body, hex: how the console names the message.
    pub id: String,
    pub body: Vec<u8>,
    /// Why the consumer refused it (`x-vod-ingest-reason`); absent when RabbitMQ itself
    /// dead-lettered it (the delivery limit), see `x-death` in `headers`.
    pub reason: Option<String>,
    pub content_type: Option<String>,
    /// Every other header, as text.
    pub headers: Vec<(String, String)>,
}

/// Messages waiting in the jobs queue and the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueDepths {
    pub jobs_ready: u32,
    pub jobs_consumers: u32,
    pub dead_letters: u32,
}

/// Why an action on a dead letter did nothing.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(
        "no message with id {0} is in the dead-letter queue (already republished or dropped?)"
    )]
    NotFound(String),
    #[error("publishing to the jobs queue failed, so the dead letter was kept: {0}")]
    Publish(#[from] PublishError),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
}

/// The id of a message with this body.
pub fn dead_letter_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn header_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn to_dead_letter(delivery: &lapin::message::Delivery) -> DeadLetter {
    let mut reason = None;
    let mut headers = Vec::new();
    if let Some(table) = delivery.properties.headers() {
        for (name, value) in table.inner() {
            if name.as_str() == REASON_HEADER {
                reason = Some(header_text(value));
            } else {
                headers.push((name.as_str().to_owned(), header_text(value)));
            }
        }
    }
    DeadLetter {
        id: dead_letter_id(&delivery.data),
        body: delivery.data.clone(),
        reason,
        content_type: delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str().to_owned()),
        headers,
    }
}

/// The dead-letter queue of one topology, through a connection of its own (opened when first
/// needed, reopened after a broker restart).
pub struct DeadLetters {
    amqp_url: String,
    topology: Topology,
    connection: tokio::sync::Mutex<Option<Connection>>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queue", &self.topology.dead_letter_queue())
            .finish_non_exhaustive()
    }
}

/// Messages taken and not yet settled on one channel.
struct Held {
    channel: Channel,
    last_tag: Option<u64>,
}

impl Held {
    /// Returns every message still held to the queue and closes the channel.
    async fn requeue_and_close(self) -> Result<(), lapin::Error> {
        if let Some(tag) = self.last_tag {
            self.channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    },
                )
                .await?;
        }
        self.channel.close(200, "done").await
    }
}

impl DeadLetters {
    pub fn new(amqp_url: impl Into<String>, topology: Topology) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            topology,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The dead-letter queue's name.
    pub fn queue_name(&self) -> String {
        self.topology.dead_letter_queue()
    }

    /// Where republished messages go.
    pub fn jobs_queue_name(&self) -> String {
        self.topology.jobs_queue()
    }

    /// A confirm-mode channel on the (re)opened connection; the guard serialises operations.
    async fn channel(&self, slot: &mut Option<Connection>) -> Result<Channel, lapin::Error> {
        if !slot.as_ref().is_some_and(|c| c.status().connected()) {
            *slot = Some(connect(&self.amqp_url, "vod-ingest-console").await?);
        }
        confirm_channel(slot.as_ref().expect("connected above")).await
    }

    /// How many messages wait in the jobs queue and in the dead-letter queue.
    pub async fn depths(&self) -> Result<QueueDepths, lapin::Error> {
        let mut slot = self.connection.lock().await;
        let channel = self.channel(&mut slot).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let jobs = channel
            .queue_declare(&self.topology.jobs_queue(), passive, FieldTable::default())
            .await?;
        let dead = channel
            .queue_declare(
                &self.topology.dead_letter_queue(),
                passive,
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "done").await;
        Ok(QueueDepths {
            jobs_ready: jobs.message_count(),
            jobs_consumers: jobs.consumer_count(),
            dead_letters: dead.message_count(),
        })
    }

    /// Up to `limit` dead letters, oldest first; all of them stay in the queue.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, lapin::Error> {
        let mut slot = self.connection.lock().await;
        let channel = self.channel(&mut slot).await?;
        let mut held = Held {
            channel,
            last_tag: None,
        };
        let mut out = Vec::new();
        let taken = async {
            while out.len() < limit {
                let Some(message) = held
                    .channel
                    .basic_get(
                        &self.topology.dead_letter_queue(),
                        BasicGetOptions { no_ack: false },
                    )
                    .await?
                else {
                    break;
                };
                held.last_tag = Some(message.delivery.delivery_tag);
                out.push(to_dead_letter(&message.delivery));
            }
            Ok::<_, lapin::Error>(())
        }
        .await;
        let returned = held.requeue_and_close().await;
        taken?;
        returned?;
        Ok(out)
    }

    /// Publishes `body` (the dead letter `id`, as fixed by the operator) to the jobs queue with
    /// a publisher confirm, then removes the dead letter. If the publish fails the dead letter
    /// stays. A crash between the two leaves both (the job's `job_id` makes the copy harmless).
    pub async fn republish(&self, id: &str, body: &[u8]) -> Result<(), DeadLetterError> {
        self.settle(id, Some(body)).await
    }

    /// Removes the dead letter `id` for good.
    pub async fn drop_message(&self, id: &str) -> Result<(), DeadLetterError> {
        self.settle(id, None).await
    }

    async fn settle(&self, id: &str, republish: Option<&[u8]>) -> Result<(), DeadLetterError> {
        let mut slot = self.connection.lock().await;
        let channel = self.channel(&mut slot).await?;
        let mut held = Held {
            channel,
            last_tag: None,
        };
        let outcome = async {
            for _ in 0..MAX_SCAN {
                let Some(message) = held
                    .channel
                    .basic_get(
                        &self.topology.dead_letter_queue(),
                        BasicGetOptions { no_ack: false },
                    )
                    .await?
                else {
                    break;
                };
                let tag = message.delivery.delivery_tag;
                // `last_tag` covers only what goes back: a multiple nack naming a tag that was
                // already acknowledged is a channel error.
                if dead_letter_id(&message.delivery.data) != id {
                    held.last_tag = Some(tag);
                    continue;
                }
                if let Some(body) = republish {
                    if let Err(e) = publish_job(&held.channel, &self.topology, body).await {
                        held.last_tag = Some(tag);
                        return Err(e.into());
                    }
                }
                held.channel
                    .basic_ack(tag, BasicAckOptions { multiple: false })
                    .await?;
                return Ok(());
            }
            Err(DeadLetterError::NotFound(id.to_owned()))
        }
        .await;
        let returned = held.requeue_and_close().await;
        outcome?;
        returned?;
        Ok(())
    }
}

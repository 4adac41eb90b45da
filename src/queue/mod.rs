//! RabbitMQ: the jobs queue producers publish to, the dead-letter queue for messages that are
//! not jobs, and the events exchange every transition is published on.
//!
//! Names derive from one prefix (`vod.ingest` by default, `VOD_INGEST_AMQP_PREFIX`), so tests
//! and demos run side by side on one broker.

mod consumer;
mod dead_letters;

pub use consumer::{consume_jobs, ConsumerConfig};
pub use dead_letters::{dead_letter_id, DeadLetter, DeadLetterError, DeadLetters, QueueDepths};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// How many times RabbitMQ redelivers a message (consumer crash, lost connection) before it
/// dead-letters it. RabbitMQ 3.10 has no default limit, so it is set explicitly.
pub const DELIVERY_LIMIT: i32 = 10;

/// Header that carries why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-vod-ingest-reason";

/// Queue and exchange names for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.jobs.dead", self.prefix)
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Declares everything (idempotent): producers, workers and tests can all call it.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable_exchange = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                &self.dead_letter_exchange(),
                ExchangeKind::Fanout,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
        let mut dead_args = FieldTable::default();
        dead_args.insert("x-queue-type".into(), long_string("quorum"));
        channel
            .queue_declare(&self.dead_letter_queue(), durable_queue, dead_args)
            .await?;
        channel
            .queue_bind(
                &self.dead_letter_queue(),
                &self.dead_letter_exchange(),
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut job_args = FieldTable::default();
        job_args.insert("x-queue-type".into(), long_string("quorum"));
        job_args.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange()),
        );
        job_args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(DELIVERY_LIMIT),
        );
        // At-least-once dead-lettering: a dead letter is not lost if the DLX queue is slow.
        job_args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        job_args.insert("x-overflow".into(), long_string("reject-publish"));
        channel
            .queue_declare(&self.jobs_queue(), durable_queue, job_args)
            .await?;

        channel
            .exchange_declare(
                &self.events_exchange(),
                ExchangeKind::Topic,
                durable_exchange,
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

impl Topology {
    /// Deletes the queues and exchanges of this prefix (tests and tear-down; messages in them
    /// are lost). Quorum queues hold file handles on the broker, so short-lived prefixes must
    /// not be left behind.
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        for queue in [self.jobs_queue(), self.dead_letter_queue()] {
            channel
                .queue_delete(&queue, QueueDeleteOptions::default())
                .await?;
        }
        for exchange in [self.dead_letter_exchange(), self.events_exchange()] {
            channel
                .exchange_delete(&exchange, ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.to_owned()))
}

/// Connects with a name that shows up in the RabbitMQ management UI.
pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    let mut props = ConnectionProperties::default();
    props.client_properties.insert(
        "connection_name".into(),
        AMQPValue::LongString(LongString::from(name.to_owned())),
    );
    Connection::connect(url, props).await
}

/// Opens a channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Why a publish did not land.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "RabbitMQ refused the message (nack): the queue may be full or unavailable; try again"
    )]
    Nacked,
    #[error("RabbitMQ returned the message as unroutable: is the queue {0} declared?")]
    Unroutable(String),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
}

/// Publishes persistently and waits for the broker's confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let confirm = channel
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties.with_delivery_mode(2),
        )
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable(routing_key.into())),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
    }
}

/// Publishes a job message to the jobs queue (what `vod-ingest enqueue` and producers do).
pub async fn publish_job(
    channel: &Channel,
    topology: &Topology,
    body: &[u8],
) -> Result<(), PublishError> {
    publish_confirmed(
        channel,
        "",
        &topology.jobs_queue(),
        body,
        BasicProperties::default().with_content_type(ShortString::from("application/json")),
    )
    .await
}

/// Publishes transitions on the events exchange with routing key `job.<state>`.
#[derive(Clone)]
pub struct EventPublisher {
    channel: Channel,
    exchange: String,
}

impl EventPublisher {
    pub fn new(channel: Channel, topology: &Topology) -> Self {
        Self {
            channel,
            exchange: topology.events_exchange(),
        }
    }

    /// Publishes the outbox's messages (job transitions and media milestones) in order, then
    /// waits for their confirms together: answers how many, from the first, the broker
    /// confirmed, and what stopped it. Confirms arrive in publish order on one channel, so the
    /// order per job holds.
    pub async fn publish_all(
        &self,
        messages: &[crate::jobs::OutboxMessage],
    ) -> (usize, Option<PublishError>) {
        let encoded: Vec<(String, Vec<u8>)> = messages
            .iter()
            .map(|message| (message.routing_key(), message.body()))
            .collect();
        let mut publishes: Vec<_> = encoded
            .iter()
            .map(|(routing_key, body)| {
                Box::pin(
                    self.channel.basic_publish(
                        &self.exchange,
                        routing_key,
                        BasicPublishOptions::default(),
                        body,
                        BasicProperties::default()
                            .with_content_type(ShortString::from("application/json"))
                            .with_delivery_mode(2),
                    ),
                )
            })
            .collect();
        // Start every publish before waiting for any: the first poll of a publish takes its
        // delivery tag and queues its frames, in this order, so lapin's I/O thread is woken
        // once and writes them all. Awaited one by one, each publish cost two thread switches
        // (a wake-up of that thread and one back), most of the worker's CPU for small jobs.
        let mut started: Vec<Option<Result<_, lapin::Error>>> = Vec::with_capacity(publishes.len());
        std::future::poll_fn(|cx| {
            for publish in publishes.iter_mut() {
                started.push(match std::future::Future::poll(publish.as_mut(), cx) {
                    std::task::Poll::Ready(result) => Some(result),
                    std::task::Poll::Pending => None,
                });
            }
            std::task::Poll::Ready(())
        })
        .await;
        let mut confirms = Vec::with_capacity(messages.len());
        let mut error = None;
        for (publish, started) in publishes.iter_mut().zip(started) {
            let result = match started {
                Some(result) => result,
                None => publish.await,
            };
            match result {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => {
                    error = Some(e.into());
                    break;
                }
            }
        }
        let mut confirmed = 0;
        for (confirm, message) in confirms.into_iter().zip(messages) {
            match confirm.await {
                Ok(Confirmation::Nack(_)) => {
                    error = Some(PublishError::Nacked);
                    break;
                }
                Ok(_) => {
                    count_published(message);
                    confirmed += 1;
                }
                Err(e) => {
                    error = Some(e.into());
                    break;
                }
            }
        }
        (confirmed, error)
    }
}

/// Counts a message the broker confirmed, by state or milestone.
fn count_published(message: &crate::jobs::OutboxMessage) {
    match message {
        crate::jobs::OutboxMessage::Job(t) => {
            metrics::counter!("vod_ingest_transitions_total", "state" => t.state.as_str())
                .increment(1)
        }
        crate::jobs::OutboxMessage::Media(ms) => {
            metrics::counter!("vod_ingest_media_milestones_total", "milestone" => ms.milestone.clone())
                .increment(1)
        }
    }
}

/// Least time between two outbox passes after a wake-up: what an event may wait for company.
const OUTBOX_PACE: std::time::Duration = std::time::Duration::from_millis(20);

/// History rows one outbox pass takes.
const OUTBOX_BATCH: i64 = 1000;

/// Publishes committed transitions from the job store's outbox until `shutdown`: at once when
/// woken, and every second regardless (for transitions other processes committed, or that a
/// broker outage held back).
pub async fn run_event_publisher(
    store: crate::jobs::JobStore,
    publisher: EventPublisher,
    wake: crate::jobs::OutboxWaker,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        loop {
            let result = store
                .publish_outbox(OUTBOX_BATCH, |transitions| {
                    let publisher = publisher.clone();
                    async move { publisher.publish_all(&transitions).await }
                })
                .await;
            match result {
                // A large batch may mean more are waiting (history notes are not counted).
                Ok(n) if n as i64 >= OUTBOX_BATCH / 2 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not publish job events; will try again");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.woken() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        // Coalesce a burst of wake-ups into one pass, and make passes at most every
        // OUTBOX_PACE, so that under load each pass publishes many transitions.
        // (Rings during the pause coalesce into the one `woken` keeps.)
        tokio::time::sleep(OUTBOX_PACE).await;
    }
}

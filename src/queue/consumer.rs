//! The jobs consumer: turns deliveries into job rows and acknowledges only after the commit
//! (invariant 1, `docs/design.md`). It never holds a delivery for the length of an upload: the job row is the
//! work item from then on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{publish_confirmed, Topology, REASON_HEADER};
use crate::jobs::OutboxWaker;
use crate::jobs::{Inserted, JobMessage, JobStore};

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub topology: Topology,
    /// Unacknowledged deliveries in flight; each is held only for one insert.
    pub prefetch: u16,
    /// Canonicalised `VOD_INGEST_SOURCE_ROOTS`.
    pub source_roots: Vec<PathBuf>,
    pub consumer_tag: String,
}

/// Consumes until `shutdown` fires or the channel fails (the caller reconnects).
pub async fn consume_jobs(
    channel: Channel,
    config: ConsumerConfig,
    store: JobStore,
    outbox: OutboxWaker,
    wake_workers: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            &config.topology.jobs_queue(),
            &config.consumer_tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %config.topology.jobs_queue(), prefetch = config.prefetch, "consuming jobs");
    let max_batch = usize::from(config.prefetch).clamp(1, MAX_BATCH);
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => {
                cancel(&channel, &consumer).await;
                return Ok(());
            }
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => anyhow::bail!("RabbitMQ cancelled the jobs consumer (was the queue deleted?)"),
            },
        };
        // Whatever else has arrived already joins the batch; nothing waits for more.
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match consumer.next().now_or_never() {
                Some(Some(delivery)) => batch.push(delivery?),
                Some(None) => break,
                None => break,
            }
        }
        handle_batch(&channel, &config, &store, &outbox, &wake_workers, batch).await?;
    }
}

/// Stops deliveries and waits for the broker's answer, so that closing the channel next does
/// not race the cancel lapin would otherwise send when the consumer is dropped (that race ends
/// the whole connection with "invalid channel state: Closing"). Deliveries not yet acknowledged
/// return to the queue when the channel closes.
async fn cancel(channel: &Channel, consumer: &lapin::Consumer) {
    if let Err(e) = channel
        .basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default())
        .await
    {
        tracing::warn!(error = %e, "could not cancel the jobs consumer cleanly");
    }
}

/// Deliveries recorded by one statement at most.
const MAX_BATCH: usize = 256;

/// Records a batch of deliveries: messages that are not jobs are dead-lettered (confirmed),
/// the jobs are inserted in one statement, and only after that commit is the whole batch
/// acknowledged, with one `multiple` ack (invariant 1). Deliveries on a channel are numbered
/// in order and every earlier batch is settled, so the ack covers exactly this batch.
async fn handle_batch(
    channel: &Channel,
    config: &ConsumerConfig,
    store: &JobStore,
    outbox: &OutboxWaker,
    wake_workers: &Notify,
    batch: Vec<Delivery>,
) -> anyhow::Result<()> {
    metrics::counter!("vod_ingest_messages_received_total").increment(batch.len() as u64);
    let mut specs = Vec::with_capacity(batch.len());
    let mut valid = Vec::with_capacity(batch.len());
    let mut dead = Vec::new();
    for delivery in &batch {
        let spec = JobMessage::from_json(&delivery.data)
            .and_then(|message| message.validate(&config.source_roots));
        match spec {
            Ok(spec) => {
                specs.push(spec);
                valid.push(delivery);
            }
            Err(invalid) => {
                tracing::warn!(reason = %invalid, "dead-lettering a message that is not a valid job");
                metrics::counter!("vod_ingest_messages_dead_lettered_total").increment(1);
                dead_letter(channel, config, delivery, &invalid.0).await?;
                dead.push(delivery);
            }
        }
    }

    // The database may be briefly unavailable: keep the deliveries and retry rather than
    // requeueing them towards the delivery limit.
    let mut backoff = Duration::from_millis(200);
    let inserted = loop {
        match store.insert_batch(&specs, crate::jobs::Origin::Queue).await {
            Ok(inserted) => break inserted,
            Err(e) if backoff < Duration::from_secs(30) => {
                tracing::warn!(jobs = specs.len(), error = %e, "could not record jobs; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(e) => {
                tracing::error!(jobs = specs.len(), error = %e, "could not record jobs; requeueing the messages");
                for delivery in valid {
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await?;
                }
                // The dead-lettered ones are in the dead-letter queue already.
                for delivery in dead {
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                return Ok(());
            }
        }
    };
    let last = batch.last().expect("a batch has a delivery");
    last.ack(BasicAckOptions { multiple: true }).await?;
    let mut created = 0;
    for (spec, inserted) in specs.iter().zip(inserted) {
        match inserted {
            Inserted::Created(_) => {
                tracing::info!(job_id = %spec.job_id, kind = %spec.kind, "job queued");
                outbox.wake();
                created += 1;
            }
            Inserted::Duplicate => {
                tracing::info!(job_id = %spec.job_id, "duplicate job message ignored: this job_id exists");
            }
        }
    }
    if created > 0 {
        wake_workers.notify_one();
    }
    Ok(())
}

/// Publishes the original message to the dead-letter exchange with the reason in a header,
/// confirmed, before the original is acknowledged: nothing is lost in between.
async fn dead_letter(
    channel: &Channel,
    config: &ConsumerConfig,
    delivery: &Delivery,
    reason: &str,
) -> anyhow::Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason.to_owned())),
    );
    headers.insert(
        "x-original-routing-key".into(),
        AMQPValue::LongString(LongString::from(delivery.routing_key.as_str().to_owned())),
    );
    let mut properties = BasicProperties::default().with_headers(headers);
    if let Some(content_type) = delivery.properties.content_type() {
        properties = properties.with_content_type(content_type.clone());
    }
    if let Some(message_id) = delivery.properties.message_id() {
        properties = properties.with_message_id(message_id.clone());
    }
    publish_confirmed(
        channel,
        &config.topology.dead_letter_exchange(),
        "",
        &delivery.data,
        properties,
    )
    .await?;
    Ok(())
}

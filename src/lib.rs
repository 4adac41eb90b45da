//! vod-ingest: gets media into Alibaba Cloud ApsaraVideo VOD, reliably and fast.
//!
//! One module per boundary:
//! - [`queue`]: RabbitMQ intake (jobs in, transition events out, dead letters);
//! - [`jobs`]: the job model, its state machine and its PostgreSQL store (every statement on
//!   the job, event and delivery tables, and the one entry point that applies callbacks);
//! - [`worker`]: claims jobs under a lease and drives them through VOD and OSS;
//! - [`vod`]: the VOD and STS RPC API (CreateUpload*, RefreshUploadVideo, AssumeRole, ...);
//! - [`ratelimit`]: VOD's per-account API rate, shared by every process of a deployment;
//! - [`oss`]: uploads to OSS with the temporary credentials VOD hands out;
//! - [`webhook`]: VOD's callbacks over HTTP: verified, parsed and handed to the store;
//! - [`reconciler`]: asks VOD about uploads whose callbacks never came, and confirms client uploads;
//! - [`admin`]: the operators' endpoints (`/readyz`, `/metrics`, the job API) on the admin listener;
//! - [`console`]: the operators' console in the browser, on the admin listener;
//! - [`api`]: the client authorization API (upload credentials and STS tokens for apps);
//! - [`app_webhooks`]: signed webhooks to apps about their uploads, from an outbox;
//! - [`emulator`]: a local VOD + STS + OSS that verifies what the real services verify;
//! - [`sign`] and [`crc64`]: the signatures and checksums both sides share.

pub mod admin;
pub mod api;
pub mod app;
pub mod app_webhooks;
pub mod cli;
pub mod commands;
pub mod config_reference;
pub mod console;
pub mod crc64;
pub mod demo;
pub mod display;
pub mod emulator;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http_server;
pub mod jobs;
pub mod keys;
pub mod oss;
pub mod queue;
pub mod ratelimit;
pub mod reconciler;
pub mod secret;
pub mod sign;
pub mod source;
pub mod telemetry;
pub mod transport;
pub mod units;
pub mod vod;
pub mod webhook;
pub mod worker;

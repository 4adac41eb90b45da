//! The VOD (2017-03-21) and STS (2015-04-01) RPC APIs.
//!
//! Calls are signed with RPC signature v1 and sent as the official SDKs send them (POST, all
//! parameters in the query string). Idempotent calls are retried on transient failures; the
//! non-idempotent CreateUpload* only when the request provably never ran, so that a retry cannot
//! create a second media asset behind the worker's back.

mod client;
mod credentials;
mod error;
mod rpc;
mod sts;
mod types;

pub use client::{
    truncate_utf8, CreateUploadAttachedMediaRequest, CreateUploadImageRequest,
    CreateUploadVideoRequest, ImageInfo, UploadTicket, VideoInfo, VodClient, VodConfig,
    MAX_DESCRIPTION_BYTES, MAX_TITLE_BYTES,
};
pub use credentials::{needs_renewal, CredentialProvider, Credentials};
pub use error::{TransportKind, VodError, VodErrorKind};
pub use sts::{AssumeRoleRequest, StsClient, StsCredentials};
pub use types::{DecodeError, UploadAddress, UploadAuth};

//! The VOD (2017-03-21) and STS (2015-04-01) RPC APIs.
//!
//! Calls are signed with RPC signature v1 and sent as the official SDKs send them (POST, all
//! parameters in the query string). Idempotent calls are retried on transient failures; the
//! non-idempotent CreateUpload* only when the request provably never ran, so that a retry cannot
//! create a second media asset behind the worker's back.

pub(crate) mod client;
mod credentials;
pub(crate) mod error;
pub(crate) mod rpc;
mod signing;
pub(crate) mod sts;
mod types;

pub use client::{
    truncate_utf8, AttachedMediaInfo, Batch, CreateUpload, CreateUploadAttachedMediaRequest,
    CreateUploadImageRequest, CreateUploadVideoRequest, ImageInfo, UploadTicket, VideoInfo,
    VodClient, VodConfig, MAX_BATCH_IDS, MAX_DESCRIPTION_BYTES, MAX_TITLE_BYTES,
};
pub use credentials::{needs_renewal, CredentialProvider};
pub use error::{TransportKind, VodError, VodErrorKind};
pub use signing::{Credentials, SignatureVersion};
pub use sts::{AssumeRoleRequest, StsClient, StsCredentials};
pub use types::{DecodeError, UploadAddress, UploadAuth};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}

    /// The worker holds these in shared state and runs calls in `tokio::spawn`ed tasks.
    #[test]
    fn clients_and_their_futures_can_cross_tasks() {
        shareable::<VodClient>();
        shareable::<StsClient>();
        shareable::<CredentialProvider>();
        shareable::<crate::oss::OssClient>();

        let http = reqwest::Client::new();
        let sts = StsClient::new(
            url::Url::parse("https://sts.aliyuncs.com").unwrap(),
            "cn-shanghai".into(),
            http.clone(),
        );
        let provider = CredentialProvider::assume_role(
            "id",
            Secret::new("s"),
            "acs:ram::1:role/r".into(),
            "vod-ingest".into(),
            sts,
        );
        let client = VodClient::new(
            VodConfig::for_region("cn-shanghai").unwrap(),
            provider,
            http,
        );
        let req = CreateUploadVideoRequest::default();
        send(&client.create_upload_video(&req));
        send(&client.create_upload_image(&CreateUploadImageRequest::default()));
        send(&client.create_upload_attached_media(&CreateUploadAttachedMediaRequest::default()));
        send(&client.refresh_upload_video("v"));
        send(&client.get_video_info("v"));
        send(&client.get_image_info("i"));

        let oss = crate::oss::OssClient::new(reqwest::Client::new());
        let target = crate::oss::ObjectTarget {
            endpoint: "https://oss-cn-shanghai.aliyuncs.com".into(),
            bucket: "b".into(),
            key: "k".into(),
        };
        let creds = crate::oss::OssCredentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
            security_token: None,
        };
        let body: crate::source::ByteStream = Box::pin(futures_util::stream::empty());
        send(&oss.put_object_stream(&target, &creds, body, 0, None, None));
        send(&oss.head_object(&target, &creds));
    }
}

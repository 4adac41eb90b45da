//! The VOD (2017-03-21) and STS (2015-04-01) RPC APIs.

mod types;

pub use types::{DecodeError, UploadAddress, UploadAuth};

//! OSS uploads with the temporary credentials VOD hands out.

//! How media assets appear in VOD's answers, for the single reads (`rpc`) and the batch reads
//! (`batch`) alike.

use serde_json::{json, Map, Value};

use super::params::fmt_time;
use super::state::{Media, Shared};

pub(crate) fn file_url(shared: &Shared, bucket: &str, key: &str) -> String {
    format!("{}/{bucket}/{key}", shared.base_url)
}

/// A video as GetVideoInfo's `Video` and GetVideoInfos' `VideoList` elements show it.
pub(crate) fn video_json(shared: &Shared, m: &Media) -> Map<String, Value> {
    let mut video = Map::new();
    let mut put = |k: &str, v: Value| {
        video.insert(k.to_owned(), v);
    };
    put("VideoId", json!(m.id));
    put("Title", json!(m.title));
    if let Some(d) = &m.description {
        put("Description", json!(d));
    }
    if let Some(t) = &m.tags {
        put("Tags", json!(t));
    }
    if let Some(c) = m.cate_id {
        put("CateId", json!(c));
    }
    if let Some(c) = &m.cover_url {
        put("CoverURL", json!(c));
    }
    if let Some(t) = &m.template_group_id {
        put("TemplateGroupId", json!(t));
    }
    if let Some(size) = m.size {
        put("Size", json!(size));
    }
    put("Status", json!(m.status));
    put("CreationTime", json!(fmt_time(m.created)));
    put("ModificationTime", json!(fmt_time(m.modified)));
    put("RegionId", json!(shared.config.region));
    put("StorageLocation", json!(shared.storage_location));
    put("StorageClass", json!("Standard"));
    put("AppId", json!(m.app_id));
    put("DownloadSwitch", json!("on"));
    if let Some(u) = &m.user_data {
        put("UserData", json!(u));
    }
    video
}

/// An image as GetImageInfo's `ImageInfo` and GetImageInfos' list elements show it.
pub(crate) fn image_json(shared: &Shared, m: &Media) -> Map<String, Value> {
    let url = file_url(shared, &m.bucket, &m.key);
    let mut mezzanine = Map::new();
    mezzanine.insert("FileURL".to_owned(), json!(url));
    if let Some(size) = m.size {
        mezzanine.insert("FileSize".to_owned(), json!(size));
    }
    if let Some(name) = &m.original_file_name {
        mezzanine.insert("OriginalFileName".to_owned(), json!(name));
    }
    let mut info = Map::new();
    info.insert("ImageId".to_owned(), json!(m.id));
    info.insert("Title".to_owned(), json!(m.title));
    if let Some(d) = &m.description {
        info.insert("Description".to_owned(), json!(d));
    }
    if let Some(t) = &m.tags {
        info.insert("Tags".to_owned(), json!(t));
    }
    if let Some(c) = m.cate_id {
        info.insert("CateId".to_owned(), json!(c));
    }
    info.insert(
        "ImageType".to_owned(),
        json!(m.image_type.as_deref().unwrap_or("default")),
    );
    info.insert("Status".to_owned(), json!(m.status));
    info.insert("URL".to_owned(), json!(url));
    info.insert("StorageLocation".to_owned(), json!(shared.storage_location));
    info.insert("CreationTime".to_owned(), json!(fmt_time(m.created)));
    info.insert("AppId".to_owned(), json!(m.app_id));
    info.insert("Mezzanine".to_owned(), Value::Object(mezzanine));
    info
}

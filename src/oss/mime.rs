//! Content-Type from a file extension, for the media types VOD accepts (`vod_api.md` §7).
//! A short table beats a MIME-database dependency: OSS only stores the value.

/// What OSS and browsers assume for unknown content.
pub(crate) const DEFAULT: &str = "application/octet-stream";

const TABLE: &[(&str, &str)] = &[
    // video
    ("mp4", "video/mp4"),
    ("m4v", "video/x-m4v"),
    ("mov", "video/quicktime"),
    ("qt", "video/quicktime"),
    ("flv", "video/x-flv"),
    ("f4v", "video/x-f4v"),
    ("mkv", "video/x-matroska"),
    ("webm", "video/webm"),
    ("avi", "video/x-msvideo"),
    ("wmv", "video/x-ms-wmv"),
    ("asf", "video/x-ms-asf"),
    ("mpg", "video/mpeg"),
    ("mpeg", "video/mpeg"),
    ("ts", "video/mp2t"),
    ("m2ts", "video/mp2t"),
    ("mts", "video/mp2t"),
    ("3gp", "video/3gpp"),
    ("rm", "application/vnd.rn-realmedia"),
    ("rmvb", "application/vnd.rn-realmedia-vbr"),
    ("vob", "video/dvd"),
    ("ogv", "video/ogg"),
    ("m3u8", "application/x-mpegURL"),
    // audio
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("ogg", "audio/ogg"),
    ("wma", "audio/x-ms-wma"),
    ("amr", "audio/amr"),
    ("ape", "audio/ape"),
    // images
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("apng", "image/apng"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("bmp", "image/bmp"),
    // subtitles and other attached media
    ("srt", "application/x-subrip"),
    ("vtt", "text/vtt"),
    ("ass", "text/x-ssa"),
    ("ttml", "application/ttml+xml"),
    ("zip", "application/zip"),
    ("apk", "application/vnd.android.package-archive"),
];

/// The Content-Type for a key or file name, by its extension (case-insensitive).
pub(crate) fn from_name(name: &str) -> Option<String> {
    let file = name.rsplit(['/', '\\']).next()?;
    let (_, ext) = file.rsplit_once('.')?;
    TABLE
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, t)| (*t).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(from_name("sv/abc/def.MP4").as_deref(), Some("video/mp4"));
        assert_eq!(
            from_name("image/default/x.jpeg").as_deref(),
            Some("image/jpeg")
        );
        assert_eq!(from_name("dir.mp4/noext"), None);
        assert_eq!(from_name("x.unknown"), None);
    }
}

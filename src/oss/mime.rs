//! Content-Type from a file extension, for the media types VOD accepts (`docs/reference/vod-api.md` §7).
//!
//! Written by hand, not `mime_guess` (checked with mime_guess 2.0.5): that crate agrees on most
//! of these but answers `video/vnd.dlna.mpeg-tts` for `.ts`, `.m2ts` and `.mts` and
//! `audio/x-mpegurl` for `.m3u8`, where HLS players and CDNs expect `video/mp2t` and an MPEG-URL
//! playlist type (an M3U8 job uploads exactly these), and knows nothing of `.amr`, `.ape`,
//! `.ass` or `.ttml`. OSS stores what we send and serves it back to players.

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

    /// What an M3U8 job uploads: the types HLS players expect (the reason for the table).
    #[test]
    fn hls_playlists_and_segments() {
        assert_eq!(
            from_name("hls/index.m3u8").as_deref(),
            Some("application/x-mpegURL")
        );
        for segment in ["hls/seg-00001.ts", "a.M2TS", "b.mts"] {
            assert_eq!(
                from_name(segment).as_deref(),
                Some("video/mp2t"),
                "{segment}"
            );
        }
        assert_eq!(from_name("subs/en.ass").as_deref(), Some("text/x-ssa"));
    }
}

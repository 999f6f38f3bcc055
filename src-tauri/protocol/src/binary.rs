//! Binary frames: a big-endian u32 event type, then a payload (protocol §4).
//!
//! Decoding borrows from the frame so a preview image is never copied here; the caller decides
//! whether to keep it.

use crate::error::DecodeError;
use comfy_model::{NodeId, PromptId};
use serde::Deserialize;

const PREVIEW_IMAGE: u32 = 1;
const TEXT: u32 = 3;
const PREVIEW_IMAGE_WITH_METADATA: u32 = 4;

/// What the server told us about itself that changes binary layouts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFeatures {
    /// The server advertised `supports_progress_text_metadata`: type-3 frames then carry a prompt
    /// id before the node id.
    pub progress_text_metadata: bool,
}

impl ServerFeatures {
    /// Reads the flags that matter for decoding out of a `feature_flags` reply.
    pub fn from_flags(flags: &serde_json::Map<String, serde_json::Value>) -> Self {
        Self {
            progress_text_metadata: flags
                .get("supports_progress_text_metadata")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    /// A format id or MIME type we do not know; the frontend shows these as JPEG.
    Other,
}

impl ImageFormat {
    fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Jpeg,
            2 => Self::Png,
            _ => Self::Other,
        }
    }
    fn from_mime(mime: &str) -> Self {
        match mime {
            "image/jpeg" | "image/jpg" => Self::Jpeg,
            "image/png" => Self::Png,
            "image/webp" => Self::Webp,
            _ => Self::Other,
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg | Self::Other => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }
}

/// The JSON header of a type-4 preview.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PreviewMetadata {
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub prompt_id: Option<PromptId>,
    #[serde(default)]
    pub display_node_id: Option<NodeId>,
    #[serde(default)]
    pub parent_node_id: Option<NodeId>,
    #[serde(default)]
    pub real_node_id: Option<NodeId>,
    #[serde(default)]
    pub image_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BinaryFrame<'a> {
    /// Type 1 (no ids: attribute it to the last `progress`) or type 4 (`metadata` is `Some`).
    Preview {
        format: ImageFormat,
        metadata: Option<PreviewMetadata>,
        image: &'a [u8],
    },
    /// Type 3: text a node streams (status lines, tokens).
    Text {
        prompt_id: Option<PromptId>,
        node: NodeId,
        text: &'a str,
    },
    /// Any other event type, e.g. from a custom node. Kept, never an error.
    Unknown { event_type: u32, payload: &'a [u8] },
}

fn read_u32(buf: &[u8], at: usize, what: &'static str) -> Result<u32, DecodeError> {
    match buf.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(DecodeError::ShortFrame {
            what,
            needed: at + 4,
            got: buf.len(),
        }),
    }
}

/// Splits `len` bytes off the front of `rest`.
fn take<'a>(
    rest: &'a [u8],
    len: u32,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    let len = len as usize;
    if len > rest.len() {
        return Err(DecodeError::LengthPastEnd {
            what,
            declared: len,
            available: rest.len(),
        });
    }
    Ok(rest.split_at(len))
}

fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|source| DecodeError::InvalidUtf8 { what, source })
}

/// The largest preview metadata read: ComfyUI's is a few ids and a MIME type. The image after it
/// is what a preview is for; a frame that is mostly metadata is refused before any of it is
/// parsed.
pub const MAX_PREVIEW_METADATA: usize = 64 << 10;

/// Decodes one binary frame.
pub fn decode_binary<'a>(
    frame: &'a [u8],
    features: &ServerFeatures,
) -> Result<BinaryFrame<'a>, DecodeError> {
    let event_type = read_u32(frame, 0, "event type")?;
    let body = &frame[4..];
    match event_type {
        PREVIEW_IMAGE => {
            let code = read_u32(body, 0, "preview image type")?;
            Ok(BinaryFrame::Preview {
                format: ImageFormat::from_code(code),
                metadata: None,
                image: &body[4..],
            })
        }
        PREVIEW_IMAGE_WITH_METADATA => {
            let len = read_u32(body, 0, "preview metadata length")?;
            let (json, image) = take(&body[4..], len, "preview metadata")?;
            if json.len() > MAX_PREVIEW_METADATA {
                return Err(DecodeError::PreviewMetadataTooLarge(json.len()));
            }
            if json.trim_ascii_start().first() != Some(&b'{') {
                // Serde would accept a JSON array as a struct; the server only ever sends an object.
                // Its syntax is checked without building it.
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(json) {
                        Err(e) => DecodeError::InvalidJson(e),
                        Ok(_) => DecodeError::BadPreviewMetadata(serde::de::Error::custom(
                            "preview metadata is not a JSON object",
                        )),
                    },
                );
            }
            let metadata: PreviewMetadata =
                serde_json::from_slice(json).map_err(|e| match e.classify() {
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                        DecodeError::InvalidJson(e)
                    }
                    _ => DecodeError::BadPreviewMetadata(e),
                })?;
            let format = metadata
                .image_type
                .as_deref()
                .map(ImageFormat::from_mime)
                .unwrap_or(ImageFormat::Jpeg);
            Ok(BinaryFrame::Preview {
                format,
                metadata: Some(metadata),
                image,
            })
        }
        TEXT => {
            let mut rest = body;
            let mut prompt_id = None;
            if features.progress_text_metadata {
                let len = read_u32(rest, 0, "text prompt id length")?;
                let (id, after) = take(&rest[4..], len, "text prompt id")?;
                prompt_id = Some(PromptId::from(utf8(id, "text prompt id")?));
                rest = after;
            }
            let len = read_u32(rest, 0, "text node id length")?;
            let (node, text) = take(&rest[4..], len, "text node id")?;
            Ok(BinaryFrame::Text {
                prompt_id,
                node: NodeId::from(utf8(node, "text node id")?),
                text: utf8(text, "node text")?,
            })
        }
        other => Ok(BinaryFrame::Unknown {
            event_type: other,
            payload: body,
        }),
    }
}

/// Width and height read from a JPEG, PNG, WebP or GIF header without decoding the image (the
/// formats a webview shows); `None` when the header is not one we can read.
pub fn image_size(image: &[u8]) -> Option<(u32, u32)> {
    if image.starts_with(b"RIFF") && image.get(8..12) == Some(b"WEBP") {
        return webp_size(image);
    }
    if image.starts_with(b"GIF87a") || image.starts_with(b"GIF89a") {
        let d = image.get(6..10)?;
        return Some((
            u32::from(u16::from_le_bytes([d[0], d[1]])),
            u32::from(u16::from_le_bytes([d[2], d[3]])),
        ));
    }
    if image.starts_with(b"\x89PNG\r\n\x1a\n") {
        let w = image.get(16..20)?;
        let h = image.get(20..24)?;
        return Some((
            u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
        ));
    }
    if !image.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    // Walk the JPEG segments to the first start-of-frame marker.
    let mut i = 2;
    while i + 4 <= image.len() {
        if image[i] != 0xff {
            return None;
        }
        let marker = image[i + 1];
        if marker == 0xff {
            i += 1;
            continue;
        }
        let len = u16::from_be_bytes([image[i + 2], image[i + 3]]) as usize;
        let is_sof = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if is_sof {
            let seg = image.get(i + 5..i + 9)?;
            let h = u16::from_be_bytes([seg[0], seg[1]]) as u32;
            let w = u16::from_be_bytes([seg[2], seg[3]]) as u32;
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// A WebP's canvas size: from its extended header (`VP8X`), or the first frame of a simple
/// lossy (`VP8 `) or lossless (`VP8L`) file.
fn webp_size(image: &[u8]) -> Option<(u32, u32)> {
    let le24 = |b: &[u8]| u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    match image.get(12..16)? {
        b"VP8X" => {
            let d = image.get(24..30)?;
            Some((le24(&d[0..3]) + 1, le24(&d[3..6]) + 1))
        }
        b"VP8 " => {
            // The frame tag (3 bytes), the start code, then two 14-bit sizes.
            if image.get(23..26)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            let d = image.get(26..30)?;
            Some((
                u32::from(u16::from_le_bytes([d[0], d[1]]) & 0x3fff),
                u32::from(u16::from_le_bytes([d[2], d[3]]) & 0x3fff),
            ))
        }
        b"VP8L" => {
            if *image.get(20)? != 0x2f {
                return None;
            }
            let d = image.get(21..25)?;
            let bits = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webp_and_gif_sizes_are_read_from_their_headers() {
        // Headers built by hand from the formats' specifications.
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&41u16.to_le_bytes());
        gif.extend_from_slice(&9u16.to_le_bytes());
        assert_eq!(image_size(&gif), Some((41, 9)));
        let mut lossless = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        lossless.extend_from_slice(&((300u32 - 1) | (17 - 1) << 14).to_le_bytes());
        assert_eq!(image_size(&lossless), Some((300, 17)));
        let mut lossy = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a".to_vec();
        lossy.extend_from_slice(&640u16.to_le_bytes());
        lossy.extend_from_slice(&(480u16 | 0x4000).to_le_bytes());
        assert_eq!(image_size(&lossy), Some((640, 480)));
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        extended.extend_from_slice(&[0xff, 0x3f, 0x00, 0xff, 0x3f, 0x00]);
        assert_eq!(image_size(&extended), Some((16384, 16384)));
        assert_eq!(image_size(b"RIFF\0\0\0\0WEBPVP8X"), None);
    }

    fn frame(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const NONE: ServerFeatures = ServerFeatures {
        progress_text_metadata: false,
    };

    #[test]
    fn type_1_preview_carries_format_and_image() {
        let f = frame(&[&1u32.to_be_bytes(), &2u32.to_be_bytes(), b"\x89PNG"]);
        assert_eq!(
            decode_binary(&f, &NONE).unwrap(),
            BinaryFrame::Preview {
                format: ImageFormat::Png,
                metadata: None,
                image: b"\x89PNG"
            }
        );
    }

    #[test]
    fn type_4_metadata_over_its_limit_is_refused_unread() {
        // An array of zeros: parsed into a tree it would cost some 80 bytes a byte.
        let mut meta = b"[".to_vec();
        while meta.len() <= MAX_PREVIEW_METADATA {
            meta.extend_from_slice(b"0,");
        }
        meta.extend_from_slice(b"0]");
        let f = frame(&[
            &4u32.to_be_bytes(),
            &(meta.len() as u32).to_be_bytes(),
            &meta,
            b"\xff\xd8\xff",
        ]);
        match decode_binary(&f, &NONE) {
            Err(DecodeError::PreviewMetadataTooLarge(n)) => assert_eq!(n, meta.len()),
            other => panic!("unexpected {other:?}"),
        }
        // Under the limit, metadata that is no object is refused for its shape.
        let f = frame(&[&4u32.to_be_bytes(), &3u32.to_be_bytes(), b"[0]", b"\xff"]);
        assert!(matches!(
            decode_binary(&f, &NONE),
            Err(DecodeError::BadPreviewMetadata(_))
        ));
    }

    #[test]
    fn type_4_preview_carries_ids() {
        let meta = br#"{"node_id":"3","prompt_id":"p","display_node_id":"3","parent_node_id":null,"real_node_id":"3","image_type":"image/jpeg"}"#;
        let f = frame(&[
            &4u32.to_be_bytes(),
            &(meta.len() as u32).to_be_bytes(),
            meta,
            b"\xff\xd8\xff",
        ]);
        match decode_binary(&f, &NONE).unwrap() {
            BinaryFrame::Preview {
                format,
                metadata: Some(m),
                image,
            } => {
                assert_eq!(format, ImageFormat::Jpeg);
                assert_eq!(m.prompt_id, Some("p".into()));
                assert_eq!(m.node_id, Some("3".into()));
                assert_eq!(image, b"\xff\xd8\xff");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn type_3_text_reads_node_and_text() {
        let f = frame(&[
            &3u32.to_be_bytes(),
            &2u32.to_be_bytes(),
            b"11",
            b"width: 64",
        ]);
        assert_eq!(
            decode_binary(&f, &NONE).unwrap(),
            BinaryFrame::Text {
                prompt_id: None,
                node: "11".into(),
                text: "width: 64"
            }
        );
    }

    #[test]
    fn type_3_text_with_prompt_id_when_the_server_advertises_it() {
        let f = frame(&[
            &3u32.to_be_bytes(),
            &1u32.to_be_bytes(),
            b"p",
            &1u32.to_be_bytes(),
            b"2",
            b"hi",
        ]);
        let features = ServerFeatures {
            progress_text_metadata: true,
        };
        assert_eq!(
            decode_binary(&f, &features).unwrap(),
            BinaryFrame::Text {
                prompt_id: Some("p".into()),
                node: "2".into(),
                text: "hi"
            }
        );
    }

    #[test]
    fn unknown_event_types_are_kept() {
        let f = frame(&[&99u32.to_be_bytes(), b"xyz"]);
        assert_eq!(
            decode_binary(&f, &NONE).unwrap(),
            BinaryFrame::Unknown {
                event_type: 99,
                payload: b"xyz"
            }
        );
    }

    #[test]
    fn short_headers_are_errors_not_panics() {
        for len in 0..4 {
            assert!(matches!(
                decode_binary(&[0, 0, 0, 1][..len], &NONE),
                Err(DecodeError::ShortFrame { .. })
            ));
        }
        for ty in [1u32, 3, 4] {
            let f = frame(&[&ty.to_be_bytes(), &[0, 0]]);
            assert!(matches!(
                decode_binary(&f, &NONE),
                Err(DecodeError::ShortFrame { .. })
            ));
        }
    }

    #[test]
    fn lengths_past_the_end_are_errors() {
        let f = frame(&[&4u32.to_be_bytes(), &1000u32.to_be_bytes(), b"{}"]);
        assert!(matches!(
            decode_binary(&f, &NONE),
            Err(DecodeError::LengthPastEnd { declared: 1000, .. })
        ));
        let f = frame(&[&3u32.to_be_bytes(), &u32::MAX.to_be_bytes(), b"1"]);
        assert!(matches!(
            decode_binary(&f, &NONE),
            Err(DecodeError::LengthPastEnd { .. })
        ));
    }

    #[test]
    fn bad_utf8_and_bad_metadata_json_are_errors() {
        let f = frame(&[&3u32.to_be_bytes(), &1u32.to_be_bytes(), b"1", b"\xff\xfe"]);
        assert!(matches!(
            decode_binary(&f, &NONE),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
        let f = frame(&[&4u32.to_be_bytes(), &3u32.to_be_bytes(), b"{x}", b"img"]);
        assert!(matches!(
            decode_binary(&f, &NONE),
            Err(DecodeError::InvalidJson(_))
        ));
        let f = frame(&[&4u32.to_be_bytes(), &2u32.to_be_bytes(), b"[]", b"img"]);
        assert!(matches!(
            decode_binary(&f, &NONE),
            Err(DecodeError::BadPreviewMetadata(_))
        ));
    }
}

//! Encoders for what goes on the WebSocket: `{"type", "data"}` text frames and the binary
//! frames of ComfyUI's `protocol.py` (1 preview, 3 node text, 4 preview with metadata).
//!
//! Pure byte layout; routing decisions live in `state`.

use bytes::Bytes;

use crate::images::ImageFormat;
use crate::json::J;
use crate::obj;

/// `{"type": event, "data": data}` written like Python's `json.dumps`.
pub fn event_text(event: &str, data: J) -> String {
    obj! { "type" => event, "data" => data }.to_py_string()
}

/// Binary type 1: `u32 1`, `u32 image type`, image bytes.
pub fn preview_legacy(format: ImageFormat, image: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + image.len());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&format.type_code().to_be_bytes());
    out.extend_from_slice(image);
    Bytes::from(out)
}

/// Binary type 4: `u32 4`, `u32 metadata length`, metadata JSON, image bytes.
pub fn preview_with_metadata(
    format: ImageFormat,
    image: &[u8],
    node_id: &str,
    prompt_id: &str,
) -> Bytes {
    let meta = obj! {
        "node_id" => node_id,
        "prompt_id" => prompt_id,
        "display_node_id" => node_id,
        "parent_node_id" => J::Null,
        "real_node_id" => node_id,
        "image_type" => format.mime(),
    }
    .to_py_string();
    let mut out = Vec::with_capacity(8 + meta.len() + image.len());
    out.extend_from_slice(&4u32.to_be_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(image);
    Bytes::from(out)
}

/// Binary type 3: `u32 3`, `u32 node id length`, node id, UTF-8 text.
pub fn node_text(node_id: &str, text: &str) -> Bytes {
    let mut out = Vec::with_capacity(8 + node_id.len() + text.len());
    out.extend_from_slice(&3u32.to_be_bytes());
    out.extend_from_slice(&(node_id.len() as u32).to_be_bytes());
    out.extend_from_slice(node_id.as_bytes());
    out.extend_from_slice(text.as_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_preview_header_matches_the_recorded_length() {
        let frame = preview_with_metadata(
            ImageFormat::Jpeg,
            &[0xff, 0xd8],
            "1",
            "f4549ce0-5a12-426d-a7c6-442d52e3ffb5",
        );
        assert_eq!(&frame[..8], &[0, 0, 0, 4, 0, 0, 0, 0xa6]);
        assert_eq!(&frame[frame.len() - 2..], &[0xff, 0xd8]);
    }

    #[test]
    fn node_text_layout_matches_the_recorded_frame() {
        let frame = node_text("2", "hello from MonitorTestMessages [1/3]");
        assert_eq!(&frame[..9], b"\x00\x00\x00\x03\x00\x00\x00\x012");
        assert_eq!(frame.len(), 45);
    }
}

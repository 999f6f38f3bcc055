//! The preview frames the per-frame measure pushes: a 512 px JPEG in a binary type-4 frame laid
//! out as ComfyUI 0.26 sends it (`u32 4`, `u32 metadata length`, metadata JSON as Python's
//! `json.dumps` writes it, image bytes).
//!
//! The picture is smooth colour with fine grain, like a latent preview, so the JPEG has a
//! realistic size: a flat test card compresses to a few KB and would flatter every reader.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};

/// The side of the previews ComfyUI sends (its `preview_size` default is 512).
pub const PREVIEW_PX: u32 = 512;

/// A JPEG of `size`×`size` at quality 95 (the quality ComfyUI encodes previews with).
pub fn preview_jpeg(size: u32, seed: u32) -> anyhow::Result<Vec<u8>> {
    let mut noise = seed.wrapping_mul(2_654_435_761).max(1);
    let img = RgbImage::from_fn(size, size, |x, y| {
        // xorshift: cheap, deterministic grain.
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let grain = (noise % 9) as f32 - 4.0;
        let (fx, fy) = (x as f32 / size as f32, y as f32 / size as f32);
        let wave =
            |a: f32, b: f32, c: f32| ((a * fx + b * fy + c).sin() * 0.5 + 0.5) * 200.0 + 28.0;
        let px = |v: f32| (v + grain).clamp(0.0, 255.0) as u8;
        image::Rgb([
            px(wave(6.0, 2.0, seed as f32)),
            px(wave(-3.0, 7.0, 1.0)),
            px(wave(4.0, -5.0, 2.0)),
        ])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95).write_image(
        img.as_raw(),
        size,
        size,
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// A binary type-4 preview frame of `prompt_id`'s node `node`.
pub fn preview_frame(jpeg: &[u8], node: &str, prompt_id: &str) -> Vec<u8> {
    let meta = serde_json::json!({
        "node_id": node,
        "prompt_id": prompt_id,
        "display_node_id": node,
        "parent_node_id": null,
        "real_node_id": node,
        "image_type": "image/jpeg",
    });
    let meta = python_json(&meta);
    let mut out = Vec::with_capacity(8 + meta.len() + jpeg.len());
    out.extend_from_slice(&4u32.to_be_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(jpeg);
    out
}

/// A flat JSON object written with Python's default separators (`", "` and `": "`), key order
/// kept; string values here never need escaping beyond what serde does.
fn python_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", serde_json::Value::from(k.as_str()), v))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_protocol::{decode_binary, image_size, BinaryFrame, ServerFeatures};

    #[test]
    fn a_preview_frame_decodes_as_a_type_4_preview_of_the_prompt() {
        let jpeg = preview_jpeg(64, 1).unwrap();
        let frame = preview_frame(&jpeg, "3", "f4549ce0-5a12-426d-a7c6-442d52e3ffb5");
        match decode_binary(&frame, &ServerFeatures::default()).unwrap() {
            BinaryFrame::Preview {
                metadata: Some(meta),
                image,
                ..
            } => {
                assert_eq!(
                    meta.prompt_id.as_ref().map(|p| p.as_str()),
                    Some("f4549ce0-5a12-426d-a7c6-442d52e3ffb5")
                );
                assert_eq!(meta.display_node_id.as_ref().map(|n| n.as_str()), Some("3"));
                assert_eq!(image, jpeg.as_slice());
                assert_eq!(image_size(image), Some((64, 64)));
            }
            other => panic!("not a type-4 preview: {other:?}"),
        }
    }

    #[test]
    fn metadata_uses_python_separators_like_comfyui() {
        let frame = preview_frame(&[0xff, 0xd8], "1", "p");
        let len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        let meta = std::str::from_utf8(&frame[8..8 + len]).unwrap();
        assert!(
            meta.starts_with(r#"{"node_id": "1", "prompt_id": "p", "display_node_id": "1""#),
            "{meta}"
        );
        assert!(meta.contains(r#""parent_node_id": null"#));
    }

    #[test]
    fn the_picture_is_a_jpeg_of_the_asked_size() {
        let jpeg = preview_jpeg(PREVIEW_PX, 7).unwrap();
        assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff]);
        assert_eq!(image_size(&jpeg), Some((PREVIEW_PX, PREVIEW_PX)));
    }
}

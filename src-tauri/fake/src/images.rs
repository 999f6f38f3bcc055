//! Real, decodable JPEG and PNG bytes for preview frames and for the files `/view` serves.
//!
//! Pictures are drawn like the test nodes draw theirs (a colour that depends on seed and step,
//! with a white progress bar along the bottom) and encoded the way ComfyUI encodes previews
//! (JPEG quality 95, PNG with fast compression). Encoded frames are cached by a coarse key so a
//! long job does not spend its time encoding. This module must not know about jobs or sockets.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};

/// Largest side the fake draws; bigger requests are served at this size.
const MAX_SIDE: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    /// The `image_type` of a binary type-1 frame.
    pub fn type_code(self) -> u32 {
        match self {
            ImageFormat::Jpeg => 1,
            ImageFormat::Png => 2,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }
}

fn draw(size_w: u32, size_h: u32, rgb: [u8; 3], bar_frac: f64) -> RgbImage {
    let w = size_w.clamp(1, MAX_SIDE);
    let h = size_h.clamp(1, MAX_SIDE);
    let bar_top = h.saturating_sub((h / 8).max(2));
    let bar_w = (f64::from(w) * bar_frac) as u32;
    RgbImage::from_fn(w, h, |x, y| {
        if y >= bar_top && x <= bar_w {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb(rgb)
        }
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let result = match format {
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, 95).write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        ),
        ImageFormat::Png => PngEncoder::new_with_quality(
            Cursor::new(&mut out),
            CompressionType::Fast,
            FilterType::NoFilter,
        )
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        ),
    };
    if let Err(e) = result {
        tracing::warn!("encoding a fake image failed: {e}");
    }
    out
}

/// A preview frame for `step` of `steps` at `size` px, as the sampler test node would send.
pub fn preview(format: ImageFormat, size: u32, step: u32, steps: u32, seed: u64) -> Arc<Vec<u8>> {
    type Key = (ImageFormat, u32, u64, u32);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Vec<u8>>>>> = OnceLock::new();
    let size = size.clamp(8, MAX_SIDE);
    let level = (u64::from(step) * 16 / u64::from(steps.max(1))).min(16) as u32;
    let key = (format, size, seed % 8, level);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(bytes) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return bytes.clone();
    }
    let frac = f64::from(level) / 16.0;
    let rgb = [
        ((key.2 * 37 + u64::from(level) * 20) % 256) as u8,
        (255.0 * frac) as u8,
        ((key.2 * 91) % 256) as u8,
    ];
    let bytes = Arc::new(encode(&draw(size, size, rgb, frac), format));
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, bytes.clone());
    bytes
}

/// The PNG behind an output or temp file the fake "wrote".
pub fn file_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let rgb = [
        (seed.wrapping_mul(53) % 256) as u8,
        (seed.wrapping_mul(97) % 256) as u8,
        (seed.wrapping_mul(151) % 256) as u8,
    ];
    encode(&draw(width, height, rgb, 0.0), ImageFormat::Png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_start_with_the_right_magic_and_decode() {
        let jpeg = preview(ImageFormat::Jpeg, 64, 3, 12, 1);
        assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff]);
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (64, 64));
        let png = preview(ImageFormat::Png, 40, 1, 4, 2);
        assert_eq!(&png[..4], &[0x89, b'P', b'N', b'G']);
        assert!(image::load_from_memory(&png).is_ok());
    }

    #[test]
    fn files_are_pngs_of_the_requested_size() {
        let png = file_png(64, 48, 9);
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48));
    }
}

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

/// Like a sampler's intermediate image rather than a flat card: a colour gradient with grain and
/// a progress bar, so a 512 px JPEG at quality 95 weighs tens of KB like ComfyUI's previews.
fn draw_grainy(size: u32, frame: u32, bar_frac: f64) -> RgbImage {
    let mut img = draw(size, size, [0, 0, 0], bar_frac);
    let bar_top = size.saturating_sub((size / 8).max(2));
    for (x, y, px) in img.enumerate_pixels_mut() {
        if y >= bar_top && px.0 == [255, 255, 255] {
            continue;
        }
        // A cheap integer hash of the position and frame: deterministic grain.
        // Blocks of 8 px, like an upscaled latent preview (about 36 KB at 512 px).
        let (bx, by) = (x / 8, y / 8);
        let mut h = bx.wrapping_mul(0x9e37_79b1)
            ^ by.wrapping_mul(0x85eb_ca77)
            ^ frame.wrapping_mul(0xc2b2_ae3d);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2c1b_3c6d);
        h ^= h >> 12;
        let grain = (h & 0x1f) as i32 - 16;
        let gx = (x * 255 / size.max(1)) as i32;
        let gy = (y * 255 / size.max(1)) as i32;
        let shift = (frame * 29) as i32;
        let channel = |base: i32| (base + grain).clamp(0, 255) as u8;
        px.0 = [
            channel((gx + shift) % 256),
            channel((gy + 2 * shift) % 256),
            channel(255 - (gx + gy) / 2),
        ];
    }
    img
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

/// How many distinct frames [`preview_ring`] holds per format and size.
pub const RING: usize = 8;

/// [`RING`] distinct preview frames at `size` px (a colour sweep with a growing bar), encoded
/// once per format and size for the life of the process, so a load generator can send thousands
/// of frames a second without spending the CPU a benchmark measures. The first call for a size
/// encodes (slow for 512 px in a debug build); call it off the async threads.
pub fn preview_ring(format: ImageFormat, size: u32) -> Arc<[Arc<Vec<u8>>]> {
    type Ring = Arc<[Arc<Vec<u8>>]>;
    static RINGS: OnceLock<Mutex<HashMap<(ImageFormat, u32), Ring>>> = OnceLock::new();
    let size = size.clamp(8, MAX_SIDE);
    let rings = RINGS.get_or_init(|| Mutex::new(HashMap::new()));
    // Held while encoding, so concurrent first callers encode once.
    let mut rings = rings.lock().unwrap_or_else(|e| e.into_inner());
    rings
        .entry((format, size))
        .or_insert_with(|| {
            (0..RING as u32)
                .map(|i| {
                    let frac = f64::from(i + 1) / RING as f64;
                    Arc::new(encode(&draw_grainy(size, i, frac), format))
                })
                .collect()
        })
        .clone()
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
    fn a_preview_ring_holds_distinct_decodable_frames_of_the_size() {
        let ring = preview_ring(ImageFormat::Jpeg, 48);
        assert_eq!(ring.len(), RING);
        for frame in ring.iter() {
            let img = image::load_from_memory(frame).unwrap();
            assert_eq!((img.width(), img.height()), (48, 48));
        }
        assert_ne!(ring[0], ring[1]);
        assert!(Arc::ptr_eq(&ring, &preview_ring(ImageFormat::Jpeg, 48)));
    }

    #[test]
    fn a_default_size_ring_frame_weighs_like_a_real_preview() {
        let ring = preview_ring(ImageFormat::Jpeg, 512);
        let kb = ring[0].len() / 1024;
        assert!((15..100).contains(&kb), "{kb} KB");
    }

    #[test]
    fn files_are_pngs_of_the_requested_size() {
        let png = file_png(64, 48, 9);
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48));
    }
}

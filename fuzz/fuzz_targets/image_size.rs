//! `image_size` on any bytes: no panic, and a PNG's size is the one its IHDR declares.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = comfy_protocol::image_size(data);
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        if let Some((w, h)) = size {
            let be = |at: usize| {
                u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
            };
            assert_eq!((w, h), (be(16), be(20)));
        }
    }
});

//! `decode_binary`, with and without the text-metadata layout (the first byte chooses), and
//! `image_size` on every preview it finds: no panic, and a preview's image is the frame's own
//! tail, never a copy.
#![no_main]

use comfy_protocol::{decode_binary, image_size, BinaryFrame, ServerFeatures};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let features = ServerFeatures {
        progress_text_metadata: flags & 1 == 1,
    };
    let end = frame.as_ptr() as usize + frame.len();
    match decode_binary(frame, &features) {
        Ok(BinaryFrame::Preview { format, image, .. }) => {
            assert_eq!(
                image.as_ptr() as usize + image.len(),
                end,
                "not the frame's tail"
            );
            let _ = format.mime();
            let _ = image_size(image);
        }
        Ok(BinaryFrame::Text { node, text, .. }) => {
            assert!(node.as_str().len() + text.len() + 4 <= frame.len());
        }
        Ok(BinaryFrame::Unknown { payload, .. }) => {
            assert_eq!(payload.len() + 4, frame.len());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

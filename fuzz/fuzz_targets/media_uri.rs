//! The `media:` URLs the webview asks for: any path and query is read or refused without a
//! panic, and an output file it names becomes a local path inside the chosen folder or is
//! refused.
#![no_main]

use comfy_engine::media_uri::{parse, MediaRequest};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|input: &str| {
    let (path, query) = match input.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (input, None),
    };
    if let Some(MediaRequest::Output { file, .. }) = parse(path, query) {
        let dir = Path::new("/home/user/Pictures/comfy");
        if let Ok(local) = comfy_engine::outputs::local_path(dir, &file) {
            let rest = local.strip_prefix(dir).expect("outside the chosen folder");
            assert!(
                rest.components().all(|c| matches!(c, Component::Normal(_))),
                "{rest:?} climbs"
            );
        }
    }
});

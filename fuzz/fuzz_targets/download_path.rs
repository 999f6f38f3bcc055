//! `outputs::local_path`: whatever file name and subfolder a server gives, the download goes
//! inside the chosen folder, below it, or is refused.
#![no_main]

use comfy_model::OutputFile;
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|input: (String, String, String)| {
    let (filename, subfolder, kind) = input;
    let dir = Path::new("/home/user/Pictures/comfy");
    let file = OutputFile {
        filename,
        subfolder,
        kind,
    };
    if let Ok(path) = comfy_engine::outputs::local_path(dir, &file) {
        let rest = path.strip_prefix(dir).expect("outside the chosen folder");
        assert!(rest.components().count() >= 1, "the folder itself");
        assert!(
            rest.components().all(|c| matches!(c, Component::Normal(_))),
            "{rest:?} climbs"
        );
    }
});

//! Real files saved by ComfyUI 0.26.0's own save nodes (see `tests/fixtures/saved/README.md`),
//! and damaged and hostile ones made from them.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/saved")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The prompt every fixture was saved from: a test sampler with seed 7, and its save nodes.
fn assert_is_the_saved_prompt(prompt: &Value) {
    assert_eq!(prompt["1"]["class_type"], "MonitorTestSampler", "{prompt}");
    assert_eq!(prompt["1"]["inputs"]["seed"], 7, "{prompt}");
}

#[test]
fn reads_the_prompt_of_each_file_comfyui_saves() {
    for (name, kind) in [
        ("save-image.png", FileKind::Png),
        ("save-animated-png.png", FileKind::Png),
        ("save-animated-webp.webp", FileKind::Webp),
        ("save-audio.flac", FileKind::Flac),
        ("save-video.mp4", FileKind::Mp4),
    ] {
        let bytes = fixture(name);
        assert_eq!(FileKind::of(&bytes), Some(kind), "{name}");
        let prompt = embedded_prompt(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_is_the_saved_prompt(&prompt);
    }
}

#[test]
fn an_api_workflow_is_taken_as_it_is_and_a_page_workflow_is_refused_with_a_way_out() {
    let api = br#" {"1": {"class_type": "MonitorTestSampler", "inputs": {"seed": 7}}}"#;
    assert_is_the_saved_prompt(&embedded_prompt(api).expect("API format"));
    let bom = [b"\xef\xbb\xbf".as_slice(), api].concat();
    assert!(
        embedded_prompt(&bom).is_ok(),
        "a byte-order mark is not an error"
    );

    let page = br#"{"nodes": [], "links": [], "version": 0.4}"#;
    let e = embedded_prompt(page).expect_err("UI format");
    assert_eq!(e, EmbeddedError::OnlyUiWorkflow(FileKind::Json));
    assert!(e.to_string().contains("Export (API)"), "{e}");
}

/// The chunks of a PNG, rebuilt without those `drop` says (CRCs are not checked here).
fn png_without(bytes: &[u8], drop: impl Fn(&[u8], &[u8]) -> bool) -> Vec<u8> {
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let chunk = &bytes[at..at + 12 + len];
        if !drop(&chunk[4..8], &chunk[8..8 + len]) {
            out.extend_from_slice(chunk);
        }
        at += 12 + len;
    }
    out
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let len = u32::try_from(data.len()).expect("small").to_be_bytes();
    [&len[..], kind, data, &[0; 4]].concat()
}

#[test]
fn a_file_with_only_the_page_workflow_says_so() {
    let png = fixture("save-image.png");
    let only_workflow = png_without(&png, |kind, data| {
        kind == b"tEXt" && data.starts_with(b"prompt\0")
    });
    assert_eq!(
        embedded_prompt(&only_workflow),
        Err(EmbeddedError::OnlyUiWorkflow(FileKind::Png))
    );
    let nothing = png_without(&png, |kind, _| kind == b"tEXt");
    assert_eq!(
        embedded_prompt(&nothing),
        Err(EmbeddedError::NoPrompt(FileKind::Png))
    );
}

#[test]
fn damaged_and_hostile_files_get_a_clear_error_and_never_a_panic() {
    let png = fixture("save-image.png");
    // Cut anywhere: every prefix is an error or (past the prompt) still the prompt.
    for kind_of in [
        "save-image.png",
        "save-animated-webp.webp",
        "save-audio.flac",
        "save-video.mp4",
    ] {
        let bytes = fixture(kind_of);
        for end in (0..bytes.len()).step_by(7) {
            if let Ok(prompt) = embedded_prompt(&bytes[..end]) {
                assert_is_the_saved_prompt(&prompt);
            }
        }
        // Every byte flipped in turn, over the first 4 KiB: no panic.
        let mut mutated = bytes.clone();
        for (i, &original) in bytes.iter().enumerate().take(4096) {
            mutated[i] = !original;
            let _ = embedded_prompt(&mutated);
            mutated[i] = original;
        }
    }

    // A chunk that says it is 4 GiB long.
    let mut huge = png[..8].to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(b"tEXt");
    huge.extend_from_slice(b"prompt\0{");
    assert_eq!(
        embedded_prompt(&huge),
        Err(EmbeddedError::Damaged {
            kind: FileKind::Png,
            why: "a chunk runs past the end of the file"
        })
    );

    // A prompt that is not JSON, or JSON that is not a prompt.
    let signature = &png[..8];
    for (text, wanted) in [
        (b"prompt\0{not json".as_slice(), "not valid"),
        (b"prompt\0[1, 2]", "not valid"),
        (b"prompt\0\xff\xfe{}", "not valid"),
    ] {
        let file = [signature, &chunk(b"tEXt", text), &chunk(b"IEND", b"")].concat();
        let e = embedded_prompt(&file).expect_err("a bad prompt");
        assert!(e.to_string().contains(wanted), "{e}");
    }

    // Larger than any real prompt.
    let big = [b"prompt\0".as_slice(), &vec![b' '; MAX_PROMPT_BYTES + 1]].concat();
    let file = [signature, &chunk(b"tEXt", &big)].concat();
    assert_eq!(
        embedded_prompt(&file),
        Err(EmbeddedError::TooLarge(FileKind::Png))
    );

    // MP4 boxes nested past any real file, and boxes of impossible sizes.
    let wrap = |kind: &[u8; 4], content: &[u8]| {
        let len = u32::try_from(content.len() + 8)
            .expect("small")
            .to_be_bytes();
        [&len[..], kind, content].concat()
    };
    let mut nested = Vec::new();
    for _ in 0..64 {
        nested = wrap(b"udta", &nested);
    }
    let mp4 = [wrap(b"ftyp", b"isom"), wrap(b"moov", &nested)].concat();
    assert_eq!(
        embedded_prompt(&mp4),
        Err(EmbeddedError::NoPrompt(FileKind::Mp4))
    );
    let bad_box = b"\0\0\0\x08ftyp\x7f\xff\xff\xffmoov".to_vec();
    assert!(matches!(
        embedded_prompt(&bad_box),
        Err(EmbeddedError::Damaged {
            kind: FileKind::Mp4,
            ..
        })
    ));

    assert_eq!(embedded_prompt(b"GIF89a"), Err(EmbeddedError::Unknown));
    assert_eq!(embedded_prompt(b""), Err(EmbeddedError::Unknown));
}

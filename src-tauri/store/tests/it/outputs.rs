//! Output files of a job.

use crate::support::{seen, store_with_instance};
use comfy_store::{NewOutput, OutputKind, StoreError, MAX_THUMBNAIL_BYTES};
use std::path::Path;

fn image(node: &str, name: &str) -> NewOutput {
    NewOutput {
        node_id: node.into(),
        filename: name.into(),
        subfolder: String::new(),
        kind: OutputKind::Output,
    }
}

#[test]
fn recording_the_same_outputs_twice_keeps_one_row_each() {
    let (_dir, mut store, id) = store_with_instance();
    let job = store.record_seen(&seen(id, "p", 1), 1).unwrap().id;
    let files = [
        image("9", "ComfyUI_00001_.png"),
        image("9", "ComfyUI_00002_.png"),
        NewOutput {
            kind: OutputKind::Temp,
            ..image("9", "ComfyUI_00001_.png")
        },
    ];
    assert_eq!(store.record_outputs(job, &files).unwrap(), 3);
    assert_eq!(store.record_outputs(job, &files).unwrap(), 0);
    assert_eq!(store.record_outputs(job, &files[..1]).unwrap(), 0);

    let rows = store.outputs(job).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].kind, OutputKind::Temp);
    assert!(rows
        .iter()
        .all(|o| o.local_path.is_none() && !o.has_thumbnail));
}

#[test]
fn a_downloaded_copy_and_a_thumbnail_are_remembered() {
    let (_dir, mut store, id) = store_with_instance();
    let job = store.record_seen(&seen(id, "p", 1), 1).unwrap().id;
    store.record_outputs(job, &[image("9", "a.png")]).unwrap();
    let out = store.outputs(job).unwrap()[0].id;

    let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    store
        .set_output_local_path(out, Some(Path::new("/home/u/Pictures/a.png")))
        .unwrap();
    store.set_output_thumbnail(out, Some(&png)).unwrap();

    let row = &store.outputs(job).unwrap()[0];
    assert_eq!(
        row.local_path.as_deref(),
        Some(Path::new("/home/u/Pictures/a.png"))
    );
    assert!(row.has_thumbnail);
    assert_eq!(store.output_thumbnail(out).unwrap().unwrap(), png);

    store.set_output_thumbnail(out, None).unwrap();
    assert_eq!(store.output_thumbnail(out).unwrap(), None);
}

#[test]
fn oversized_thumbnails_are_refused() {
    let (_dir, mut store, id) = store_with_instance();
    let job = store.record_seen(&seen(id, "p", 1), 1).unwrap().id;
    store.record_outputs(job, &[image("9", "a.png")]).unwrap();
    let out = store.outputs(job).unwrap()[0].id;
    let big = vec![0u8; MAX_THUMBNAIL_BYTES + 1];
    assert!(matches!(
        store.set_output_thumbnail(out, Some(&big)),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn outputs_of_an_unknown_job_are_not_found() {
    let (_dir, mut store, _) = store_with_instance();
    let err = store
        .record_outputs(comfy_store::JobId(42), &[image("9", "a.png")])
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

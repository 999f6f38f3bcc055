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
fn the_kept_copy_of_a_server_file_is_found_by_instance_and_file() {
    let (_dir, mut store, id) = store_with_instance();
    let other = store
        .insert_instance(
            &comfy_store::NewInstance::new("other", "http://other:8188/"),
            1,
        )
        .unwrap()
        .id;
    let job = store.record_seen(&seen(id, "p", 1), 1).unwrap().id;
    let rerun = store.record_seen(&seen(id, "q", 2), 2).unwrap().id;
    let elsewhere = store.record_seen(&seen(other, "r", 3), 3).unwrap().id;
    store.record_outputs(job, &[image("9", "a.png")]).unwrap();
    store
        .record_outputs(rerun, &[image("9", "a.png"), image("9", "b.png")])
        .unwrap();
    store
        .record_outputs(elsewhere, &[image("9", "c.png")])
        .unwrap();
    // Nothing kept yet: a file known only by its server reference has no copy.
    assert_eq!(store.kept_copy(id, "a.png", "", "output").unwrap(), None);

    let first = store.outputs(job).unwrap()[0].id;
    store
        .set_output_local_path(first, Some(Path::new("/old/a.png")))
        .unwrap();
    let newer = store.outputs(rerun).unwrap()[0].id;
    store.set_output_thumbnail(newer, Some(b"thumb")).unwrap();
    let c = store.outputs(elsewhere).unwrap()[0].id;
    store.set_output_thumbnail(c, Some(b"c")).unwrap();

    // The newest record that kept anything wins.
    let kept = store.kept_copy(id, "a.png", "", "output").unwrap().unwrap();
    assert_eq!(kept.local_path, None);
    assert_eq!(kept.thumbnail.as_deref(), Some(&b"thumb"[..]));
    // Folder type and subfolder are part of the file's name on the server.
    assert_eq!(store.kept_copy(id, "a.png", "", "temp").unwrap(), None);
    assert_eq!(store.kept_copy(id, "a.png", "sub", "output").unwrap(), None);
    // Another instance's file of the same name is not this one.
    assert_eq!(store.kept_copy(id, "c.png", "", "output").unwrap(), None);
    assert!(store
        .kept_copy(other, "c.png", "", "output")
        .unwrap()
        .is_some());
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

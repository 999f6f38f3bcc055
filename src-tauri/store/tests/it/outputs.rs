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

/// Ends a job with its outputs, as the journal writes it.
fn finish(
    store: &mut comfy_store::Store,
    seen: comfy_store::JobSeen,
    outcome: comfy_store::JobOutcome,
    at: i64,
    files: &[NewOutput],
) -> comfy_store::JobId {
    let end = crate::support::end(seen.instance, &seen.prompt_id, outcome, at);
    store
        .record_job(
            &comfy_store::JobEvent {
                seen: &seen,
                running_since: None,
                end: Some(&end),
                outputs: files,
            },
            at,
        )
        .unwrap();
    store
        .job(seen.instance, &seen.prompt_id)
        .unwrap()
        .unwrap()
        .id
}

fn saving(folder: &str, others: bool) -> comfy_store::InstanceUpdate {
    comfy_store::InstanceUpdate {
        saving: Some(comfy_model::OutputSaving {
            folder: Some(folder.into()),
            others,
        }),
        ..Default::default()
    }
}

#[test]
fn outputs_are_kept_only_where_the_instance_saves_and_only_the_jobs_it_saves() {
    use crate::support::own;
    use comfy_store::JobOutcome::Success;
    let (_dir, mut store, id) = store_with_instance();
    let temp = NewOutput {
        kind: OutputKind::Temp,
        ..image("9", "preview.png")
    };
    // Not saving yet: nothing is to keep.
    finish(
        &mut store,
        own(id, "before", 1),
        Success,
        1,
        &[image("9", "a.png")],
    );
    assert!(store.outputs_to_keep(10, &[], &[id]).unwrap().is_empty());

    store
        .update_instance(id, &saving("/home/u/Pictures/ComfyUI/gpu", false), 2)
        .unwrap();
    finish(
        &mut store,
        own(id, "mine", 2),
        Success,
        3,
        &[image("9", "b.png"), temp.clone()],
    );
    finish(
        &mut store,
        seen(id, "theirs", 3),
        Success,
        4,
        &[image("9", "c.png")],
    );
    let pending = store.outputs_to_keep(10, &[], &[id]).unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| p.output.filename.as_str())
            .collect::<Vec<_>>(),
        ["b.png"],
        "this app's job, its output file (not the temporary preview), not another client's"
    );
    assert_eq!(pending[0].folder, Path::new("/home/u/Pictures/ComfyUI/gpu"));
    assert_eq!(pending[0].prompt_id, "mine");
    assert!(
        store.outputs_to_keep(10, &[], &[]).unwrap().is_empty(),
        "an instance out of reach waits"
    );

    store
        .update_instance(id, &saving("/srv/out", true), 5)
        .unwrap();
    finish(
        &mut store,
        seen(id, "theirs2", 4),
        Success,
        6,
        &[image("9", "d.png")],
    );
    let names: Vec<_> = store
        .outputs_to_keep(10, &[], &[id])
        .unwrap()
        .into_iter()
        .map(|p| (p.output.filename, p.folder))
        .collect();
    assert_eq!(
        names,
        [
            ("b.png".to_owned(), "/srv/out".into()),
            ("d.png".to_owned(), "/srv/out".into())
        ],
        "others' jobs once switched on, into the folder set now"
    );
    assert_eq!(store.keep_counts().unwrap().pending, 2);

    // Switched off, nothing is fetched (the files wait, should it come back on).
    store
        .update_instance(
            id,
            &comfy_store::InstanceUpdate {
                saving: Some(comfy_model::OutputSaving::default()),
                ..Default::default()
            },
            7,
        )
        .unwrap();
    assert!(store.outputs_to_keep(10, &[], &[id]).unwrap().is_empty());
    assert_eq!(store.keep_counts().unwrap().pending, 0);
}

#[test]
fn a_kept_file_a_retry_and_a_failure_are_recorded() {
    use comfy_store::KeepResult;
    let (_dir, mut store, id) = store_with_instance();
    store
        .update_instance(id, &saving("/out", false), 2)
        .unwrap();
    let files = [
        image("9", "a.png"),
        image("9", "b.png"),
        image("9", "c.png"),
    ];
    finish(
        &mut store,
        crate::support::own(id, "p", 1),
        comfy_store::JobOutcome::Success,
        3,
        &files,
    );
    let pending = store.outputs_to_keep(10, &[], &[id]).unwrap();
    let [a, b, c] = [
        pending[0].output.id,
        pending[1].output.id,
        pending[2].output.id,
    ];
    // Busy ones are skipped; the limit is kept.
    let next: Vec<_> = store
        .outputs_to_keep(1, &[a], &[id])
        .unwrap()
        .into_iter()
        .map(|p| p.output.id)
        .collect();
    assert_eq!(next, [b]);

    store
        .record_keep(
            a,
            &KeepResult::Kept {
                path: Path::new("/out/a.png"),
                thumbnail: Some(b"\x89PNG"),
            },
        )
        .unwrap();
    store
        .record_keep(
            b,
            &KeepResult::Retry {
                error: "connection refused",
            },
        )
        .unwrap();
    store
        .record_keep(
            c,
            &KeepResult::Failed {
                error: "no space left on device",
            },
        )
        .unwrap();

    let left = store.outputs_to_keep(10, &[], &[id]).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].output.id, left[0].tries),
        (b, 1),
        "a retry stays pending"
    );
    assert_eq!(
        store.keep_counts().unwrap(),
        comfy_store::KeepCounts {
            pending: 1,
            failed: 1
        }
    );
    let job = store.job(id, "p").unwrap().unwrap().id;
    let rows = store.outputs(job).unwrap();
    assert_eq!(rows[0].local_path.as_deref(), Some(Path::new("/out/a.png")));
    let keep: Vec<_> = store
        .gallery(&comfy_store::GalleryFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|g| (g.output.filename, g.keep))
        .collect();
    use comfy_store::KeepState::{Failed, Kept, Pending};
    assert_eq!(
        keep,
        [
            ("c.png".to_owned(), Some(Failed)),
            ("b.png".to_owned(), Some(Pending)),
            ("a.png".to_owned(), Some(Kept))
        ],
        "the gallery says how saving went"
    );
    assert!(rows[0].has_thumbnail);
    assert!(rows[2].local_path.is_none());

    // A copy saved by hand counts as kept: no second copy is fetched.
    store
        .set_output_local_path(b, Some(Path::new("/elsewhere/b.png")))
        .unwrap();
    assert!(store.outputs_to_keep(10, &[], &[id]).unwrap().is_empty());
}

#[test]
fn a_folder_to_save_to_must_be_absolute() {
    let (_dir, mut store, id) = store_with_instance();
    for bad in ["Pictures/ComfyUI", "./out", "/tmp/a\nb"] {
        let err = store
            .update_instance(id, &saving(bad, false), 2)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
    // Blank is off.
    let rec = store.update_instance(id, &saving("  ", true), 2).unwrap();
    assert_eq!(rec.saving.folder, None);
    let rec = store
        .update_instance(id, &saving(" /srv/out ", true), 2)
        .unwrap();
    assert_eq!(rec.saving.folder.as_deref(), Some("/srv/out"));
    assert!(rec.saving.others);
}

#[test]
fn the_gallery_filters_by_instance_outcome_date_and_words() {
    use comfy_store::{GalleryFilter, JobOutcome, JobState};
    let (_dir, mut store, gpu) = store_with_instance();
    let other = store
        .insert_instance(&comfy_store::NewInstance::new("box", "http://box:8188"), 1)
        .unwrap()
        .id;
    let cat = finish(
        &mut store,
        seen(gpu, "cat", 1),
        JobOutcome::Success,
        100,
        &[image("9", "cat_00001_.png")],
    );
    store
        .describe_job(
            cat,
            Some("sdxl · a cat on a sofa"),
            "sdxl · a cat on a sofa sd_xl_base.safetensors a cat on a sofa",
        )
        .unwrap();
    let dog = finish(
        &mut store,
        seen(gpu, "dog", 2),
        JobOutcome::Error,
        200,
        &[image("9", "dog_00001_.png")],
    );
    store
        .describe_job(dog, Some("dog"), "flux a dog 100%_done")
        .unwrap();
    finish(
        &mut store,
        seen(other, "box1", 3),
        JobOutcome::Success,
        300,
        &[image("9", "x.png"), image("10", "y.png")],
    );
    finish(
        &mut store,
        seen(other, "tmp", 4),
        JobOutcome::Success,
        400,
        &[NewOutput {
            kind: OutputKind::Temp,
            ..image("9", "preview.png")
        }],
    );
    let names = |f: GalleryFilter| -> Vec<String> {
        store
            .gallery(&GalleryFilter { limit: 50, ..f })
            .unwrap()
            .into_iter()
            .map(|g| g.output.filename)
            .collect()
    };
    assert_eq!(
        names(GalleryFilter::default()),
        ["y.png", "x.png", "dog_00001_.png", "cat_00001_.png"],
        "newest first, without temporary previews"
    );
    assert_eq!(
        names(GalleryFilter {
            instance: Some(other),
            ..Default::default()
        }),
        ["y.png", "x.png"]
    );
    assert_eq!(
        names(GalleryFilter {
            states: vec![JobState::Error],
            ..Default::default()
        }),
        ["dog_00001_.png"]
    );
    assert_eq!(
        names(GalleryFilter {
            since: Some(150),
            until: Some(300),
            ..Default::default()
        }),
        ["dog_00001_.png"]
    );
    assert_eq!(
        names(GalleryFilter {
            text: Some("CAT sofa".into()),
            ..Default::default()
        }),
        ["cat_00001_.png"]
    );
    assert_eq!(
        names(GalleryFilter {
            text: Some("cat dog".into()),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        names(GalleryFilter {
            text: Some("y.png".into()),
            ..Default::default()
        }),
        ["y.png"]
    );
    // `%` and `_` are letters to a search, not wildcards.
    assert_eq!(
        names(GalleryFilter {
            text: Some("100%_".into()),
            ..Default::default()
        }),
        ["dog_00001_.png"]
    );
    assert_eq!(
        names(GalleryFilter {
            text: Some("%".into()),
            ..Default::default()
        }),
        ["dog_00001_.png"]
    );
    // Pages continue before the last row shown.
    let first = store
        .gallery(&GalleryFilter {
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    let rest = store
        .gallery(&GalleryFilter {
            limit: 2,
            before: Some(first[1].output.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|g| g.output.filename.as_str())
            .collect::<Vec<_>>(),
        ["dog_00001_.png", "cat_00001_.png"]
    );
    assert_eq!(rest[1].label.as_deref(), Some("sdxl · a cat on a sofa"));
    assert_eq!(rest[0].state, JobState::Error);
}

//! Adding, editing and removing instances.

use crate::support::{db_path, seen, store_with_instance};
use comfy_store::{
    AuthSettings, InstanceUpdate, NewEvent, NewInstance, NotificationPrefs, Store, StoreError,
};

#[test]
fn a_new_instance_gets_a_client_id_and_default_preferences() {
    let (_dir, store, id) = store_with_instance();
    let rec = store.instance(id).unwrap();
    assert_eq!(rec.name, "gpu");
    assert_eq!(rec.base_url, "http://gpu.lan:8188/");
    assert_eq!(rec.preview_fps_cap, 15);
    assert_eq!(rec.notifications, NotificationPrefs::default());
    assert_eq!((rec.created_at, rec.updated_at), (1_000, 1_000));
    assert_eq!(rec.last_status, None);

    let hex = rec.client_id.strip_prefix("comfy-monitor-").unwrap();
    assert_eq!(hex.len(), 32);
    assert!(hex
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let local = store.instance_by_name("Local").unwrap();
    assert_ne!(local.client_id, rec.client_id);
}

#[test]
fn names_are_unique_regardless_of_case() {
    let (_dir, mut store, _) = store_with_instance();
    let err = store
        .insert_instance(&NewInstance::new("GPU", "http://other:8188"), 2)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Duplicate { name } if name == "GPU"),
        "{err:?}"
    );
    assert_eq!(store.instance_by_name("gPu").unwrap().name, "gpu");
}

#[test]
fn empty_names_and_non_http_urls_are_invalid() {
    let (_dir, path) = db_path();
    let mut store = Store::open(&path).unwrap();
    for bad in [
        NewInstance::new("  ", "http://host:8188"),
        NewInstance::new("x", "ftp://host"),
        NewInstance::new("x", "host:8188"),
        NewInstance::new("x", "http://user:pw@host:8188"),
        NewInstance {
            preview_fps_cap: 1_000,
            ..NewInstance::new("x", "http://host:8188")
        },
    ] {
        let err = store.insert_instance(&bad, 1).unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(store.instances().unwrap().len(), 1);
}

#[test]
fn an_update_changes_only_the_given_fields_and_bumps_updated_at() {
    let (_dir, mut store, id) = store_with_instance();
    let before = store.instance(id).unwrap();
    let after = store
        .update_instance(
            id,
            &InstanceUpdate {
                enabled: Some(false),
                preview_fps_cap: Some(0),
                ..InstanceUpdate::default()
            },
            2_000,
        )
        .unwrap();
    assert!(!after.enabled);
    assert_eq!(after.preview_fps_cap, 0);
    assert_eq!(after.updated_at, 2_000);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.client_id, before.client_id);
    assert_eq!(after.name, before.name);
}

#[test]
fn a_new_instance_uses_the_companion_unless_told_not_to() {
    let (_dir, mut store, id) = store_with_instance();
    assert!(store.instance(id).unwrap().use_companion);
    assert!(store.instance_by_name("Local").unwrap().use_companion);
    let off = store
        .insert_instance(
            &NewInstance {
                use_companion: false,
                ..NewInstance::new("plain", "http://plain:8188")
            },
            2,
        )
        .unwrap();
    assert!(!off.use_companion);
    assert!(!store.instance(off.id).unwrap().use_companion);
}

#[test]
fn an_update_turns_the_companion_off_and_on_and_other_edits_keep_it() {
    let (_dir, mut store, id) = store_with_instance();
    let off = InstanceUpdate {
        use_companion: Some(false),
        ..InstanceUpdate::default()
    };
    let rec = store.update_instance(id, &off, 2_000).unwrap();
    assert!(!rec.use_companion);
    assert_eq!(rec.updated_at, 2_000);
    assert!(rec.enabled, "only the given field changes");

    let rename = InstanceUpdate {
        name: Some("gpu2".into()),
        ..InstanceUpdate::default()
    };
    let rec = store.update_instance(id, &rename, 3_000).unwrap();
    assert!(!rec.use_companion, "an edit without the field keeps it");

    let on = InstanceUpdate {
        use_companion: Some(true),
        ..InstanceUpdate::default()
    };
    assert!(store.update_instance(id, &on, 4_000).unwrap().use_companion);
    assert!(store.instance(id).unwrap().use_companion);
}

#[test]
fn renaming_onto_another_instance_is_a_duplicate() {
    let (_dir, mut store, id) = store_with_instance();
    let err = store
        .update_instance(
            id,
            &InstanceUpdate {
                name: Some("local".into()),
                ..InstanceUpdate::default()
            },
            2,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
}

#[test]
fn status_updates_keep_the_last_connection_time() {
    let (_dir, mut store, id) = store_with_instance();
    store
        .set_instance_status(id, "connected", Some(5_000))
        .unwrap();
    store
        .set_instance_status(id, "unreachable: connection refused", None)
        .unwrap();
    let rec = store.instance(id).unwrap();
    assert_eq!(
        rec.last_status.as_deref(),
        Some("unreachable: connection refused")
    );
    assert_eq!(rec.last_connected, Some(5_000));
    assert_eq!(rec.updated_at, 1_000, "a status is not an edit");
}

#[test]
fn deleting_an_instance_removes_its_jobs_but_keeps_its_events() {
    let (_dir, mut store, id) = store_with_instance();
    store.record_seen(&seen(id, "p1", 10), 10).unwrap();
    store
        .log_event(&NewEvent {
            instance: Some(id),
            ts: 10,
            kind: "connected".into(),
            detail: None,
            data_json: None,
        })
        .unwrap();

    let removed = store.delete_instance(id).unwrap();
    assert_eq!(removed.name, "gpu");
    assert!(store.history(None, 10, 0).unwrap().is_empty());
    let events = store.events(None, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].instance, None);
    assert!(matches!(
        store.instance(id),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn changing_auth_moves_the_secret_slots_with_it() {
    let (_dir, mut store, id) = store_with_instance();
    assert!(store.instance(id).unwrap().secret_slots.is_empty());

    let rec = store
        .update_instance(
            id,
            &InstanceUpdate {
                auth: Some(AuthSettings::Headers {
                    names: vec![
                        "CF-Access-Client-Id".into(),
                        "CF-Access-Client-Secret".into(),
                    ],
                }),
                ..InstanceUpdate::default()
            },
            2,
        )
        .unwrap();
    let refs: Vec<_> = rec
        .secret_slots
        .iter()
        .map(|s| s.secret_ref.as_str())
        .collect();
    assert_eq!(
        refs,
        [
            format!("instance/{id}/header:cf-access-client-id"),
            format!("instance/{id}/header:cf-access-client-secret")
        ]
    );

    let rec = store
        .update_instance(
            id,
            &InstanceUpdate {
                auth: Some(AuthSettings::Bearer),
                ..InstanceUpdate::default()
            },
            3,
        )
        .unwrap();
    assert_eq!(rec.auth, AuthSettings::Bearer);
    assert_eq!(rec.secret_slots.len(), 1);
    assert_eq!(
        rec.secret_slots[0].secret_ref,
        format!("instance/{id}/token")
    );
}

#[test]
fn unknown_instances_are_not_found() {
    let (_dir, mut store, _) = store_with_instance();
    let ghost = comfy_store::InstanceId(999);
    assert!(matches!(
        store.instance(ghost),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.set_instance_status(ghost, "x", None),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.record_seen(&seen(ghost, "p", 1), 1),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn an_instance_id_is_never_given_twice_even_after_the_newest_is_removed() {
    let (dir, mut store, gpu) = store_with_instance();
    let lab = store
        .insert_instance(&NewInstance::new("lab", "http://lab:8188"), 2)
        .unwrap();
    store.delete_instance(lab.id).unwrap();
    let next = store
        .insert_instance(&NewInstance::new("lab", "http://lab:8188"), 3)
        .unwrap();
    assert!(next.id > lab.id, "{:?} after {:?}", next.id, lab.id);
    assert!(next.id > gpu);
    // Across a reopening of the file too.
    store.delete_instance(next.id).unwrap();
    drop(store);
    let mut store = Store::open(dir.path().join("monitor.db")).unwrap();
    let again = store
        .insert_instance(&NewInstance::new("lab", "http://lab:8188"), 4)
        .unwrap();
    assert!(again.id > next.id);
    assert!(again.secret_slots.is_empty());
}

#[test]
fn a_pinned_certificate_is_kept_until_an_update_replaces_or_forgets_it() {
    let (_dir, mut store, _) = store_with_instance();
    let first: comfy_model::CertificateFingerprint = "AB".repeat(32).parse().unwrap();
    let second: comfy_model::CertificateFingerprint = "01".repeat(32).parse().unwrap();
    let mut new = NewInstance::new("self-signed", "https://box.lan:8443/");
    new.accept_invalid_certs = true;
    new.certificate_sha256 = Some(first);
    let rec = store.insert_instance(&new, 1_000).unwrap();
    assert_eq!(rec.certificate_sha256, Some(first));

    let rename = InstanceUpdate {
        name: Some("box".into()),
        ..InstanceUpdate::default()
    };
    let rec = store.update_instance(rec.id, &rename, 2_000).unwrap();
    assert_eq!(rec.certificate_sha256, Some(first), "kept by other edits");

    let replace = InstanceUpdate {
        certificate_sha256: Some(Some(second)),
        ..InstanceUpdate::default()
    };
    let rec = store.update_instance(rec.id, &replace, 3_000).unwrap();
    assert_eq!(
        store.instance(rec.id).unwrap().certificate_sha256,
        Some(second)
    );

    let forget = InstanceUpdate {
        certificate_sha256: Some(None),
        ..InstanceUpdate::default()
    };
    let rec = store.update_instance(rec.id, &forget, 4_000).unwrap();
    assert_eq!(rec.certificate_sha256, None);
    assert!(rec.accept_invalid_certs);
}

#[test]
fn an_instances_webhook_is_set_replaced_removed_and_goes_with_the_instance() {
    let (_dir, mut store, id) = crate::support::store_with_instance();
    assert!(store.instance_webhooks().unwrap().is_empty());
    store
        .set_instance_webhook(id, Some("https://hooks.example/a"))
        .unwrap();
    store
        .set_instance_webhook(id, Some("ntfy+https://ntfy.sh/studio"))
        .unwrap();
    assert_eq!(
        store.instance_webhooks().unwrap(),
        [(id, "ntfy+https://ntfy.sh/studio".to_owned())]
    );
    store.set_instance_webhook(id, None).unwrap();
    assert!(store.instance_webhooks().unwrap().is_empty());
    // Unknown instances and empty targets are refused.
    assert!(store
        .set_instance_webhook(comfy_store::InstanceId(9_999), Some("https://x/"))
        .is_err());
    assert!(store.set_instance_webhook(id, Some("")).is_err());
    store
        .set_instance_webhook(id, Some("https://hooks.example/a"))
        .unwrap();
    store.delete_instance(id).unwrap();
    assert!(store.instance_webhooks().unwrap().is_empty());
}

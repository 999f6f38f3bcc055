//! Secrets stay in the keyring: the database file never contains one.

use crate::support::db_path;
use comfy_store::{AuthSettings, InstanceUpdate, NewInstance, Store};
use std::collections::HashMap;

/// Every byte SQLite wrote for the database, WAL and shared memory included.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secret_values_never_reach_the_database_file() {
    let (dir, path) = db_path();
    let mut store = Store::open(&path).unwrap();
    // Stands in for the OS keyring, which the caller writes under each slot's reference.
    let mut keyring = HashMap::new();

    let basic = store
        .insert_instance(
            &NewInstance {
                auth: AuthSettings::Basic {
                    user: "render-farm-user".into(),
                },
                ..NewInstance::new("farm", "https://farm.example/comfy")
            },
            1,
        )
        .unwrap();
    for slot in &basic.secret_slots {
        keyring.insert(
            slot.secret_ref.clone(),
            "pw-Zq81-never-in-sqlite".to_owned(),
        );
    }
    let headers = store
        .update_instance(
            store.instance_by_name("Local").unwrap().id,
            &InstanceUpdate {
                auth: Some(AuthSettings::Headers {
                    names: vec!["X-Api-Key".into()],
                }),
                ..InstanceUpdate::default()
            },
            2,
        )
        .unwrap();
    for slot in &headers.secret_slots {
        keyring.insert(
            slot.secret_ref.clone(),
            "key-7Hc0-never-in-sqlite".to_owned(),
        );
    }
    assert_eq!(keyring.len(), 2);

    // While the connection is open (data in the WAL) and after it closed (checkpointed).
    for round in 0..2 {
        let bytes = all_bytes(dir.path());
        for secret in keyring.values() {
            assert!(
                !contains(&bytes, secret),
                "round {round}: {secret} is in the file"
            );
        }
        // The scan does find what is stored: the references and the non-secret settings.
        for r in keyring.keys() {
            assert!(contains(&bytes, r), "round {round}: {r} should be stored");
        }
        assert!(contains(&bytes, "render-farm-user"));
        assert!(contains(&bytes, "X-Api-Key"));
        if round == 0 {
            drop(std::mem::replace(
                &mut store,
                Store::open_read_only(&path).unwrap(),
            ));
        }
    }
}

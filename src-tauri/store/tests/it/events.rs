//! The bounded event log.

use crate::support::db_path;
use comfy_store::{EventRetention, NewEvent, Store, StoreOptions};

const DAY: i64 = 24 * 60 * 60 * 1000;

fn event(ts: i64, kind: &str) -> NewEvent {
    NewEvent {
        instance: None,
        ts,
        kind: kind.into(),
        detail: None,
        data_json: None,
    }
}

fn store(max_rows: u32, prune_every: u32) -> (tempfile::TempDir, Store) {
    let (dir, path) = db_path();
    let options = StoreOptions {
        event_retention: EventRetention {
            max_rows,
            ..EventRetention::default()
        },
        prune_every,
        ..StoreOptions::default()
    };
    (dir, Store::open_with(&path, options).unwrap())
}

fn kinds(store: &Store) -> Vec<String> {
    store
        .events(None, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn pruning_keeps_only_the_newest_rows_up_to_the_limit() {
    let (_dir, mut store) = store(3, 1_000);
    for i in 0..7 {
        store.log_event(&event(i, &format!("e{i}"))).unwrap();
    }
    assert_eq!(store.prune_events(10).unwrap(), 4);
    assert_eq!(kinds(&store), ["e6", "e5", "e4"]);
}

#[test]
fn pruning_drops_events_older_than_the_age_limit() {
    let (_dir, mut store) = store(10_000, 1_000);
    let now = 100 * DAY;
    store.log_event(&event(now - 31 * DAY, "old")).unwrap();
    store.log_event(&event(now - 29 * DAY, "recent")).unwrap();
    store.log_event(&event(now, "now")).unwrap();
    assert_eq!(store.prune_events(now).unwrap(), 1);
    assert_eq!(kinds(&store), ["now", "recent"]);
}

#[test]
fn logging_prunes_by_itself_every_so_many_rows() {
    let (_dir, mut store) = store(5, 10);
    for i in 0..9 {
        store.log_event(&event(i, "e")).unwrap();
    }
    assert_eq!(store.event_count().unwrap(), 9);
    store.log_event(&event(9, "e")).unwrap();
    assert_eq!(store.event_count().unwrap(), 5);
}

#[test]
fn the_default_retention_is_ten_thousand_rows_and_thirty_days() {
    let r = EventRetention::default();
    assert_eq!(r.max_rows, 10_000);
    assert_eq!(r.max_age_ms, 30 * DAY);
}

#[test]
fn events_can_be_read_per_instance() {
    let (_dir, mut store) = store(100, 1_000);
    let local = store.instance_by_name("Local").unwrap().id;
    store
        .log_event(&NewEvent {
            instance: Some(local),
            data_json: Some(r#"{"code":401}"#.into()),
            ..event(1, "auth_rejected")
        })
        .unwrap();
    store.log_event(&event(2, "app_started")).unwrap();
    let mine = store.events(Some(local), 10).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].kind, "auth_rejected");
    assert_eq!(mine[0].data_json.as_deref(), Some(r#"{"code":401}"#));
}

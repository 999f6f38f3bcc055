//! A bounded log of connection and server events, for the "what happened overnight" view.
//!
//! The log never grows without bound: at most [`EventRetention::max_rows`] rows and nothing
//! older than [`EventRetention::max_age_ms`]. It is a log, not a source of truth; nothing may
//! depend on an event still being there.
//!
//! [`EventRetention::max_rows`]: crate::EventRetention::max_rows
//! [`EventRetention::max_age_ms`]: crate::EventRetention::max_age_ms

use crate::error::StoreError;
use crate::job::{check_json, missing_instance};
use crate::store::Store;
use comfy_model::InstanceId;
use rusqlite::{params, Connection, Row};
use std::fmt;

/// The row id of a logged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `None` for events of the app itself.
    pub instance: Option<InstanceId>,
    pub ts: i64,
    /// A short machine-readable name, e.g. `connected`, `auth_rejected`, `server_restarted`.
    pub kind: String,
    /// The readable line.
    pub detail: Option<String>,
    pub data_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: EventId,
    pub instance: Option<InstanceId>,
    pub ts: i64,
    pub kind: String,
    pub detail: Option<String>,
    pub data_json: Option<String>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        id: EventId(r.get(0)?),
        instance: r.get::<_, Option<i64>>(1)?.map(InstanceId),
        ts: r.get(2)?,
        kind: r.get(3)?,
        detail: r.get(4)?,
        data_json: r.get(5)?,
    })
}

/// Deletes what the retention policy no longer keeps; returns how many rows went.
fn prune(conn: &Connection, now: i64, max_rows: u32, max_age_ms: i64) -> rusqlite::Result<usize> {
    let by_age = conn.execute(
        "DELETE FROM events WHERE ts < ?1",
        [now.saturating_sub(max_age_ms)],
    )?;
    // Newest by id is newest written; callers' clocks may disagree, insertion order does not.
    let by_count = conn.execute(
        "DELETE FROM events WHERE id <= \
             (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        [max_rows],
    )?;
    if by_age + by_count > 0 {
        crate::store::release_free_pages(conn)?;
    }
    Ok(by_age + by_count)
}

impl Store {
    /// Appends an event. Every `prune_every`-th row (counted by row id, so it holds across
    /// processes and restarts) also prunes the log, with the event's time as "now".
    pub fn log_event(&mut self, event: &NewEvent) -> Result<EventId, StoreError> {
        let retention = self.options.event_retention;
        let every = i64::from(self.options.prune_every.max(1));
        let r = (|| {
            if event.kind.is_empty() {
                return Err(StoreError::Invalid("an event needs a kind".into()));
            }
            check_json("the event data", event.data_json.as_deref())?;
            let tx = self.conn.transaction()?;
            let id: i64 = tx
                .query_row(
                    "INSERT INTO events (instance_id, ts, kind, detail, data_json) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    params![
                        event.instance.map(|i| i.0),
                        event.ts,
                        event.kind,
                        event.detail,
                        event.data_json
                    ],
                    |r| r.get(0),
                )
                .map_err(|e| match event.instance {
                    Some(i) => missing_instance(e, i),
                    None => StoreError::Sqlite(e),
                })?;
            let pruned = if id % every == 0 {
                prune(&tx, event.ts, retention.max_rows, retention.max_age_ms)?
            } else {
                0
            };
            tx.commit()?;
            Ok((EventId(id), pruned))
        })();
        let (id, pruned) = self.check(r)?;
        if pruned > 0 {
            self.shrink();
        }
        Ok(id)
    }

    /// Enforces the retention policy now: drops events older than the age limit, then all but
    /// the newest `max_rows`. Returns how many rows were deleted.
    pub fn prune_events(&mut self, now: i64) -> Result<usize, StoreError> {
        let retention = self.options.event_retention;
        let r = (|| {
            let tx = self.conn.transaction()?;
            let n = prune(&tx, now, retention.max_rows, retention.max_age_ms)?;
            tx.commit()?;
            Ok(n)
        })();
        let n = self.check(r)?;
        if n > 0 {
            self.shrink();
        }
        Ok(n)
    }

    /// The newest events first, of one instance or (with `None`) of everything.
    pub fn events(
        &self,
        instance: Option<InstanceId>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let r = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT id, instance_id, ts, kind, detail, data_json FROM events \
                 WHERE ?1 IS NULL OR instance_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![instance.map(|i| i.0), limit], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })();
        self.check(r)
    }

    /// How many events the log holds.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.check(
            self.conn
                .query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(StoreError::from),
        )
    }
}

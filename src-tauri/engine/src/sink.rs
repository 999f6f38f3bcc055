//! The bounded channel events leave the engine through.
//!
//! Memory stays bounded whatever the consumer does: events a newer one supersedes (previews,
//! progress of a running job) are dropped when the channel is full and counted; everything else
//! (terminal states, connection changes, queue changes) waits for room, so it is never lost.

use crate::event::{Event, EventKind};
use comfy_model::InstanceId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    id: InstanceId,
    instance: String,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    pub(crate) fn new(
        id: InstanceId,
        instance: String,
        tx: mpsc::Sender<Event>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self {
            id,
            instance,
            tx,
            dropped,
        }
    }

    pub(crate) async fn send(&self, kind: EventKind) {
        let event = Event {
            ts: time::OffsetDateTime::now_utc(),
            instance_id: self.id,
            instance: self.instance.clone(),
            kind,
        };
        if event.kind.is_droppable() {
            if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            // A closed receiver means the host is gone; the supervisor is about to be stopped.
            let _ = self.tx.send(event).await;
        }
    }
}

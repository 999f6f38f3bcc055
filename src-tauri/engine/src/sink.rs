//! The bounded channel events leave the engine through.
//!
//! Memory stays bounded whatever the consumer does: events a newer one supersedes (previews,
//! progress of a running job) are dropped when the channel is full and counted; everything else
//! (terminal states, connection changes, queue changes) waits for room, so it is never lost.
//! The time spent waiting is added up: the supervisor does not read its socket meanwhile, so
//! that time must not count as the link's silence.

use crate::event::{Event, EventKind};
use comfy_model::InstanceId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    id: InstanceId,
    instance: String,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    /// Time spent waiting for room since the last [`EventSink::take_waited`].
    waited: Duration,
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
            waited: Duration::ZERO,
        }
    }

    pub(crate) async fn send(&mut self, kind: EventKind) {
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
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    let since = Instant::now();
                    // A closed receiver means the host is gone; the supervisor is about to be
                    // stopped.
                    let _ = self.tx.send(event).await;
                    self.waited += since.elapsed();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// How long sends waited for the host since the last call.
    pub(crate) fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }
}

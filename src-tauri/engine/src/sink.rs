//! The bounded channel events leave the engine through.
//!
//! Memory stays bounded whatever the consumer does: events a newer one supersedes (previews,
//! progress of a running job) are dropped when the channel is full and counted; everything else
//! (terminal states, connection changes, queue changes) waits for room, so it is never lost.
//! Previews are also bounded by number: each holds its image (up to 16 MiB), and while
//! [`MAX_PREVIEWS_QUEUED`] of an instance's previews wait in the channel, a new one is dropped.
//! The time spent waiting is added up: the supervisor does not read its socket meanwhile, so
//! that time must not count as the link's silence.

use crate::event::{Event, EventKind, InFlight};
use comfy_model::InstanceId;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// This instance's previews in the channel (sent, not yet received).
    previews: Arc<AtomicUsize>,
    /// Time spent waiting for room since the last [`EventSink::take_waited`].
    waited: Duration,
}

/// An instance's previews waiting in the channel, at most: a host that keeps up holds one at a
/// time, and a few more cover a burst.
pub(crate) const MAX_PREVIEWS_QUEUED: usize = 4;

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
            previews: Arc::default(),
            waited: Duration::ZERO,
        }
    }

    pub(crate) async fn send(&mut self, mut kind: EventKind) {
        if let EventKind::Preview(preview) = &mut kind {
            if self.previews.load(Ordering::Relaxed) >= MAX_PREVIEWS_QUEUED {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            preview.in_flight = InFlight::counted(&self.previews);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Preview;

    fn preview() -> EventKind {
        EventKind::Preview(Preview {
            prompt_id: None,
            node: None,
            mime: "image/png",
            width: None,
            height: None,
            bytes: 3,
            image: bytes::Bytes::from_static(b"png"),
            in_flight: InFlight::default(),
        })
    }

    #[tokio::test]
    async fn a_host_that_stops_reading_is_sent_only_a_few_previews() {
        let (tx, rx) = mpsc::channel(1024);
        let mut rx = crate::Events(rx);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut sink = EventSink::new(InstanceId(1), "gpu".into(), tx, dropped.clone());
        for _ in 0..10 {
            sink.send(preview()).await;
        }
        assert_eq!(rx.len(), MAX_PREVIEWS_QUEUED);
        assert_eq!(dropped.load(Ordering::Relaxed), 6);

        // A preview received frees its place, even while the host keeps it.
        let kept = rx.recv().await.expect("a preview");
        sink.send(preview()).await;
        assert_eq!(rx.len(), MAX_PREVIEWS_QUEUED);
        assert_eq!(dropped.load(Ordering::Relaxed), 6);
        sink.send(preview()).await;
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            7,
            "the channel holds four again"
        );

        // Other events are not counted.
        sink.send(EventKind::ProtocolError { detail: "x".into() })
            .await;
        assert_eq!(rx.len(), MAX_PREVIEWS_QUEUED + 1);
        let mut all = vec![kept];
        while let Ok(e) = rx.try_recv() {
            all.push(e);
        }
        assert_eq!(all.len(), MAX_PREVIEWS_QUEUED + 2);
        assert_eq!(sink.previews.load(Ordering::Relaxed), 0);
    }
}

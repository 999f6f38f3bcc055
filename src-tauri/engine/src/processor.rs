//! Frames in, events out: decoder + tracker, with no I/O.
//!
//! The live supervisor and the offline `replay` both drive a [`Processor`], so a recorded
//! session goes through exactly the code a live one does.

use crate::event::{EventKind, Preview};
use crate::tracker::{ActiveJob, Lookup, Millis, Request, Snapshot, Tracker, Update};
use comfy_protocol::{
    decode_binary, decode_text, image_size, BinaryFrame, PromptId, ServerFeatures, ServerMessage,
};

#[derive(Debug)]
pub struct Processor {
    tracker: Tracker,
    features: ServerFeatures,
    statuses: u64,
}

impl Processor {
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            tracker: Tracker::new(client_id),
            features: ServerFeatures::default(),
            statuses: 0,
        }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// How many `status` messages arrived so far: ComfyUI broadcasts one on every queue change,
    /// so a queue that changes while this stands still means the socket went deaf.
    pub fn statuses_seen(&self) -> u64 {
        self.statuses
    }

    /// A new socket: binary layouts are negotiated again.
    pub fn connected(&mut self, reconnect: bool) {
        self.features = ServerFeatures::default();
        if reconnect {
            self.tracker.reconnected();
        }
    }

    pub fn disconnected(&mut self) {
        self.tracker.disconnected();
    }

    /// One text frame. Undecodable frames become a `ProtocolError` event, never a failure.
    pub fn text(&mut self, frame: &str, now: Millis) -> (Vec<EventKind>, Vec<Request>) {
        match decode_text(frame) {
            Ok(msg) => {
                match &msg {
                    ServerMessage::FeatureFlags(flags) => {
                        self.features = ServerFeatures::from_flags(flags)
                    }
                    ServerMessage::Status { .. } => self.statuses += 1,
                    _ => {}
                }
                let (updates, requests) = self.tracker.apply_message(&msg, now);
                (events(updates), requests)
            }
            Err(e) => (
                vec![EventKind::ProtocolError {
                    detail: format!("text frame ({} bytes): {e}", frame.len()),
                }],
                Vec::new(),
            ),
        }
    }

    /// One binary frame. Preview events share the frame's buffer instead of copying the image.
    pub fn binary(&mut self, data: &bytes::Bytes) -> Vec<EventKind> {
        let frame = match decode_binary(data, &self.features) {
            Ok(f) => f,
            Err(e) => {
                return vec![EventKind::ProtocolError {
                    detail: format!("binary frame ({} bytes): {e}", data.len()),
                }]
            }
        };
        let updates = self.tracker.apply_binary(&frame);
        let mut out = Vec::with_capacity(updates.len());
        for u in updates {
            match (u, &frame) {
                (
                    Update::Preview { prompt_id, node },
                    BinaryFrame::Preview { format, image, .. },
                ) => {
                    let size = image_size(image);
                    out.push(EventKind::Preview(Preview {
                        prompt_id,
                        node,
                        mime: format.mime(),
                        width: size.map(|s| s.0),
                        height: size.map(|s| s.1),
                        bytes: image.len(),
                        image: data.slice_ref(image),
                    }));
                }
                (u, _) => out.extend(event(u)),
            }
        }
        out
    }

    pub fn snapshot(&mut self, snap: &Snapshot, now: Millis) -> (Vec<EventKind>, Vec<Request>) {
        let (updates, requests) = self.tracker.apply_snapshot(snap, now);
        (events(updates), requests)
    }

    pub fn expect(&mut self, item: &ActiveJob, now: Millis) -> Vec<EventKind> {
        events(self.tracker.expect_job(item, now))
    }

    pub fn settle(
        &mut self,
        expected: &PromptId,
        actual: Option<&PromptId>,
        now: Millis,
    ) -> Vec<EventKind> {
        events(self.tracker.settle_submission(expected, actual, now))
    }

    pub fn outcome(&mut self, id: &PromptId, lookup: Lookup, now: Millis) -> Vec<EventKind> {
        events(self.tracker.apply_outcome(id, lookup, now))
    }

    /// The clock moved: jobs whose estimate moved enough to publish again.
    pub fn tick(&mut self, now: Millis) -> Vec<EventKind> {
        events(self.tracker.tick(now))
    }
}

fn event(u: Update) -> Option<EventKind> {
    Some(match u {
        Update::Queue { running, pending } => EventKind::Queue { running, pending },
        Update::Job(j) => EventKind::Job(j),
        Update::Text {
            prompt_id,
            node,
            text,
        } => EventKind::Text {
            prompt_id,
            node,
            text,
        },
        Update::ServerEvent { kind, data } => EventKind::ServerEvent { kind, data },
        // Preview events need the frame's bytes; `Processor::binary` builds them.
        Update::Preview { .. } => return None,
    })
}

fn events(updates: Vec<Update>) -> Vec<EventKind> {
    updates.into_iter().filter_map(event).collect()
}

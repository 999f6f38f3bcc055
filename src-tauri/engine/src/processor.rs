//! Frames in, events out: decoder + tracker, with no I/O.
//!
//! The live supervisor and the offline `replay` both drive a [`Processor`], so a recorded
//! session goes through exactly the code a live one does.

use crate::event::{EventKind, Preview};
use crate::tracker::{ActiveJob, Lookup, Millis, Request, Snapshot, Tracker, Update};
use comfy_protocol::{
    decode_binary, decode_text, image_size, BinaryFrame, PromptId, ServerFeatures, ServerMessage,
};

/// The largest text frame decoded. ComfyUI's messages are kilobytes; a text frame is parsed into
/// a JSON tree several times its size, so a larger one is refused unread (live, the socket's
/// frame guard drops it before its payload is read; in a replay, here).
pub const MAX_TEXT_FRAME: usize = 8 << 20;
/// The largest binary frame: a full-size PNG from a `SaveImageWebsocket` node (a 4096² RGBA PNG
/// is at most about 64 MiB uncompressed), well past tungstenite's 16 MiB default.
pub const MAX_BINARY_FRAME: usize = 64 << 20;
/// The largest preview passed on, in bytes and in pixels. A host shows every preview it is
/// given, and a webview decodes an image of any declared size; ComfyUI's latent previews are
/// at most 512 px, and a `SaveImageWebsocket` image past these is an output, not a preview.
pub const MAX_PREVIEW_BYTES: usize = 16 << 20;
pub const MAX_PREVIEW_PIXELS: u64 = 4096 * 4096;
/// Streamed node text kept per message: the latest text of a node, cut from the front (what a
/// node streams last is what matters). Hosts bound a job's text of all nodes together.
pub const MAX_NODE_TEXT: usize = 64 << 10;

/// The last `MAX_NODE_TEXT` bytes of `text`, on a character boundary.
fn text_tail(text: &str) -> &str {
    if text.len() <= MAX_NODE_TEXT {
        return text;
    }
    let mut cut = text.len() - MAX_NODE_TEXT;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    &text[cut..]
}

#[derive(Debug)]
pub struct Processor {
    tracker: Tracker,
    features: ServerFeatures,
    statuses: u64,
    /// A preview over the limits was reported on this connection (once is enough).
    told_large_preview: bool,
}

impl Processor {
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            tracker: Tracker::new(client_id),
            features: ServerFeatures::default(),
            statuses: 0,
            told_large_preview: false,
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
        self.told_large_preview = false;
        if reconnect {
            self.tracker.reconnected();
        }
    }

    pub fn disconnected(&mut self) {
        self.tracker.disconnected();
    }

    /// One text frame. Undecodable frames become a `ProtocolError` event, never a failure.
    pub fn text(&mut self, frame: &str, now: Millis) -> (Vec<EventKind>, Vec<Request>) {
        if frame.len() > MAX_TEXT_FRAME {
            return (
                vec![too_large("text", frame.len(), MAX_TEXT_FRAME)],
                Vec::new(),
            );
        }
        match decode_text(frame) {
            Ok(mut msg) => {
                if let ServerMessage::ProgressText { text, .. } = &mut msg {
                    if text.len() > MAX_NODE_TEXT {
                        *text = text_tail(text).to_owned();
                    }
                }
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
        if data.len() > MAX_BINARY_FRAME {
            return vec![too_large("binary", data.len(), MAX_BINARY_FRAME)];
        }
        let frame = match decode_binary(data, &self.features) {
            Ok(BinaryFrame::Text {
                prompt_id,
                node,
                text,
            }) => BinaryFrame::Text {
                prompt_id,
                node,
                text: text_tail(text),
            },
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
                    // A webview decodes whatever it is given: an image whose size cannot be
                    // read could declare any.
                    let pixels = size.map(|(w, h)| u64::from(w) * u64::from(h));
                    if image.len() > MAX_PREVIEW_BYTES
                        || pixels.is_none_or(|p| p > MAX_PREVIEW_PIXELS)
                    {
                        if !std::mem::replace(&mut self.told_large_preview, true) {
                            out.push(large_preview(image.len(), size));
                        }
                        continue;
                    }
                    out.push(EventKind::Preview(Preview {
                        prompt_id,
                        node,
                        mime: format.mime(),
                        width: size.map(|s| s.0),
                        height: size.map(|s| s.1),
                        bytes: image.len(),
                        image: data.slice_ref(image),
                        in_flight: Default::default(),
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

fn too_large(kind: &str, len: usize, limit: usize) -> EventKind {
    EventKind::ProtocolError {
        detail: format!(
            "{kind} frame ({len} bytes) refused: over the {} MiB limit",
            limit >> 20
        ),
    }
}

fn large_preview(len: usize, size: Option<(u32, u32)>) -> EventKind {
    let size = size.map_or_else(
        || "size unreadable, ".to_owned(),
        |(w, h)| format!("{w}×{h} px, "),
    );
    EventKind::ProtocolError {
        detail: format!(
            "a preview ({size}{:.1} MiB) is not shown: previews over 4096×4096 px or {} MiB, \
             or whose size cannot be read, are dropped (said once per connection)",
            len as f64 / f64::from(1u32 << 20),
            MAX_PREVIEW_BYTES >> 20
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_frame_over_the_limit_is_refused_without_being_decoded() {
        let mut p = Processor::new("me");
        // Valid JSON of an unknown type: decoded, it would be a `server_event`.
        let huge = format!(r#"{{"type":"x","data":"{}"}}"#, "a".repeat(MAX_TEXT_FRAME));
        let (events, requests) = p.text(&huge, 0);
        assert!(requests.is_empty());
        match events.as_slice() {
            [EventKind::ProtocolError { detail }] => {
                assert!(detail.contains("over the 8 MiB limit"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        let (events, _) = p.text(r#"{"type":"x","data":{}}"#, 0);
        assert!(matches!(events.as_slice(), [EventKind::ServerEvent { .. }]));
    }

    /// A type-1 preview frame holding a PNG header that declares `w`×`h`, padded to `len`.
    fn png_preview(w: u32, h: u32, len: usize) -> bytes::Bytes {
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 2];
        frame.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR");
        frame.extend_from_slice(&w.to_be_bytes());
        frame.extend_from_slice(&h.to_be_bytes());
        frame.extend_from_slice(&[8, 6, 0, 0, 0]);
        frame.resize(len.max(frame.len()), 0);
        bytes::Bytes::from(frame)
    }

    #[test]
    fn previews_too_big_to_show_are_dropped_and_said_once_per_connection() {
        let mut p = Processor::new("me");
        let shown = p.binary(&png_preview(512, 512, 40_000));
        assert!(
            matches!(shown.as_slice(), [EventKind::Preview(pr)] if pr.width == Some(512)),
            "{shown:?}"
        );
        let wide = p.binary(&png_preview(8192, 4096, 1000));
        match wide.as_slice() {
            [EventKind::ProtocolError { detail }] => {
                assert!(detail.contains("8192×4096 px"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        // Said once: the next ones are dropped quietly, by size or by bytes.
        assert!(p.binary(&png_preview(8192, 4096, 1000)).is_empty());
        assert!(p
            .binary(&png_preview(64, 64, MAX_PREVIEW_BYTES + 100))
            .is_empty());
        // An image whose size cannot be read could declare any.
        let mut odd = vec![0, 0, 0, 1, 0, 0, 0, 2];
        odd.extend_from_slice(b"not an image header at all");
        assert!(p.binary(&bytes::Bytes::from(odd)).is_empty());
        // The largest allowed still passes.
        let edge = p.binary(&png_preview(4096, 4096, MAX_PREVIEW_BYTES));
        assert!(
            matches!(edge.as_slice(), [EventKind::Preview(_)]),
            "{edge:?}"
        );
        // A new connection says it again.
        p.connected(true);
        let again = p.binary(&png_preview(64, 64, MAX_PREVIEW_BYTES + 100));
        assert!(
            again.iter().any(
                |e| matches!(e, EventKind::ProtocolError { detail } if detail.contains("16 MiB"))
            ),
            "{again:?}"
        );
    }

    #[test]
    fn node_text_is_cut_to_its_latest_part_before_the_tracker_keeps_it() {
        let mut p = Processor::new("me");
        // One byte too long, the first cut falling inside the two bytes of 'é'.
        let long = format!("é{}the end", "a".repeat(MAX_NODE_TEXT - 8));
        let kept = format!("{}the end", "a".repeat(MAX_NODE_TEXT - 8));
        // Binary (type 3, no prompt id negotiated) and JSON `progress_text` alike.
        let mut frame = vec![0, 0, 0, 3, 0, 0, 0, 1, b'5'];
        frame.extend_from_slice(long.as_bytes());
        let from_binary = p.binary(&bytes::Bytes::from(frame));
        let json = serde_json::json!({
            "type": "progress_text",
            "data": {"node": "5", "text": long, "prompt_id": null}
        })
        .to_string();
        let (from_json, _) = p.text(&json, 0);
        for events in [from_binary, from_json] {
            let text = events
                .iter()
                .find_map(|e| match e {
                    EventKind::Text { text, .. } => Some(text.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{events:?}"));
            assert!(text == kept, "{} bytes kept", text.len());
        }
    }

    #[test]
    fn a_binary_frame_over_the_limit_is_refused() {
        let mut p = Processor::new("me");
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 1];
        frame.resize(MAX_BINARY_FRAME + 1, 0);
        match p.binary(&bytes::Bytes::from(frame)).as_slice() {
            [EventKind::ProtocolError { detail }] => {
                assert!(detail.contains("over the 64 MiB limit"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }
}

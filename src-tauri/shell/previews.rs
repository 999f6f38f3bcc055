//! The latest preview frame of every instance, and when to announce it.
//!
//! Only the latest frame is kept, so a webview that paints slowly simply skips frames and
//! nothing queues; each instance's rate cap decides how often a frame is announced (the last
//! frame of a burst is announced when its window passes). The `media:` scheme serves the bytes.

use bytes::Bytes;
use comfy_engine::Preview;
use comfy_model::InstanceId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value guarded here stays valid after a panic elsewhere.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One preview frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub mime: &'static str,
    pub bytes: Bytes,
}

/// A frame to announce to the webview as `seq`, with what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub instance: InstanceId,
    pub seq: u64,
    pub prompt_id: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// A kept frame the cap held back: announced when its instance's window has passed.
struct Held {
    due: Instant,
    prompt_id: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Default)]
struct PreviewState {
    next_seq: u64,
    latest: HashMap<InstanceId, Frame>,
    shown_at: HashMap<InstanceId, Instant>,
    held: HashMap<InstanceId, Held>,
    /// Each running instance's preview rate cap (frames per second; 0 turns previews off).
    caps: HashMap<InstanceId, u32>,
}

impl PreviewState {
    fn announce(
        &mut self,
        instance: InstanceId,
        prompt_id: Option<String>,
        width: Option<u32>,
        height: Option<u32>,
        now: Instant,
    ) -> Announced {
        self.next_seq += 1;
        self.shown_at.insert(instance, now);
        self.held.remove(&instance);
        Announced {
            instance,
            seq: self.next_seq,
            prompt_id,
            width,
            height,
        }
    }
}

/// The latest preview frame of every instance.
#[derive(Clone, Default)]
pub struct Previews(Arc<Mutex<PreviewState>>);

impl Previews {
    /// Keeps a frame as the instance's latest (`fps_cap` 0 turns previews off) and returns it
    /// to announce when the cap allows showing a frame now. A frame that comes too soon is still
    /// kept, so whoever loads the preview next gets the newest image, and it is announced when
    /// the window passes ([`Self::take_due`]) unless a newer one is announced first: the last
    /// frame of a burst is shown too.
    pub fn offer(
        &self,
        instance: InstanceId,
        preview: &Preview,
        fps_cap: u32,
        now: Instant,
    ) -> Option<Announced> {
        if fps_cap == 0 {
            return None;
        }
        let mut state = lock(&self.0);
        let interval = std::time::Duration::from_secs(1) / fps_cap;
        state.latest.insert(
            instance,
            Frame {
                mime: preview.mime,
                bytes: preview.image.clone(),
            },
        );
        let prompt_id = preview.prompt_id.as_ref().map(|p| p.as_str().to_owned());
        match state.shown_at.get(&instance) {
            Some(last) if now.duration_since(*last) < interval => {
                let due = *last + interval;
                state.held.insert(
                    instance,
                    Held {
                        due,
                        prompt_id,
                        width: preview.width,
                        height: preview.height,
                    },
                );
                None
            }
            _ => Some(state.announce(instance, prompt_id, preview.width, preview.height, now)),
        }
    }

    /// When the next held-back frame is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        lock(&self.0).held.values().map(|h| h.due).min()
    }

    /// The held-back frames whose windows have passed, to announce now.
    pub fn take_due(&self, now: Instant) -> Vec<Announced> {
        let mut state = lock(&self.0);
        let due: Vec<InstanceId> = state
            .held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(instance, _)| *instance)
            .collect();
        due.into_iter()
            .filter_map(|instance| {
                let h = state.held.remove(&instance)?;
                Some(state.announce(instance, h.prompt_id, h.width, h.height, now))
            })
            .collect()
    }

    pub fn latest(&self, instance: InstanceId) -> Option<Frame> {
        lock(&self.0).latest.get(&instance).cloned()
    }

    /// Sets an instance's preview rate cap (when it starts, and on every edit).
    pub fn set_cap(&self, instance: InstanceId, fps_cap: u32) {
        lock(&self.0).caps.insert(instance, fps_cap);
    }

    /// An instance's preview rate cap; 0 (no previews) for an instance not started.
    pub fn cap(&self, instance: InstanceId) -> u32 {
        lock(&self.0).caps.get(&instance).copied().unwrap_or(0)
    }

    pub fn forget(&self, instance: InstanceId) {
        let mut state = lock(&self.0);
        state.latest.remove(&instance);
        state.shown_at.remove(&instance);
        state.held.remove(&instance);
        state.caps.remove(&instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: InstanceId = InstanceId(1);
    const CPU: InstanceId = InstanceId(2);

    fn frame(bytes: &'static [u8], mime: &'static str, prompt: &str) -> Preview {
        Preview {
            prompt_id: Some(prompt.into()),
            node: None,
            mime,
            width: Some(64),
            height: Some(48),
            bytes: bytes.len(),
            image: Bytes::from_static(bytes),
            in_flight: Default::default(),
        }
    }

    #[test]
    fn only_the_latest_frame_is_kept_and_the_last_of_a_burst_is_announced_when_the_cap_allows() {
        let previews = Previews::default();
        let t0 = Instant::now();
        let ms = std::time::Duration::from_millis;
        let a = previews.offer(GPU, &frame(b"1", "image/jpeg", "p"), 10, t0);
        assert_eq!(a.map(|a| a.seq), Some(1));
        assert_eq!(previews.next_due(), None);
        // 10 fps: frames 30 and 50 ms later are not announced now, but the newest replaces the
        // kept one and is due when the window passes.
        assert_eq!(
            previews.offer(GPU, &frame(b"2", "image/jpeg", "p"), 10, t0 + ms(30)),
            None
        );
        assert_eq!(
            previews.offer(GPU, &frame(b"3", "image/png", "p"), 10, t0 + ms(50)),
            None
        );
        let latest = previews.latest(GPU).expect("kept");
        assert_eq!((latest.mime, &latest.bytes[..]), ("image/png", &b"3"[..]));
        assert_eq!(previews.next_due(), Some(t0 + ms(100)));
        assert!(previews.take_due(t0 + ms(99)).is_empty());
        let late = previews.take_due(t0 + ms(100));
        assert_eq!(
            late,
            [Announced {
                instance: GPU,
                seq: 2,
                prompt_id: Some("p".into()),
                width: Some(64),
                height: Some(48),
            }]
        );
        assert_eq!(previews.next_due(), None, "announced once");
        // A frame announced at once clears what was held.
        assert_eq!(
            previews.offer(GPU, &frame(b"4", "image/jpeg", "p"), 10, t0 + ms(150)),
            None
        );
        let b = previews.offer(GPU, &frame(b"5", "image/jpeg", "p"), 10, t0 + ms(200));
        assert_eq!(b.map(|b| b.seq), Some(3));
        assert_eq!(previews.next_due(), None);
        // A cap of 0 turns previews off.
        assert_eq!(
            previews.offer(CPU, &frame(b"x", "image/jpeg", "q"), 0, t0),
            None
        );
        assert!(previews.latest(CPU).is_none());
        previews.forget(GPU);
        assert!(previews.latest(GPU).is_none());
    }
}

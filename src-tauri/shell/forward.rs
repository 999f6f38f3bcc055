//! The event task: engine events in, overview updated, throttled updates out to the webview.

use crate::shell::events::Update;
use crate::shell::throttle::{progress_interval, ProgressThrottle};
use crate::shell::SharedOverview;
use comfy_engine::Event;
use tokio::sync::mpsc::Receiver;
use tokio::time::{sleep_until, Instant};

/// Runs until the engine is dropped (its event channel closes).
pub async fn forward(
    mut events: Receiver<Event>,
    overview: SharedOverview,
    mut emit: impl FnMut(Update),
) {
    let mut throttle = ProgressThrottle::new(progress_interval());
    loop {
        let due = throttle.next_due();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let update = overview.lock().apply(&event);
                if let Some(update) = update {
                    throttle.offer(update, Instant::now()).into_iter().for_each(&mut emit);
                }
            }
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                throttle.take_due(Instant::now()).into_iter().for_each(&mut emit);
            }
        }
    }
    // Whatever progress is still held is moot once the engine is gone.
}

//! What the tray and the desktop notifications say, decided without tauri: the notification
//! policy, the tray icon and its tooltip, and delivery by the platform's own notifications. The shell feeds engine events
//! in and puts the results on screen; nothing here imports tauri, owns a clock or a window.
//!
//! # The notification policy
//!
//! [`Policy`] is a pure state machine: [`Policy::apply`] takes an engine [`Event`](comfy_engine::Event) and the
//! time, [`Policy::tick`] fires timers, and both return the [`Notification`]s to show now.
//! [`Policy::next_deadline`] says when to tick next, so a host sleeps until then instead of
//! polling. The rules:
//!
//! - **Jobs.** A job that finished (first output image, workflow label or instance name,
//!   duration) or failed (node id, node type, exception message) notifies when its instance's
//!   switch is on. Jobs of other clients notify only when the instance opts in. A job stopped
//!   from outside notifies when `job_interrupted_by_other` is on, unless the host said it
//!   cancelled it ([`Policy::cancelled_by_us`]). A terminal state seen twice notifies once.
//!   The switches are `comfy_model::NotificationPrefs`, the same type the store keeps.
//! - **Rate limit.** After a job notification, more jobs of the same outcome on the same
//!   instance wait out [`Timing::coalesce_window`] and then go out as one "12 jobs finished on
//!   Local" that counts the whole burst and replaces the burst's popup (same key).
//! - **Queue drained.** When every connected instance's queue has stayed empty for
//!   [`Timing::drain_settle`] after at least [`Timing::drain_min_jobs`] jobs, one summary goes
//!   out. An instance that is down with work of its own holds it back.
//! - **Connections.** An outage starts when a connected instance goes down. "Disconnected" is
//!   told once, after [`Timing::disconnect_grace`]; a credentials rejection at once. The outage
//!   ends only after the instance has stayed up for [`Timing::recovery`], with one "back
//!   online" if anything was told, so a flapping link makes one notice each way. An instance
//!   never reached since start is no outage (a rejection still is).
//! - **Quiet.** A pause (for a while, or until resumed) and the "only when the window is not
//!   focused" option hold everything back. Job notices held back are dropped: they are old news
//!   when the quiet ends. Connection notices still true then are told then.
//!
//! # The tray
//!
//! [`TrayModel`] follows events into per-instance status, [`TrayState`] aggregates it (icon
//! state, running count, percent, ETA, when the queues are expected to be done, tooltip, menu
//! lines, whether notifications are paused), [`RepaintGate`] decides when to repaint, and
//! [`render_icon`] draws the RGBA icon: a glyph in the state's colour inside a progress ring.
//!
//! A job's percent and ETA are each a [`Figure`]: measured (the job's own progress, only for
//! jobs followed live) or estimated (the engine's `Estimate`, learned from the server's past
//! runs), never mixed up. A measured percent wins over an estimated one; an estimated ETA over a
//! measured one. Estimated figures read "≈ 42%" in the tooltip and the menu and draw a dashed
//! ring; a job past its usual run time with no measured percent says "longer than usual". The
//! tooltip's second line, "queue done ≈ 14:32", is the latest expected end over the busy
//! instances (each one's last pending job, else its running jobs), kept as an absolute time and
//! told in the local zone (a [`TimeZone`], from [`TimeZone::try_system`]), or in UTC saying so;
//! the menu ends its lines with it too, since Linux trays show no tooltip.
//!
//! # Delivery
//!
//! [`Deliver`] puts a notification on screen. [`DesktopNotifier`] does it with the platform's
//! own notifications and reports the actions users click through a channel: over D-Bus with
//! notify-rust on Linux and the BSDs (summary, body, the thumbnail as an `image-data` hint,
//! actions), as toasts on Windows, through the Notification Center on macOS; what each platform
//! shows, and what it does without, is tabled in `deliver.rs`. [`Recorder`] keeps them in
//! memory for tests.
//!
//! # A host's loop
//!
//! ```text
//! loop {
//!     select! {
//!         event = engine_events.recv() => {
//!             tray.apply(&event);
//!             for n in policy.apply(&event, Instant::now()) { show(n) }
//!         }
//!         _ = sleep_until(policy.next_deadline()) => for n in policy.tick(Instant::now()) { show(n) }
//!         _ = sleep_until(gate.retry_at()) => {}
//!         click = actions.recv() => open the dashboard or the folder
//!     }
//!     tray.set_paused(policy.paused(Instant::now()).is_some());
//!     let repaint = gate.check(&tray.state(), Instant::now());
//!     if repaint.icon { set_icon(render_icon(state.icon, state.percent, 32)) }
//!     if repaint.tooltip { set_tooltip(state.tooltip()) }
//!     if repaint.menu { set_menu(state.lines, state.paused) }
//! }
//! show(n) = fetch n.image through the engine, notification_image(bytes), deliverer.deliver(n, image)
//! ```
//!
//! Before cancelling a job the host calls [`Policy::cancelled_by_us`]; on focus changes,
//! [`Policy::set_focused`]; when the window is shown, [`TrayModel::mark_seen`]; before each
//! repaint, [`TrayModel::set_paused`] with what [`Policy::paused`] says.

mod deliver;
mod icon;
mod local_time;
mod notification;
mod policy;
mod tray;

pub use comfy_model::NotificationPrefs;
pub use deliver::{
    notification_image, ActionInvoked, BoxFuture, Deliver, DeliverError, DesktopNotifier, Recorded,
    Recorder, NOTIFICATION_IMAGE_SIDE, SOUND_NAME,
};
pub use icon::{render_icon, state_colour, PROGRESS, TRACK};
/// The zone the tray tells times in (`jiff`'s).
pub use jiff::tz::TimeZone;
pub use local_time::{local, wall_clock};
pub use notification::{clock, Action, ImageRef, Notification, NotificationKind};
pub use policy::{Pause, Policy, Settings, Timing};
pub use tray::{
    Figure, IconState, InstanceStatus, Repaint, RepaintGate, RunningJob, TrayModel, TrayState,
};

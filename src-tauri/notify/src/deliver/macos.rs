//! macOS notifications through notify-rust's Notification Center backend
//! (`NSUserNotificationCenter`, by mac-notification-sys).
//!
//! A notification names its app by bundle identifier, set once per process
//! ([`DesktopNotifier::with_app_id`]; see `sender`). It shows the summary, the body, the
//! thumbnail as its content image, the actions (one button, or an "Options" menu when there
//! are several; clicking the notification itself does what the first does) and the default
//! sound or none. Notifications cannot replace one another through this backend, so each is a
//! new one.
//!
//! Hearing a click means a thread blocked in mac-notification-sys until the user acts or
//! dismisses the notification, which may be much later (it stays in the Notification Center).
//! So at most [`LISTENED`] notifications are listened to at a time; past that a notification is
//! still shown, and its buttons do nothing. Those threads cannot be stopped: they end with the
//! user's answer, or with the process.

use super::image_file::ImageFiles;
use super::{chosen, sender, ActionInvoked, BoxFuture, Deliver, DeliverError, LISTENED};
use crate::notification::Notification;
use image::RgbaImage;
use notify_rust::NotificationResponse;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// The sound macOS plays for a notification by default.
const DEFAULT_SOUND: &str = "NSUserNotificationDefaultSoundName";

/// Terminal's bundle identifier, which every Mac knows: the stand-in for a binary outside an
/// app bundle.
const STAND_IN: &str = "com.apple.Terminal";

/// mac-notification-sys takes the app's bundle identifier once per process.
static APPLICATION: OnceLock<()> = OnceLock::new();

/// Notifications through the Notification Center. Needs a tokio runtime, and the main thread
/// running the app's run loop (as Tauri's does), which delivers the clicks.
#[derive(Debug)]
pub struct DesktopNotifier {
    bundle_id: String,
    actions: mpsc::Sender<ActionInvoked>,
    images: Arc<ImageFiles>,
    /// How many notifications are being listened to for a click now.
    listening: Arc<AtomicUsize>,
}

impl DesktopNotifier {
    /// Actions users click arrive on the receiver. `app_name` is not used here: a notification
    /// shows its bundle's name.
    pub fn new(app_name: &str) -> (Self, mpsc::Receiver<ActionInvoked>) {
        let _ = app_name;
        let (tx, rx) = mpsc::channel(16);
        let notifier = Self {
            bundle_id: STAND_IN.to_owned(),
            actions: tx,
            images: Arc::default(),
            listening: Arc::default(),
        };
        (notifier, rx)
    }

    /// The bundle identifier notifications are shown under: the app's, when it runs from its
    /// `.app` bundle; otherwise Terminal's, so they still show.
    pub fn with_app_id(mut self, identifier: &str) -> Self {
        if std::env::current_exe().is_ok_and(|exe| sender::in_app_bundle(&exe)) {
            self.bundle_id = identifier.to_owned();
        } else {
            tracing::info!(
                "not run from an app bundle: notifications are shown as Terminal's, not {identifier}"
            );
        }
        self
    }

    async fn show(&self, n: Notification, image: Option<RgbaImage>) -> Result<(), DeliverError> {
        let (bundle_id, images) = (self.bundle_id.clone(), self.images.clone());
        let listen = !n.actions.is_empty() && claim(&self.listening);
        let (key, actions) = (n.key.clone(), n.actions.clone());
        let handle = tokio::task::spawn_blocking(move || {
            APPLICATION.get_or_init(|| {
                if let Err(error) = notify_rust::set_application(&bundle_id) {
                    tracing::warn!(%error, bundle_id, "notifications keep macOS's default sender");
                }
            });
            let image = image.map(|img| images.write(&img)).transpose()?;
            let mut dn = notify_rust::Notification::new();
            dn.summary(&n.summary).body(&n.body);
            if n.sound {
                dn.sound_name(DEFAULT_SOUND);
            }
            if let Some(path) = &image {
                dn.image_path(&path.to_string_lossy());
            }
            for a in &n.actions {
                dn.action(a.id(), a.label());
            }
            // With this backend showing never fails: the handle sends when it is waited on,
            // or when it is dropped (without listening).
            let handle = dn.show().map_err(|e| DeliverError::Task(e.to_string()))?;
            Ok::<_, DeliverError>(listen.then_some(handle))
        })
        .await
        .map_err(|e| DeliverError::Task(e.to_string()))
        .and_then(|shown| shown);
        let handle = match handle {
            Ok(Some(handle)) => handle,
            Ok(None) => return Ok(()),
            Err(error) => {
                if listen {
                    self.listening.fetch_sub(1, Ordering::Relaxed);
                }
                return Err(error);
            }
        };
        let (tx, listening) = (self.actions.clone(), self.listening.clone());
        // Not awaited: it returns when the user acts on the notification.
        drop(tokio::task::spawn_blocking(move || {
            let answered = handle.wait_for_response(|response: &NotificationResponse| {
                let action = match response {
                    NotificationResponse::Default => chosen(&actions, None),
                    NotificationResponse::Action(id) => chosen(&actions, Some(id)),
                    _ => None,
                };
                if let Some(action) = action {
                    if tx.try_send(ActionInvoked { key, action }).is_err() {
                        tracing::warn!("notification action dropped: nobody is reading");
                    }
                }
            });
            if let Err(error) = answered {
                tracing::warn!(%error, "the Notification Center refused a notification");
            }
            listening.fetch_sub(1, Ordering::Relaxed);
        }));
        Ok(())
    }
}

/// Takes one of the [`LISTENED`] listening places, if one is free.
fn claim(listening: &AtomicUsize) -> bool {
    listening
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < LISTENED).then_some(n + 1)
        })
        .is_ok()
}

impl Deliver for DesktopNotifier {
    fn deliver(
        &self,
        notification: Notification,
        image: Option<RgbaImage>,
    ) -> BoxFuture<'_, Result<(), DeliverError>> {
        Box::pin(self.show(notification, image))
    }
}

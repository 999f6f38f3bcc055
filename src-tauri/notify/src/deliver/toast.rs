//! Windows toasts, through tauri-winrt-notification: the toast backend notify-rust uses on
//! Windows, called directly so that a click is sent on the channel from the toast's own
//! callback, with no thread parked per toast waiting for it (notify-rust's handle waits on a
//! blocking receive).
//!
//! A toast names its app by AppUserModelID ([`DesktopNotifier::with_app_id`]; see `sender`).
//! It shows the summary as its title, the body, the thumbnail below the text, a button per
//! action (clicking the toast itself does what the first does), and the default toast sound or
//! none. Clicks are answered while the app runs. Toasts cannot replace one another here (the
//! crate sets a toast's tag only for progress toasts), so each notification is a new toast.

use super::image_file::ImageFiles;
use super::{chosen, sender, ActionInvoked, BoxFuture, Deliver, DeliverError};
use crate::notification::Notification;
use image::RgbaImage;
use std::sync::Arc;
use tauri_winrt_notification::{Duration, Sound, Toast};
use tokio::sync::mpsc;

/// Windows toasts. Needs a tokio runtime (showing one is blocking COM work, done off the async
/// threads).
#[derive(Debug)]
pub struct DesktopNotifier {
    app_id: String,
    actions: mpsc::Sender<ActionInvoked>,
    images: Arc<ImageFiles>,
}

impl DesktopNotifier {
    /// Actions users click arrive on the receiver. `app_name` is not used here: a toast shows
    /// the name registered with its app id.
    pub fn new(app_name: &str) -> (Self, mpsc::Receiver<ActionInvoked>) {
        let _ = app_name;
        let (tx, rx) = mpsc::channel(16);
        let notifier = Self {
            app_id: Toast::POWERSHELL_APP_ID.to_owned(),
            actions: tx,
            images: Arc::default(),
        };
        (notifier, rx)
    }

    /// The AppUserModelID toasts are shown under: the app's identifier, which Tauri's
    /// installers register on its Start-menu shortcut. A binary run from cargo's output folder
    /// keeps PowerShell's, which Windows always knows, so its toasts still show.
    pub fn with_app_id(mut self, identifier: &str) -> Self {
        let from_cargo = std::env::current_exe().is_ok_and(|exe| sender::built_by_cargo(&exe));
        if from_cargo {
            tracing::info!(
                "run from cargo's output folder: toasts are shown as PowerShell's, not {identifier}"
            );
        } else {
            self.app_id = identifier.to_owned();
        }
        self
    }

    async fn show(&self, n: Notification, image: Option<RgbaImage>) -> Result<(), DeliverError> {
        let (app_id, images, tx) = (
            self.app_id.clone(),
            self.images.clone(),
            self.actions.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let image = image.map(|img| images.write(&img)).transpose()?;
            let mut toast = Toast::new(&app_id)
                .title(&n.summary)
                .text1(&n.body)
                .duration(Duration::Short)
                .sound(n.sound.then_some(Sound::Default));
            if let Some(path) = &image {
                toast = toast.image(path, "");
            }
            for a in &n.actions {
                toast = toast.add_button(a.label(), a.id());
            }
            let (key, actions) = (n.key, n.actions);
            toast
                .on_activated(move |clicked| {
                    if let Some(action) = chosen(&actions, clicked.as_deref()) {
                        let invoked = ActionInvoked {
                            key: key.clone(),
                            action,
                        };
                        if tx.try_send(invoked).is_err() {
                            tracing::warn!("notification action dropped: nobody is reading");
                        }
                    }
                    Ok(())
                })
                .show()
                .map_err(DeliverError::Toast)
        })
        .await
        .map_err(|e| DeliverError::Task(e.to_string()))?
    }
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

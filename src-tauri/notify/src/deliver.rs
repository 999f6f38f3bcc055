//! Putting notifications on screen. [`Deliver`] is the seam the shell codes against;
//! [`DesktopNotifier`] is the platform's own notifier, one type with one `new` everywhere:
//! on Linux and the BSDs the freedesktop notification protocol over D-Bus through notify-rust
//! (its pure-Rust zbus backend), on Windows toasts (`toast`), on macOS the Notification Center
//! through notify-rust (`macos`). [`Recorder`] keeps them in memory for tests and is never a
//! platform's notifier.
//!
//! What each platform shows of a [`Notification`]:
//!
//! | | Linux/BSD (D-Bus) | Windows (toast) | macOS (Notification Center) |
//! | --- | --- | --- | --- |
//! | summary, body | yes (body markup escaped when the server reads it) | yes | yes |
//! | thumbnail | `image-data` hint | a temporary PNG, shown below the text | a temporary PNG, the content image |
//! | actions | buttons, and the notification itself | buttons, and the toast itself | one button, or an "Options" menu of them, and the notification itself; clicks are listened for on at most 32 at a time |
//! | sound | the theme's `message-new-instant`, or silence asked for | the default toast sound, or silent | the default sound, or none |
//! | same key replaces | yes (`replaces_id`) | no: a new toast each time | no: a new notification each time |
//!
//! Where a platform lacks a part, the rest is still shown: no image, no buttons, or a new
//! notification instead of a replaced one; the text always carries the news.

use crate::notification::{Action, Notification};
use image::RgbaImage;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[cfg(all(unix, not(target_os = "macos")))]
    #[error("no notification server answered: {0}")]
    Bus(#[source] notify_rust::error::Error),
    #[cfg(windows)]
    #[error("Windows refused the toast: {0}")]
    Toast(#[source] tauri_winrt_notification::Error),
    #[error("the notification image is unusable: {0}")]
    Image(String),
    #[error("cannot decode the thumbnail: {0}")]
    Thumbnail(#[source] image::ImageError),
    #[error("the notification task failed: {0}")]
    Task(String),
}

/// Shows notifications. `image` is the thumbnail named by [`Notification::image`], already
/// fetched and decoded by the host (see [`notification_image`]).
pub trait Deliver: Send + Sync {
    fn deliver(
        &self,
        notification: Notification,
        image: Option<RgbaImage>,
    ) -> BoxFuture<'_, Result<(), DeliverError>>;
}

/// A user clicked an action (or the notification itself, which counts as its first action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInvoked {
    /// The [`Notification::key`] it was shown with.
    pub key: String,
    pub action: Action,
}

/// Largest side of an image sent in a notification.
pub const NOTIFICATION_IMAGE_SIDE: u32 = 128;
const MAX_DECODE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Decodes PNG or JPEG bytes (the engine's thumbnails, or an original) into an RGBA image no
/// larger than [`NOTIFICATION_IMAGE_SIDE`]. Decoding is bounded like the engine's thumbnails.
pub fn notification_image(bytes: &[u8]) -> Result<RgbaImage, DeliverError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DeliverError::Image(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(DeliverError::Thumbnail)?;
    let img = if img.width() > NOTIFICATION_IMAGE_SIDE || img.height() > NOTIFICATION_IMAGE_SIDE {
        img.thumbnail(NOTIFICATION_IMAGE_SIDE, NOTIFICATION_IMAGE_SIDE)
    } else {
        img
    };
    Ok(img.into_rgba8())
}

/// A notification as a [`Recorder`] got it.
pub type Recorded = (Notification, Option<RgbaImage>);

/// Keeps every notification in memory: a [`Deliver`] for hosts' tests.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    shown: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    pub fn shown(&self) -> Vec<Recorded> {
        lock(&self.shown).clone()
    }
}

impl Deliver for Recorder {
    fn deliver(
        &self,
        notification: Notification,
        image: Option<RgbaImage>,
    ) -> BoxFuture<'_, Result<(), DeliverError>> {
        lock(&self.shown).push((notification, image));
        Box::pin(async { Ok(()) })
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain data: use it anyway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sound played with a notification that asks for one: the freedesktop sound theme's
/// name for a new message, which every desktop's theme has.
pub const SOUND_NAME: &str = "message-new-instant";

/// The action a click means: `None` is the notification itself, which does what its first
/// button does; otherwise the button with that [`Action::id`]. Anything else (a dismissal's
/// name, an unknown id) means none.
fn chosen(actions: &[Action], clicked: Option<&str>) -> Option<Action> {
    match clicked {
        None => actions.first(),
        Some(id) => actions.iter().find(|a| a.id() == id),
    }
    .cloned()
}

/// Notifications shown recently whose actions are still listened for. Older ones are let go
/// (their buttons stop answering): on D-Bus each holds a connection, on macOS a thread.
const LISTENED: usize = 32;

#[cfg(windows)]
mod toast;
#[cfg(windows)]
pub use toast::DesktopNotifier;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::DesktopNotifier;

/// Thumbnails as files, for the platforms whose notifications take an image by path.
#[cfg(any(windows, target_os = "macos", test))]
mod image_file;
/// Who a notification is shown as, on the platforms that name the app by an identifier.
#[cfg(any(windows, target_os = "macos", test))]
mod sender;

#[cfg(all(unix, not(target_os = "macos")))]
pub use desktop::DesktopNotifier;

#[cfg(all(unix, not(target_os = "macos")))]
mod desktop {
    use super::*;
    use crate::notification::NotificationKind;
    use notify_rust::{Hint, NotificationResponse};
    use std::collections::VecDeque;
    use tokio::sync::{mpsc, OnceCell};
    use tokio::task::AbortHandle;

    /// The freedesktop category hint for each kind, which some servers use for icons and sounds.
    fn category(kind: NotificationKind) -> &'static str {
        match kind {
            NotificationKind::JobDone | NotificationKind::QueueDrained => "transfer.complete",
            NotificationKind::JobFailed | NotificationKind::JobInterrupted => "transfer.error",
            NotificationKind::Disconnected | NotificationKind::AuthFailed => "network.error",
            NotificationKind::BackOnline => "network.connected",
        }
    }

    /// Escapes the characters the notification body markup reads.
    fn escape_markup(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
        }
        out
    }

    /// Notifications over the session bus.
    ///
    /// Each notification is sent with notify-rust, whose handle keeps its own D-Bus connection;
    /// a task per notification waits on it for an action (some servers, such as dunst, send
    /// `ActionInvoked` only to the connection that sent `Notify`) and reports it on the
    /// channel [`new`](Self::new) returns. A notification with the key of one still listened for
    /// replaces it on screen (`replaces_id`). Needs a tokio runtime. Dropping the notifier stops
    /// the listening tasks.
    #[derive(Debug)]
    pub struct DesktopNotifier {
        app_name: String,
        icon: String,
        desktop_entry: Option<String>,
        actions: mpsc::Sender<ActionInvoked>,
        server: OnceCell<Server>,
        shown: Mutex<VecDeque<Shown>>,
    }

    /// What the server said about itself, asked once.
    #[derive(Debug)]
    struct Server {
        markup: bool,
    }

    #[derive(Debug)]
    struct Shown {
        key: String,
        id: u32,
        listener: AbortHandle,
    }

    impl DesktopNotifier {
        /// `app_name` is shown by the server; actions users click arrive on the receiver.
        pub fn new(app_name: &str) -> (Self, mpsc::Receiver<ActionInvoked>) {
            let (tx, rx) = mpsc::channel(16);
            let notifier = Self {
                app_name: app_name.to_owned(),
                icon: String::new(),
                desktop_entry: None,
                actions: tx,
                server: OnceCell::new(),
                shown: Mutex::new(VecDeque::new()),
            };
            (notifier, rx)
        }

        /// An icon name from the theme, or a file path, shown beside the text.
        pub fn with_icon(mut self, icon: &str) -> Self {
            self.icon = icon.to_owned();
            self
        }

        /// The desktop file's name without `.desktop`, so the server groups our notifications
        /// under the app.
        pub fn with_desktop_entry(mut self, entry: &str) -> Self {
            self.desktop_entry = Some(entry.to_owned());
            self
        }

        /// Asks the server's capabilities once. notify-rust reads the server's spec version
        /// (which names the image hint) on first use through a blocking call of its own, so
        /// that happens here too, off the async threads.
        async fn server(&self) -> Result<&Server, DeliverError> {
            self.server
                .get_or_try_init(|| async {
                    let caps = tokio::task::spawn_blocking(|| {
                        let caps = notify_rust::get_capabilities();
                        let _ = &*notify_rust::SPEC_VERSION;
                        caps
                    })
                    .await
                    .map_err(|e| DeliverError::Task(e.to_string()))?
                    .map_err(DeliverError::Bus)?;
                    Ok(Server {
                        markup: caps.iter().any(|c| c == "body-markup"),
                    })
                })
                .await
        }

        fn replaced_id(&self, key: &str) -> Option<u32> {
            lock(&self.shown)
                .iter()
                .find(|s| s.key == key)
                .map(|s| s.id)
        }

        fn remember(&self, shown: Shown) {
            let mut all = lock(&self.shown);
            all.retain(|s| {
                let same = s.key == shown.key;
                if same {
                    s.listener.abort();
                }
                !same
            });
            if all.len() >= LISTENED {
                if let Some(old) = all.pop_front() {
                    old.listener.abort();
                }
            }
            all.push_back(shown);
        }

        async fn show(
            &self,
            n: Notification,
            image: Option<RgbaImage>,
        ) -> Result<(), DeliverError> {
            let server = self.server().await?;
            let mut dn = notify_rust::Notification::new();
            dn.appname(&self.app_name)
                .summary(&n.summary)
                .body(&if server.markup {
                    escape_markup(&n.body)
                } else {
                    n.body.clone()
                })
                .hint(Hint::Category(category(n.kind).to_owned()));
            if !self.icon.is_empty() {
                dn.icon(&self.icon);
            }
            if let Some(entry) = &self.desktop_entry {
                dn.hint(Hint::DesktopEntry(entry.clone()));
            }
            // The desktop's own sound for a new message (the freedesktop sound theme's name),
            // or silence: a server that plays a sound by itself is asked not to.
            if n.sound {
                dn.sound_name(SOUND_NAME);
            } else {
                dn.hint(Hint::SuppressSound(true));
            }
            if let Some(img) = image {
                let img = notify_rust::Image::try_from(img)
                    .map_err(|e| DeliverError::Image(e.to_string()))?;
                dn.image_data(img);
            }
            // Clicking the notification itself does what its first button does.
            if let Some(first) = n.actions.first() {
                dn.action("default", first.label());
            }
            for a in &n.actions {
                dn.action(a.id(), a.label());
            }
            if let Some(id) = self.replaced_id(&n.key) {
                dn.id(id);
            }
            let handle = dn.show_async().await.map_err(DeliverError::Bus)?;
            let id = handle.id();
            let (tx, key, actions) = (self.actions.clone(), n.key.clone(), n.actions);
            let listener = tokio::spawn(async move {
                handle
                    .wait_for_action_async(|response: &NotificationResponse| {
                        let action = match response {
                            NotificationResponse::Default => chosen(&actions, None),
                            NotificationResponse::Action(name) => chosen(&actions, Some(name)),
                            _ => None,
                        };
                        if let Some(action) = action {
                            let invoked = ActionInvoked { key, action };
                            if tx.try_send(invoked).is_err() {
                                tracing::warn!("notification action dropped: nobody is reading");
                            }
                        }
                    })
                    .await;
            });
            self.remember(Shown {
                key: n.key,
                id,
                listener: listener.abort_handle(),
            });
            Ok(())
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

    impl Drop for DesktopNotifier {
        fn drop(&mut self) {
            for s in lock(&self.shown).drain(..) {
                s.listener.abort();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn markup_characters_are_escaped() {
            assert_eq!(
                escape_markup("a < b && c > d"),
                "a &lt; b &amp;&amp; c &gt; d"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::NotificationKind;

    #[test]
    fn a_click_on_the_notification_means_its_first_action() {
        let show = Action::Show {
            instance: None,
            prompt_id: None,
        };
        let open = Action::OpenFolder {
            instance: "Local".into(),
            file: comfy_protocol::http::OutputFile {
                filename: "a.png".into(),
                subfolder: String::new(),
                kind: "output".into(),
            },
        };
        let actions = [show.clone(), open.clone()];
        assert_eq!(chosen(&actions, None), Some(show));
        assert_eq!(chosen(&actions, Some("open-folder")), Some(open));
        assert_eq!(chosen(&actions, Some("__closed")), None);
        assert_eq!(chosen(&[], None), None);
    }

    #[test]
    fn large_images_are_shrunk_for_the_notification() {
        let img = RgbaImage::from_pixel(600, 300, image::Rgba([1, 2, 3, 255]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let small = notification_image(&png).unwrap();
        assert_eq!(small.dimensions(), (128, 64));
        assert!(matches!(
            notification_image(b"not an image"),
            Err(DeliverError::Image(_) | DeliverError::Thumbnail(_))
        ));
    }

    #[tokio::test]
    async fn the_recorder_keeps_what_it_was_given() {
        let r = Recorder::default();
        let n = Notification {
            key: "k".into(),
            kind: NotificationKind::JobDone,
            instance: None,
            summary: "s".into(),
            body: "b".into(),
            image: None,
            actions: vec![],
            jobs: 1,
            sound: false,
        };
        r.deliver(n.clone(), None).await.unwrap();
        assert_eq!(r.shown(), [(n, None)]);
    }
}

//! A tiny notification server: owns `org.freedesktop.Notifications` on the bus it is given,
//! records every `Notify` call as it arrived on the wire, and emits `ActionInvoked` on demand.

use std::collections::HashMap;
use tokio::sync::mpsc;
use zbus::{OwnedVariant, Variant};

pub const PATH: &str = "/org/freedesktop/Notifications";
pub const NAME: &str = "org.freedesktop.Notifications";

/// The `image-data` hint, decoded: `(iiibiiay)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageData {
    pub width: i32,
    pub height: i32,
    pub rowstride: i32,
    pub alpha: bool,
    pub bits_per_sample: i32,
    pub channels: i32,
    pub data: Vec<u8>,
}

/// One `Notify` call.
#[derive(Debug, Clone)]
pub struct NotifyCall {
    /// The unique bus name of the connection that sent it.
    pub sender: String,
    pub id: u32,
    pub app_name: String,
    pub replaces_id: u32,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
    pub hint_names: Vec<String>,
    pub category: Option<String>,
    pub sound_name: Option<String>,
    pub image: Option<ImageData>,
}

struct Server {
    calls: mpsc::UnboundedSender<NotifyCall>,
    next_id: u32,
}

fn image_data(v: &Variant<'_>) -> Option<ImageData> {
    let Variant::Structure(s) = v else {
        return None;
    };
    let f = s.fields();
    let int = |i: usize| match f.get(i) {
        Some(Variant::I32(n)) => Some(*n),
        _ => None,
    };
    let data = match f.get(6) {
        Some(Variant::Array(a)) => a
            .iter()
            .map(|b| match b {
                Variant::U8(b) => Some(*b),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?,
        _ => return None,
    };
    Some(ImageData {
        width: int(0)?,
        height: int(1)?,
        rowstride: int(2)?,
        alpha: matches!(f.get(3), Some(Variant::Bool(true))),
        bits_per_sample: int(4)?,
        channels: int(5)?,
        data,
    })
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        #[zbus(header)] header: zbus::message::Header<'_>,
        app_name: String,
        replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        let id = if replaces_id > 0 {
            replaces_id
        } else {
            self.next_id += 1;
            self.next_id
        };
        let mut hint_names: Vec<String> = hints.keys().cloned().collect();
        hint_names.sort();
        let category = match hints.get("category").map(|v| &**v) {
            Some(Variant::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        let sound_name = match hints.get("sound-name").map(|v| &**v) {
            Some(Variant::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        let call = NotifyCall {
            sender: header.sender().map(|s| s.to_string()).unwrap_or_default(),
            id,
            app_name,
            replaces_id,
            summary,
            body,
            actions,
            hint_names,
            category,
            sound_name,
            image: hints.get("image-data").and_then(|v| image_data(v)),
        };
        let _ = self.calls.send(call);
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        ["actions", "body", "body-markup", "body-images"]
            .map(String::from)
            .to_vec()
    }

    /// Spec 1.2: notify-rust names the image hint `image-data` for it.
    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "fake".into(),
            "comfy-monitor tests".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

/// The running server: its connection, and the calls it records.
pub struct FakeServer {
    conn: zbus::Connection,
}

impl FakeServer {
    pub async fn start(address: &str) -> zbus::Result<(Self, mpsc::UnboundedReceiver<NotifyCall>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = zbus::connection::Builder::address(address)
            .serve_at(
                PATH,
                Server {
                    calls: tx,
                    next_id: 0,
                },
            )
            .name(NAME)
            .build()
            .await?;
        Ok((Self { conn }, rx))
    }

    /// What a server does when the user clicks: a broadcast `ActionInvoked(id, key)`.
    pub async fn invoke(&self, id: u32, action: &str) -> zbus::Result<()> {
        self.conn
            .emit_signal(
                None::<zbus::names::BusName<'_>>,
                PATH,
                NAME,
                "ActionInvoked",
                &(id, action),
            )
            .await
    }
}

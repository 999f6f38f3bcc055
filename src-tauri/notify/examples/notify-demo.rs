//! Shows one "job finished" notification with a thumbnail and actions on the session bus, then
//! the burst's count in its place, and prints the action clicked (if any within 10 s).
//! `scripts/notify-test --screenshot FILE` runs it against dunst under Xvfb.

use comfy_notify::{Action, Deliver, DesktopNotifier, ImageRef, Notification, NotificationKind};
use comfy_protocol::http::OutputFile;
use image::{Rgba, RgbaImage};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (notifier, mut actions) = DesktopNotifier::new("comfy-monitor");
    let file = OutputFile {
        filename: "portrait_00001_.png".into(),
        subfolder: String::new(),
        kind: "output".into(),
    };
    let done = Notification {
        key: "done/Local/demo".into(),
        kind: NotificationKind::JobDone,
        instance: Some("Local".into()),
        summary: "portrait.json finished".into(),
        body: "on Local · took 1:23 · 4 outputs".into(),
        image: Some(ImageRef {
            instance: "Local".into(),
            file: file.clone(),
        }),
        actions: vec![
            Action::Show {
                instance: Some("Local".into()),
                prompt_id: Some("demo".into()),
            },
            Action::OpenFolder {
                instance: "Local".into(),
                file,
            },
        ],
        jobs: 1,
        sound: false,
    };
    let thumb = RgbaImage::from_fn(96, 96, |x, y| {
        Rgba([(x * 255 / 95) as u8, (y * 255 / 95) as u8, 180, 255])
    });
    notifier.deliver(done.clone(), Some(thumb.clone())).await?;
    println!("shown: {}", done.summary);
    let burst = Notification {
        summary: "12 jobs finished on Local".into(),
        body: "Latest: portrait.json · took 0:42".into(),
        jobs: 12,
        ..done
    };
    notifier.deliver(burst.clone(), Some(thumb)).await?;
    println!("replaced by: {}", burst.summary);
    match tokio::time::timeout(Duration::from_secs(10), actions.recv()).await {
        Ok(Some(a)) => println!("action: {:?} on {}", a.action, a.key),
        _ => println!("no action clicked"),
    }
    Ok(())
}

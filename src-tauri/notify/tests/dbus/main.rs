//! Delivery observed on a real D-Bus: a private `dbus-daemon`, a fake notification server on
//! it, and [`DesktopNotifier`] talking to it through notify-rust, whose calls are checked as they
//! arrived (summary, body, the `image-data` hint, actions), with a click sent back.
//!
//! notify-rust finds the bus only through `DBUS_SESSION_BUS_ADDRESS`, so the scenario runs in a
//! child process given the private bus's address; this process's environment is never changed
//! (and a developer's real desktop never sees a popup). Without `dbus-daemon` the test is
//! reported as ignored, with the reason.

mod fake_server;

use comfy_notify::{
    Action, ActionInvoked, Deliver, DesktopNotifier, ImageRef, Notification, NotificationKind,
};
use comfy_protocol::http::OutputFile;
use fake_server::{FakeServer, NotifyCall};
use futures_util::StreamExt;
use image::{Rgba, RgbaImage};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;

const TEST: &str = "delivery_over_a_private_session_bus";
/// Set in the child: the scenario runs there.
const CHILD: &str = "COMFY_NOTIFY_DBUS_CHILD";

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST}: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    println!();
    if !filters.is_empty() && !filters.iter().any(|f| TEST.contains(f.as_str())) {
        println!("running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    let Some(daemon) = find_program("dbus-daemon") else {
        println!("test {TEST} ... ignored, dbus-daemon not found (apt-get install dbus-daemon)");
        println!("\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n");
        return ExitCode::SUCCESS;
    };
    let passed = match PrivateBus::start(&daemon) {
        Ok(bus) => run_child(&bus.address),
        Err(e) => {
            println!("could not start a private dbus-daemon: {e}");
            false
        }
    };
    let (word, p, f) = if passed {
        ("ok", 1, 0)
    } else {
        ("FAILED", 0, 1)
    };
    println!("test {TEST} ... {word}");
    println!(
        "\ntest result: {word}. {p} passed; {f} failed; 0 ignored; 0 measured; 0 filtered out\n"
    );
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A `dbus-daemon` of our own, on a socket in a temporary folder; killed on drop.
struct PrivateBus {
    daemon: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    fn start(program: &Path) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )?;
        let mut daemon = Command::new(program)
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // It complains about fd limits it may not raise; failures show in the scenario.
            .stderr(Stdio::null())
            .spawn()?;
        // The daemon prints its address once it listens.
        let mut line = String::new();
        if let Some(out) = daemon.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let address = line.trim().to_owned();
        if address.is_empty() {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Err(std::io::Error::other("dbus-daemon printed no address"));
        }
        Ok(Self {
            daemon,
            address,
            _dir: dir,
        })
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn run_child(address: &str) -> bool {
    let status = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .env(CHILD, "1")
            .env("DBUS_SESSION_BUS_ADDRESS", address)
            .stdin(Stdio::null())
            .status()
    });
    match status {
        Ok(s) => s.success(),
        Err(e) => {
            println!("could not run the scenario: {e}");
            false
        }
    }
}

fn child() -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), scenario())
            .await
            .expect("the scenario did not finish within a minute")
    });
    ExitCode::SUCCESS
}

/// Every `AddMatch` call on the bus, as (sender, rule), seen through a monitor connection.
async fn watch_add_match(address: &str) -> mpsc::UnboundedReceiver<(String, String)> {
    let conn = zbus::connection::Builder::address(address)
        .build()
        .await
        .expect("a monitor connection");
    let mut stream = zbus::MessageStream::from(&conn);
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::MethodCall)
        .interface("org.freedesktop.DBus")
        .member("AddMatch")
        .build()
        .expect("a match rule");
    zbus::fdo::MonitoringProxy::new(&conn)
        .await
        .expect("the monitoring proxy")
        .become_monitor(&[rule], 0)
        .await
        .expect("a monitor");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _conn = conn;
        while let Some(Ok(msg)) = stream.next().await {
            let header = msg.header();
            if header.member().map(|m| m.as_str()) != Some("AddMatch") {
                continue;
            }
            let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
            if let Ok(rule) = msg.body().deserialize::<String>() {
                let _ = tx.send((sender, rule));
            }
        }
    });
    rx
}

/// Waits until `sender` listens for `NotificationClosed`: notify-rust subscribes to it last, so
/// its listener is then about to read signals.
async fn listening(add_matches: &mut mpsc::UnboundedReceiver<(String, String)>, sender: &str) {
    while let Some((who, rule)) = add_matches.recv().await {
        if who == sender && rule.contains("NotificationClosed") {
            return;
        }
    }
    panic!("the monitor stopped");
}

/// Clicks `action` and returns what the notifier reported. notify-rust opens its message
/// stream just after its `AddMatch` returns, so a signal sent at that very moment can pass
/// before it: then the click is sent again, a bounded number of times, and the retry is said.
async fn click(
    server: &FakeServer,
    id: u32,
    action: &str,
    reported: &mut mpsc::Receiver<ActionInvoked>,
) -> ActionInvoked {
    for attempt in 1..=10 {
        server.invoke(id, action).await.expect("ActionInvoked sent");
        match tokio::time::timeout(Duration::from_secs(2), reported.recv()).await {
            Ok(Some(invoked)) => return invoked,
            Ok(None) => panic!("the action channel closed"),
            Err(_) => println!("click {attempt} on {action:?} unanswered; sending it again"),
        }
    }
    panic!("the click on {action:?} was never reported");
}

fn output(name: &str) -> OutputFile {
    OutputFile {
        filename: name.to_owned(),
        subfolder: "batch".to_owned(),
        kind: "output".to_owned(),
    }
}

async fn next_call(calls: &mut mpsc::UnboundedReceiver<NotifyCall>) -> NotifyCall {
    calls.recv().await.expect("a Notify call")
}

async fn scenario() {
    let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("the private bus's address");
    let (server, mut calls) = FakeServer::start(&address)
        .await
        .expect("the fake server owns org.freedesktop.Notifications");
    let mut add_matches = watch_add_match(&address).await;
    let (notifier, mut reported) = DesktopNotifier::new("comfy-monitor");
    let notifier = notifier.with_desktop_entry("comfy-monitor");

    // A finished job, with its thumbnail and both actions.
    let show = Action::Show {
        instance: Some("Local".into()),
        prompt_id: Some("p1".into()),
    };
    let open = Action::OpenFolder {
        instance: "Local".into(),
        file: output("a.png"),
    };
    let done = Notification {
        key: "done/Local/1".into(),
        kind: NotificationKind::JobDone,
        instance: Some("Local".into()),
        summary: "Job finished on Local".into(),
        body: "took 1:23 · <2> outputs & more".into(),
        image: Some(ImageRef {
            instance: "Local".into(),
            file: output("a.png"),
        }),
        actions: vec![show.clone(), open.clone()],
        jobs: 1,
        sound: false,
    };
    let thumb = RgbaImage::from_fn(8, 6, |x, y| Rgba([x as u8 * 30, y as u8 * 40, 200, 255]));
    notifier
        .deliver(done.clone(), Some(thumb.clone()))
        .await
        .expect("delivered");
    let call = next_call(&mut calls).await;
    assert_eq!(call.app_name, "comfy-monitor");
    assert_eq!(call.replaces_id, 0);
    assert_eq!(call.summary, "Job finished on Local");
    assert_eq!(
        call.body, "took 1:23 · &lt;2&gt; outputs &amp; more",
        "escaped for a server that reads markup"
    );
    assert_eq!(
        call.actions,
        [
            "default",
            "Show job",
            "show",
            "Show job",
            "open-folder",
            "Open folder"
        ]
    );
    assert_eq!(call.category.as_deref(), Some("transfer.complete"));
    // No sound asked for: the server is asked for silence.
    assert!(call.hint_names.iter().any(|h| h == "suppress-sound"));
    assert_eq!(call.sound_name, None);
    assert!(
        call.hint_names.iter().any(|h| h == "desktop-entry"),
        "{:?}",
        call.hint_names
    );
    let image = call.image.clone().expect("an image-data hint");
    assert_eq!(
        (
            image.width,
            image.height,
            image.rowstride,
            image.alpha,
            image.bits_per_sample,
            image.channels
        ),
        (8, 6, 32, true, 8, 4)
    );
    assert_eq!(
        image.data,
        thumb.as_raw().as_slice(),
        "the pixels, unchanged"
    );

    // The user clicks "Open folder".
    listening(&mut add_matches, &call.sender).await;
    let invoked = click(&server, call.id, "open-folder", &mut reported).await;
    assert_eq!(
        invoked,
        ActionInvoked {
            key: "done/Local/1".into(),
            action: open
        }
    );

    // The burst's count replaces the popup; a click on its body means its first action.
    let burst = Notification {
        summary: "3 jobs finished on Local".into(),
        body: "Latest: job p3".into(),
        image: None,
        jobs: 3,
        sound: true,
        ..done
    };
    notifier.deliver(burst, None).await.expect("delivered");
    let again = next_call(&mut calls).await;
    assert_eq!(again.replaces_id, call.id, "same key, same popup");
    assert_eq!(again.summary, "3 jobs finished on Local");
    assert!(again.image.is_none());
    assert!(!again.hint_names.iter().any(|h| h.contains("image")));
    assert_eq!(
        again.sound_name.as_deref(),
        Some(comfy_notify::SOUND_NAME),
        "the desktop's sound, asked for"
    );
    assert!(!again.hint_names.iter().any(|h| h == "suppress-sound"));
    listening(&mut add_matches, &again.sender).await;
    let invoked = click(&server, again.id, "default", &mut reported).await;
    assert_eq!(invoked.action, show);

    println!(
        "notifications seen on the bus: {:?}, {:?}",
        call.summary, again.summary
    );
}

//! The policy fed by the real engine watching a fake ComfyUI over real sockets: each enabled
//! event makes exactly one notification. The engine runs in real time; the policy's clock is
//! virtual and moves only when the script says "the user waits", so grace periods and settle
//! times need no sleeps and cannot race.

use comfy_engine::Events;
use comfy_engine::{ConnectionState, Engine, Event, EventKind, InstanceSpec, JobState};
use comfy_notify::{
    Action, Notification, NotificationKind, NotificationPrefs, Policy, Settings, Timing,
};
use fake_comfyui::{FakeAuth, FakeComfy, FakeConfig};
use serde_json::json;
use std::time::{Duration, Instant};

/// Failure guard only: the script waits for events, never for time.
const GUARD: Duration = Duration::from_secs(60);
const CLIENT: &str = "cm-notify";

/// A host as the shell would be: engine events into the policy, notifications collected.
struct Host {
    rx: Events,
    policy: Policy,
    now: Instant,
    shown: Vec<Notification>,
    queue_empty: bool,
    /// Connection changes seen, for a failure's message.
    links: Vec<String>,
}

impl Host {
    fn apply(&mut self, e: &Event) {
        match &e.kind {
            EventKind::Queue { running, pending } => {
                self.queue_empty = running.is_empty() && pending.is_empty();
            }
            EventKind::Connection(c) => self.links.push(format!("{:?}: {}", c.state, c.detail)),
            _ => {}
        }
        let out = self.policy.apply(e, self.now);
        self.shown.extend(out);
    }

    /// Feeds events to the policy until one matches.
    async fn until(&mut self, what: &str, mut f: impl FnMut(&Event) -> bool) -> Event {
        let found = tokio::time::timeout(GUARD, async {
            while let Some(e) = self.rx.recv().await {
                self.apply(&e);
                if f(&e) {
                    return Some(e);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(e)) => e,
            _ => panic!(
                "no event: {what}; links: {:#?}; shown so far: {:#?}",
                self.links, self.shown
            ),
        }
    }

    async fn link(&mut self, state: ConnectionState) {
        self.until(
            &format!("{state:?}"),
            |e| matches!(&e.kind, EventKind::Connection(c) if c.state == state),
        )
        .await;
    }

    async fn job(&mut self, id: &str, state: JobState) {
        self.until(&format!("{id} {state:?}"), |e| {
            matches!(&e.kind, EventKind::Job(j) if j.prompt_id.as_str() == id && j.state == state)
        })
        .await;
    }

    async fn queue_drained(&mut self) {
        if !self.queue_empty {
            self.until("an empty queue", |e| {
                matches!(&e.kind, EventKind::Queue { running, pending } if running.is_empty() && pending.is_empty())
            })
            .await;
        }
    }

    /// The user waits: virtual time passes and the policy's timers fire.
    fn wait(&mut self, d: Duration) {
        self.now += d;
        let out = self.policy.tick(self.now);
        self.shown.extend(out);
    }

    fn kinds(&self) -> Vec<NotificationKind> {
        self.shown.iter().map(|n| n.kind).collect()
    }
}

fn sampler(steps: u32, delay_ms: u32, prefix: &str) -> serde_json::Value {
    json!({
        "1": {"class_type": "MonitorTestSampler", "inputs": {"steps": steps, "step_delay_ms": delay_ms, "preview_size": 32, "seed": 7}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}
    })
}

fn failing() -> serde_json::Value {
    json!({
        "1": {"class_type": "MonitorTestFail", "inputs": {"steps": 4, "fail_after": 2, "step_delay_ms": 5, "preview_size": 32, "seed": 7}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "f"}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_enabled_event_notifies_exactly_once_in_a_scripted_run() {
    use NotificationKind::*;
    let server = FakeComfy::start(FakeConfig {
        step_delay: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts");
    let mut spec = InstanceSpec::new("Local", &server.base_url()).expect("a spec");
    spec.client_id = CLIENT.into();
    let (engine, rx) = Engine::new(4096);
    let local = engine.add_instance(spec).expect("instance added");
    let settings = Settings {
        instances: [(
            "Local".to_owned(),
            NotificationPrefs {
                job_interrupted_by_other: true,
                ..NotificationPrefs::default()
            },
        )]
        .into(),
        ..Settings::default()
    };
    let timing = Timing::default();
    let mut host = Host {
        rx,
        policy: Policy::with_timing(settings, timing),
        now: Instant::now(),
        shown: Vec::new(),
        queue_empty: true,
        links: Vec::new(),
    };
    host.link(ConnectionState::Connected).await;
    server.wait_for_client(Some(CLIENT)).await;

    // Our job finishes; our next one fails.
    let ok = server.submit(sampler(3, 5, "ok"), Some(CLIENT));
    host.job(&ok, JobState::Success).await;
    let bad = server.submit(failing(), Some(CLIENT));
    host.job(&bad, JobState::Error).await;
    assert_eq!(host.kinds(), [JobDone, JobFailed]);
    let done = &host.shown[0];
    assert_eq!(done.summary, "Job finished on Local");
    let image = done.image.as_ref().expect("the output image");
    assert!(image.file.filename.starts_with("ok"), "{image:?}");
    assert!(done.actions.contains(&Action::Show {
        instance: Some("Local".into()),
        prompt_id: Some(ok.as_str().into())
    }));
    assert!(
        host.shown[1].body.contains("MonitorTestFail (node 1)"),
        "{}",
        host.shown[1].body
    );

    // A browser's job stays silent: other clients are opt-in.
    let theirs = server.submit(sampler(3, 5, "theirs"), Some("browser"));
    host.job(&theirs, JobState::Success).await;

    // A job we cancel is not news; one stopped from elsewhere is.
    let ours = server.submit(sampler(10_000, 10, "long"), Some(CLIENT));
    host.job(&ours, JobState::Running).await;
    host.policy.cancelled_by_us("Local", &ours.as_str().into());
    engine
        .cancel(local, &ours.as_str().into())
        .await
        .expect("cancelled");
    host.job(&ours, JobState::Interrupted).await;
    let stopped = server.submit(sampler(10_000, 10, "stopped"), Some(CLIENT));
    host.job(&stopped, JobState::Running).await;
    let r = reqwest::Client::new()
        .post(format!("{}/interrupt", server.base_url()))
        .json(&json!({}))
        .send()
        .await
        .expect("interrupt sent");
    assert!(r.status().is_success());
    host.job(&stopped, JobState::Interrupted).await;
    assert_eq!(host.kinds(), [JobDone, JobFailed, JobInterrupted]);

    // Everything is idle after the batch: one "queue drained", once.
    host.queue_drained().await;
    host.wait(timing.drain_settle);
    host.wait(Duration::from_secs(60));
    assert_eq!(
        host.kinds(),
        [JobDone, JobFailed, JobInterrupted, QueueDrained]
    );
    assert_eq!(
        host.shown[3].body,
        "All jobs are done: 1 finished, 1 failed."
    );

    // A restart that is over at once is no outage.
    server.restart().await;
    // Reconnecting, or unreachable when the probe lands mid-restart.
    host.until(
        "the drop",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state != ConnectionState::Connected),
    )
    .await;
    host.link(ConnectionState::Connected).await;
    host.wait(timing.recovery);
    assert_eq!(host.shown.len(), 4, "{:#?}", host.shown);
    // The engine says "connected" before the fake has registered the socket it would cut.
    server.wait_for_client(Some(CLIENT)).await;

    // A real outage: one "disconnected" past the grace period, whatever the retries, and one
    // "back online" once it has stayed up.
    server.set_down(true);
    host.link(ConnectionState::Unreachable).await;
    host.wait(timing.disconnect_grace);
    host.link(ConnectionState::Unreachable).await;
    host.wait(Duration::from_secs(60));
    server.set_down(false);
    host.link(ConnectionState::Connected).await;
    host.wait(timing.recovery);
    assert_eq!(
        host.kinds(),
        [
            JobDone,
            JobFailed,
            JobInterrupted,
            QueueDrained,
            Disconnected,
            BackOnline
        ]
    );

    // The server starts wanting a password: told at once, once.
    server.wait_for_client(Some(CLIENT)).await;
    server.set_auth(Some(FakeAuth::Bearer("secret".into())));
    server.drop_sockets();
    host.link(ConnectionState::AuthFailed).await;
    host.wait(Duration::from_secs(600));
    assert_eq!(
        host.kinds(),
        [
            JobDone,
            JobFailed,
            JobInterrupted,
            QueueDrained,
            Disconnected,
            BackOnline,
            AuthFailed
        ]
    );
    engine.shutdown().await;
}

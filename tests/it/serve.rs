//! `comfy-monitor serve` against the fake over real sockets, with a real SQLite file and a real
//! HTTP receiver for its webhooks: what it journals, what /metrics says, each webhook's body and
//! signature, retries with backoff, and that a receiver that never answers costs monitoring
//! nothing.

use crate::live::{failing, fake, sampler, GUARD};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use comfy_app::webhooks::{HookFormat, HookTarget, Retry, SIGNATURE_HEADER};
use comfy_app::Profile;
use comfy_cli::serve::{self, Running, ServeOptions};
use comfy_model::JobState;
use comfy_store::NewInstance;
use fake_comfyui::{FakeComfy, ServerVersion};
use hmac::{Hmac, Mac};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
    /// Answers 503 to this many requests first.
    fail_first: Arc<AtomicUsize>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let _ = r.tx.send(Received {
        headers,
        body: body.to_vec(),
    });
    let failing = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A real HTTP receiver on a free port: every request it gets, in order.
async fn receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        tx,
        fail_first: Arc::new(AtomicUsize::new(fail_first)),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// A receiver that takes connections and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/hook")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, what: &str) -> Received {
    tokio::time::timeout(GUARD, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no webhook: {what}"))
        .expect("the receiver runs")
}

/// Requests until one whose JSON `event` is `event`.
async fn next_event(rx: &mut mpsc::UnboundedReceiver<Received>, event: &str) -> Received {
    loop {
        let r = next(rx, event).await;
        if r.json()["event"] == event {
            return r;
        }
    }
}

fn target(url: &str, secret: Option<&str>) -> HookTarget {
    HookTarget {
        url: url.parse().unwrap(),
        format: HookFormat::Json,
        secret: secret.map(|s| Arc::from(s.as_bytes().to_vec())),
        instances: None,
    }
}

fn quick_retry() -> Retry {
    Retry {
        attempts: 4,
        first: Duration::from_millis(20),
        max: Duration::from_millis(80),
        timeout: Duration::from_secs(10),
    }
}

struct Rig {
    server: FakeComfy,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Self {
        let server = fake(ServerVersion::V0_26).await;
        let dir = tempfile::tempdir().unwrap();
        let profile = self::profile(&dir);
        // Only the fake: a new profile's "Local" (127.0.0.1:8188) is not running here.
        let local = profile.instance_named("Local").unwrap();
        profile.remove_instance(local.id).unwrap();
        profile
            .add_instance(
                &NewInstance::new("gpu \"one\"", server.base_url()),
                &Default::default(),
                1,
            )
            .unwrap();
        Self { server, dir }
    }

    fn profile(&self) -> Profile {
        profile(&self.dir)
    }

    async fn serve(&self, options: ServeOptions) -> Running {
        serve::start(self.profile(), options)
            .await
            .expect("serve starts")
    }
}

fn profile(dir: &tempfile::TempDir) -> Profile {
    Profile::open_with_secrets_file(&dir.path().join("db"), &dir.path().join("secrets")).unwrap()
}

async fn scrape(running: &Running) -> String {
    let addr = running.metrics_addr.expect("metrics are served");
    let answer = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    answer.text().await.unwrap()
}

/// The value of one series in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (name, v) = l.rsplit_once(' ')?;
        (name == series).then(|| v.parse().expect("a number"))
    })
}

fn verify(secret: &str, r: &Received) {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&r.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r.header(SIGNATURE_HEADER), format!("sha256={expected}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_journals_every_job_posts_signed_webhooks_and_serves_metrics() {
    let rig = Rig::new().await;
    let (url, mut rx) = receiver(0).await;
    let running = rig
        .serve(ServeOptions {
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            webhooks: vec![target(&url, Some("s3cret"))],
            ..ServeOptions::default()
        })
        .await;
    // Before any job: the instance is there, with its name escaped.
    let first = scrape(&running).await;
    assert!(
        first.contains("# TYPE comfyui_job_duration_seconds histogram"),
        "{first}"
    );
    assert!(first.contains(r#"instance="gpu \"one\"""#), "{first}");

    // Two jobs from another client (a browser), one that fails.
    let ok: Vec<String> = (0..2)
        .map(|i| {
            rig.server
                .submit(sampler(3, 5, &format!("s{i}")), Some("browser"))
        })
        .collect();
    let bad = rig.server.submit(failing(), Some("browser"));
    let mut ended = std::collections::HashMap::new();
    let mut drained = false;
    let mut received = 0;
    while ended.len() < 3 || !drained {
        let r = next(&mut rx, "three job endings and the queue drained").await;
        received += 1;
        verify("s3cret", &r);
        let body = r.json();
        assert_eq!(
            r.header("X-Comfy-Monitor-Event"),
            body["event"].as_str().unwrap()
        );
        assert_eq!(
            r.header("X-Comfy-Monitor-Delivery"),
            body["id"].as_str().unwrap()
        );
        drained |= body["event"] == "queue.drained";
        if let Some(id) = body["job"]["prompt_id"].as_str() {
            ended.insert(id.to_owned(), body);
        }
    }
    for id in &ok {
        let body = &ended[id];
        assert_eq!(body["event"], "job.finished", "{body}");
        assert_eq!(body["instance"], "gpu \"one\"");
        assert_eq!(body["job"]["origin"], "other");
        assert_eq!(body["job"]["outputs"][0]["type"], "output", "{body}");
    }
    assert_eq!(ended[&bad]["event"], "job.failed");
    assert!(ended[&bad]["job"]["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));

    let m = scrape(&running).await;
    let i = r#"instance="gpu \"one\"""#;
    assert_eq!(value(&m, &format!("comfyui_up{{{i}}}")), Some(1.0), "{m}");
    assert_eq!(
        value(
            &m,
            &format!(r#"comfyui_jobs_finished_total{{{i},outcome="success"}}"#)
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &format!(r#"comfyui_jobs_finished_total{{{i},outcome="error"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, &format!("comfyui_queue_pending{{{i}}}")),
        Some(0.0)
    );
    assert_eq!(
        value(&m, &format!("comfyui_queue_running{{{i}}}")),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            &format!(r#"comfyui_job_duration_seconds_count{{{i},outcome="success"}}"#)
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &format!(r#"comfyui_job_duration_seconds_bucket{{{i},outcome="success",le="+Inf"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&m, &format!("comfyui_queue_wait_seconds_count{{{i}}}")),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("comfyui_reconnects_total{{{i}}}")),
        Some(0.0)
    );
    // The fake reports one device with its memory.
    assert!(m.contains("comfyui_gpu_memory_total_bytes{"), "{m}");
    assert!(
        value(&m, r#"comfy_monitor_webhooks_total{result="failed"}"#) == Some(0.0),
        "{m}"
    );
    // No prompt id is a label.
    for id in ok.iter().chain([&bad]) {
        assert!(!m.contains(id.as_str()), "{id} in the metrics");
    }

    let stats = running.hook_stats.clone();
    running.stop().await;
    // Every post the receiver took is counted as delivered, and nothing else.
    while rx.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(stats.delivered.load(Ordering::Relaxed), received);
    // The journal has every ending, as the app would have written it.
    let profile = rig.profile();
    let rec = profile.instance_named("gpu \"one\"").unwrap();
    let jobs = comfy_app::jobs::history(&profile, Some(rec.id), 10, 0).unwrap();
    let state = |id: &str| jobs.iter().find(|j| j.prompt_id == id).map(|j| j.state);
    assert_eq!(state(&ok[0]), Some(JobState::Success));
    assert_eq!(state(&ok[1]), Some(JobState::Success));
    assert_eq!(state(&bad), Some(JobState::Error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_same_delivery_again_until_it_takes_it() {
    let rig = Rig::new().await;
    let (url, mut rx) = receiver(2).await;
    let running = rig
        .serve(ServeOptions {
            webhooks: vec![target(&url, None)],
            retry: quick_retry(),
            ..ServeOptions::default()
        })
        .await;
    let id = rig.server.submit(sampler(2, 5, "r"), Some("browser"));
    let attempts: Vec<Received> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(next(&mut rx, "three attempts").await);
        }
        v
    };
    let ids: Vec<&str> = attempts
        .iter()
        .map(|r| r.header("X-Comfy-Monitor-Delivery"))
        .collect();
    assert!(
        ids.iter().all(|d| *d == ids[0]),
        "one delivery, tried three times: {ids:?}"
    );
    assert!(
        attempts[0].headers.get(SIGNATURE_HEADER).is_none(),
        "no secret, no signature"
    );
    let stats = running.hook_stats.clone();
    // The job's end and the queue drained (in either order): the first one retried, both
    // delivered.
    let event = |r: &Received| r.json()["event"].as_str().unwrap_or_default().to_owned();
    let mut finished = attempts[2].json()["job"]["prompt_id"] == id.as_str();
    let mut drained = event(&attempts[2]) == "queue.drained";
    while !(finished && drained) {
        let r = next(&mut rx, "the job's end and the queue drained").await;
        finished |= r.json()["job"]["prompt_id"] == id.as_str();
        drained |= event(&r) == "queue.drained";
    }
    running.stop().await;
    assert_eq!(stats.retried.load(Ordering::Relaxed), 2);
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 2);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_costs_monitoring_nothing() {
    let rig = Rig::new().await;
    let (url, mut rx) = receiver(0).await;
    let dead = black_hole().await;
    let running = rig
        .serve(ServeOptions {
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            // The dead one first: the live one is not held up behind it.
            webhooks: vec![
                target(&dead, None),
                target("http://127.0.0.1:9/closed", None),
                target(&url, None),
            ],
            retry: Retry {
                timeout: Duration::from_secs(600),
                ..quick_retry()
            },
            ..ServeOptions::default()
        })
        .await;
    let ids: Vec<String> = (0..5)
        .map(|i| {
            rig.server
                .submit(sampler(2, 2, &format!("d{i}")), Some("browser"))
        })
        .collect();
    let mut finished = std::collections::HashSet::new();
    while finished.len() < ids.len() {
        let r = next(&mut rx, "five jobs finished").await;
        if let Some(id) = r.json()["job"]["prompt_id"].as_str() {
            finished.insert(id.to_owned());
        }
    }
    let m = scrape(&running).await;
    assert_eq!(
        value(
            &m,
            r#"comfyui_jobs_finished_total{instance="gpu \"one\"",outcome="success"}"#
        ),
        Some(5.0),
        "{m}"
    );
    // Stopping does not wait on the dead receiver past its grace.
    tokio::time::timeout(GUARD, running.stop())
        .await
        .expect("serve stops with a receiver that never answers");
    let profile = rig.profile();
    let rec = profile.instance_named("gpu \"one\"").unwrap();
    let jobs = comfy_app::jobs::history(&profile, Some(rec.id), 10, 0).unwrap();
    for id in &ids {
        assert!(
            jobs.iter()
                .any(|j| &j.prompt_id == id && j.state == JobState::Success),
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_past_the_grace_is_posted_down_then_back_and_counted_as_a_reconnect() {
    let rig = Rig::new().await;
    let (url, mut rx) = receiver(0).await;
    let (ntfy_url, mut ntfy) = receiver(0).await;
    let mut ntfy_target = target(&ntfy_url, None);
    ntfy_target.format = HookFormat::Ntfy;
    let running = rig
        .serve(ServeOptions {
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            webhooks: vec![target(&url, None), ntfy_target],
            down_grace: Duration::from_millis(300),
            ..ServeOptions::default()
        })
        .await;
    // Connected, and idle: a first job proves it (nothing is posted for the start itself).
    rig.server.submit(sampler(2, 2, "u"), Some("browser"));
    next_event(&mut rx, "job.finished").await;
    rig.server.set_down(true);
    let down = next_event(&mut rx, "instance.down").await;
    assert_eq!(down.json()["summary"], "gpu \"one\" is down");
    rig.server.set_down(false);
    let back = next_event(&mut rx, "instance.back").await;
    assert!(
        back.json()["down_for_s"].as_f64().is_some_and(|s| s >= 0.3),
        "{}",
        back.json()
    );
    let m = scrape(&running).await;
    assert_eq!(
        value(&m, r#"comfyui_reconnects_total{instance="gpu \"one\""}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, r#"comfyui_up{instance="gpu \"one\""}"#),
        Some(1.0)
    );

    // The same events as ntfy's plain text.
    let mut titles = Vec::new();
    while titles.len() < 4 {
        let r = next(&mut ntfy, "ntfy posts").await;
        assert!(r.header("content-type").starts_with("text/plain"));
        let text = String::from_utf8(r.body.clone()).unwrap();
        assert_eq!(text.lines().next(), Some(r.header("Title")));
        titles.push((r.header("Title").to_owned(), r.header("Tags").to_owned()));
    }
    assert!(
        titles
            .iter()
            .any(|(t, tags)| t == "gpu \"one\" is down" && tags == "warning"),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|(t, _)| t == "gpu \"one\" is back"),
        "{titles:?}"
    );
    running.stop().await;
}

#[test]
fn serve_refuses_bad_options_with_a_clear_error() {
    let parse = |argv: &[&str]| {
        let mut all = vec!["comfy-monitor", "serve"];
        all.extend_from_slice(argv);
        comfy_cli::run_from(all).expect("a subcommand")
    };
    // Each is refused before anything starts (exit status 1, the reason on stderr).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    let db = db.to_str().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().to_string();
    for argv in [
        vec!["--db", db, "--metrics", "nonsense"],
        vec!["--db", db, "--webhook", "ftp://x/y"],
        vec![
            "--db",
            db,
            "--webhook-secret-env",
            "COMFY_MONITOR_TEST_UNSET_VAR",
            "--webhook",
            "http://127.0.0.1:1/",
        ],
        vec!["--db", db, "--instance", "no such instance"],
        // A port in use is refused before anything connects.
        vec!["--db", db, "--metrics", &taken],
    ] {
        assert_eq!(parse(&argv), std::process::ExitCode::from(1), "{argv:?}");
    }
    assert_eq!(
        serve::metrics_addr("9464").unwrap(),
        "127.0.0.1:9464".parse().unwrap(),
        "a bare port is loopback"
    );
    assert_eq!(
        serve::metrics_addr(":9464").unwrap(),
        "127.0.0.1:9464".parse().unwrap()
    );
    assert_eq!(
        serve::metrics_addr("0.0.0.0:9464").unwrap(),
        "0.0.0.0:9464".parse().unwrap()
    );
    let t = comfy_app::webhooks::parse_target("ntfy+https://ntfy.sh/studio", None).unwrap();
    assert_eq!(
        (t.format, t.url.as_str()),
        (HookFormat::Ntfy, "https://ntfy.sh/studio")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instances_own_webhook_gets_that_instances_events_only() {
    let rig = Rig::new().await;
    let (url, mut rx) = receiver(0).await;
    let profile = rig.profile();
    // A second instance on the same server sees the same job; only the first posts to its hook.
    profile
        .add_instance(
            &NewInstance::new("twin", rig.server.base_url()),
            &Default::default(),
            2,
        )
        .unwrap();
    let own = profile.instance_named("gpu \"one\"").unwrap();
    assert!(
        profile.set_webhook(own.id, Some("ftp://nope/")).is_err(),
        "checked before it is saved"
    );
    profile.set_webhook(own.id, Some(&url)).unwrap();
    let running = rig.serve(ServeOptions::default()).await;
    let id = rig.server.submit(sampler(2, 2, "own"), Some("browser"));
    let finished = next_event(&mut rx, "job.finished").await;
    assert_eq!(finished.json()["instance"], "gpu \"one\"");
    assert_eq!(finished.json()["job"]["prompt_id"], id.as_str());
    running.stop().await;
    while let Ok(r) = rx.try_recv() {
        assert_eq!(r.json()["instance"], "gpu \"one\"", "{}", r.json());
    }
}

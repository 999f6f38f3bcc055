use super::*;
use comfy_engine::{ConnectionStatus, ErrorDetails};
use time::OffsetDateTime;

/// Instants as seconds after a fixed start: tests say "at 31 s", never sleep.
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Self(Instant::now())
    }
    fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

fn event(instance: &str, kind: EventKind) -> Event {
    Event {
        ts: OffsetDateTime::UNIX_EPOCH,
        instance_id: comfy_engine::InstanceId(1),
        instance: instance.to_owned(),
        kind,
    }
}

fn link(instance: &str, state: ConnectionState) -> Event {
    event(
        instance,
        EventKind::Connection(ConnectionStatus {
            state,
            detail: String::new(),
            retry_in_ms: None,
        }),
    )
}

fn queue(instance: &str, running: &[&str], pending: &[&str]) -> Event {
    let ids = |v: &[&str]| v.iter().map(|s| PromptId::from(*s)).collect();
    event(
        instance,
        EventKind::Queue {
            running: ids(running),
            pending: ids(pending),
        },
    )
}

fn output(name: &str) -> OutputFile {
    OutputFile {
        filename: name.to_owned(),
        subfolder: String::new(),
        kind: "output".to_owned(),
    }
}

fn view(id: &str, origin: JobOrigin, state: JobState) -> JobView {
    let mut v = JobView::new(id.into(), origin, state);
    v.elapsed_ms = Some(83_000);
    if state == JobState::Success {
        v.outputs = vec![output(&format!("{id}.txt")), output(&format!("{id}.png"))];
    }
    if state == JobState::Error {
        v.error = Some(ErrorDetails {
            node_id: Some("3".into()),
            node_type: Some("KSampler".into()),
            exception_type: Some("torch.OutOfMemoryError".into()),
            message: "CUDA out of memory.".into(),
            traceback: vec![],
        });
    }
    v
}

fn job(instance: &str, id: &str, origin: JobOrigin, state: JobState) -> Event {
    event(instance, EventKind::Job(Box::new(view(id, origin, state))))
}

fn done(instance: &str, id: &str) -> Event {
    job(instance, id, JobOrigin::SelfApp, JobState::Success)
}

fn kinds(out: &[Notification]) -> Vec<NotificationKind> {
    out.iter().map(|n| n.kind).collect()
}

/// Leaves out the queue-drained summary, which any two jobs may produce.
fn jobs_only(out: Vec<Notification>) -> Vec<Notification> {
    out.into_iter()
        .filter(|n| n.kind != NotificationKind::QueueDrained)
        .collect()
}

/// A policy with `instance` connected at 0 s.
fn connected(instance: &str, clock: &Clock) -> Policy {
    let mut p = Policy::default();
    assert!(p
        .apply(&link(instance, ConnectionState::Connected), clock.at(0.0))
        .is_empty());
    p
}

#[test]
fn a_drop_shorter_than_the_grace_period_notifies_nothing() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    assert!(p
        .apply(&link("Local", ConnectionState::Reconnecting), c.at(1.0))
        .is_empty());
    assert!(p.tick(c.at(20.0)).is_empty());
    assert!(p
        .apply(&link("Local", ConnectionState::Connected), c.at(25.0))
        .is_empty());
    for t in [31.0, 40.0, 100.0] {
        assert!(p.tick(c.at(t)).is_empty(), "at {t} s");
    }
}

#[test]
fn a_link_on_http_only_is_up_not_an_outage() {
    let c = Clock::new();
    let mut p = Policy::default();
    // Reached on HTTP alone from the start: never an outage.
    p.apply(&link("Proxy", ConnectionState::HttpOnly), c.at(0.0));
    assert!(p.tick(c.at(100.0)).is_empty());
    // Down for good, then back on HTTP alone: back online.
    p.apply(&link("Proxy", ConnectionState::Unreachable), c.at(110.0));
    assert_eq!(
        kinds(&p.tick(c.at(150.0))),
        [NotificationKind::Disconnected]
    );
    p.apply(&link("Proxy", ConnectionState::HttpOnly), c.at(200.0));
    assert_eq!(kinds(&p.tick(c.at(210.0))), [NotificationKind::BackOnline]);
}

#[test]
fn an_outage_past_the_grace_period_notifies_once_and_back_online_once() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.apply(&link("Local", ConnectionState::Reconnecting), c.at(10.0));
    assert_eq!(p.next_deadline(), Some(c.at(40.0)));
    assert!(p.tick(c.at(39.9)).is_empty());
    let down = p.tick(c.at(40.0));
    assert_eq!(kinds(&down), [NotificationKind::Disconnected]);
    assert_eq!(down[0].summary, "Local disconnected");
    // The supervisor keeps retrying: more down states are the same outage.
    for t in [45.0, 60.0, 90.0] {
        assert!(p
            .apply(&link("Local", ConnectionState::Unreachable), c.at(t))
            .is_empty());
        assert!(p.tick(c.at(t + 1.0)).is_empty());
    }
    assert!(p
        .apply(&link("Local", ConnectionState::Connected), c.at(100.0))
        .is_empty());
    let up = p.tick(c.at(110.0));
    assert_eq!(kinds(&up), [NotificationKind::BackOnline]);
    assert_eq!(up[0].summary, "Local is back online");
    assert_eq!(up[0].body, "It was down for 1:30.");
    assert_eq!(up[0].key, down[0].key, "back online replaces the notice");
    assert!(p.tick(c.at(500.0)).is_empty());
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn a_flapping_link_is_one_outage_with_one_notice_each_way() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let mut all = Vec::new();
    // Up for 2 s, down for 8 s, for two minutes: the link never stays up 10 s.
    let mut t = 1.0;
    while t < 120.0 {
        all.extend(p.apply(&link("Local", ConnectionState::Unreachable), c.at(t)));
        all.extend(p.tick(c.at(t + 4.0)));
        all.extend(p.apply(&link("Local", ConnectionState::Connected), c.at(t + 8.0)));
        t += 10.0;
    }
    assert_eq!(kinds(&all), [NotificationKind::Disconnected]);
    // Then it stays up.
    all.extend(p.tick(c.at(t + 20.0)));
    assert_eq!(
        kinds(&all),
        [NotificationKind::Disconnected, NotificationKind::BackOnline]
    );
}

#[test]
fn separate_short_drops_are_never_announced() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    // Down 5 s, then up 20 s, five times: each drop is its own outage, none past the grace.
    for i in 0..5 {
        let t = 1.0 + 25.0 * f64::from(i);
        assert!(p
            .apply(&link("Local", ConnectionState::Reconnecting), c.at(t))
            .is_empty());
        assert!(p
            .apply(&link("Local", ConnectionState::Connected), c.at(t + 5.0))
            .is_empty());
        assert!(p.tick(c.at(t + 24.0)).is_empty());
    }
}

#[test]
fn an_instance_never_reached_is_not_an_outage() {
    let c = Clock::new();
    let mut p = Policy::default();
    p.apply(&link("Local", ConnectionState::Connecting), c.at(0.0));
    p.apply(&link("Local", ConnectionState::Unreachable), c.at(1.0));
    assert!(p.tick(c.at(600.0)).is_empty());
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn auth_failure_is_told_once_per_outage() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let first = p.apply(&link("Local", ConnectionState::AuthFailed), c.at(5.0));
    assert_eq!(kinds(&first), [NotificationKind::AuthFailed]);
    assert_eq!(first[0].summary, "Local rejects our credentials");
    // Retries keep failing; the server even goes away for a while: no more notices, and no
    // "disconnected" on top of the rejection.
    for (t, s) in [
        (60.0, ConnectionState::AuthFailed),
        (120.0, ConnectionState::Unreachable),
        (300.0, ConnectionState::AuthFailed),
    ] {
        assert!(p.apply(&link("Local", s), c.at(t)).is_empty());
        assert!(p.tick(c.at(t + 50.0)).is_empty());
    }
    p.apply(&link("Local", ConnectionState::Connected), c.at(400.0));
    assert_eq!(kinds(&p.tick(c.at(410.0))), [NotificationKind::BackOnline]);
    // A new outage is a new story.
    let again = p.apply(&link("Local", ConnectionState::AuthFailed), c.at(500.0));
    assert_eq!(kinds(&again), [NotificationKind::AuthFailed]);
    assert_ne!(again[0].key, first[0].key);
}

#[test]
fn a_rejection_at_startup_is_told() {
    let c = Clock::new();
    let mut p = Policy::default();
    p.apply(&link("Local", ConnectionState::Connecting), c.at(0.0));
    let out = p.apply(&link("Local", ConnectionState::AuthFailed), c.at(1.0));
    assert_eq!(kinds(&out), [NotificationKind::AuthFailed]);
}

#[test]
fn a_finished_job_names_its_workflow_duration_and_first_image() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let out = p.apply(&done("Local", "p1"), c.at(1.0));
    assert_eq!(out.len(), 1);
    let n = &out[0];
    assert_eq!(n.kind, NotificationKind::JobDone);
    assert_eq!(n.summary, "Job finished on Local");
    assert_eq!(n.body, "took 1:23 · 2 outputs");
    assert_eq!(
        n.image,
        Some(ImageRef {
            instance: "Local".into(),
            file: output("p1.png")
        }),
        "the first image, not the first output"
    );
    assert_eq!(
        n.actions,
        [
            Action::Show {
                instance: Some("Local".into()),
                prompt_id: Some("p1".into())
            },
            Action::OpenFolder {
                instance: "Local".into(),
                file: output("p1.png")
            }
        ]
    );

    p.set_job_label("Local", &"p2".into(), "portrait.json");
    let out = p.apply(&done("Local", "p2"), c.at(100.0));
    assert_eq!(out[0].summary, "portrait.json finished");
    assert_eq!(out[0].body, "on Local · took 1:23 · 2 outputs");
}

#[test]
fn a_failed_job_names_the_node_its_type_and_the_exception() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let out = p.apply(
        &job("Local", "p1", JobOrigin::SelfApp, JobState::Error),
        c.at(1.0),
    );
    assert_eq!(kinds(&out), [NotificationKind::JobFailed]);
    assert_eq!(out[0].summary, "Job failed on Local");
    assert_eq!(
        out[0].body,
        "KSampler (node 3): OutOfMemoryError: CUDA out of memory.\ntook 1:23"
    );
    assert_eq!(out[0].image, None);
}

#[test]
fn a_burst_of_quick_jobs_coalesces_into_one_counted_notification() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let mut shown = Vec::new();
    // Twelve jobs, one every 0.5 s.
    for i in 0..12 {
        let t = 1.0 + 0.5 * f64::from(i);
        shown.extend(p.apply(&done("Local", &format!("p{i}")), c.at(t)));
    }
    assert_eq!(shown.len(), 1, "only the first goes out at once");
    assert_eq!(shown[0].jobs, 1);
    assert_eq!(p.next_deadline(), Some(c.at(11.0)));
    let burst = p.tick(c.at(11.0));
    assert_eq!(burst.len(), 1);
    assert_eq!(burst[0].summary, "12 jobs finished on Local");
    assert_eq!(burst[0].body, "Latest: job p11 · took 1:23");
    assert_eq!(burst[0].jobs, 12);
    assert_eq!(
        burst[0].key, shown[0].key,
        "the count replaces the first popup"
    );
    assert_eq!(
        burst[0].image.as_ref().map(|i| i.file.clone()),
        Some(output("p11.png"))
    );
    assert!(jobs_only(p.tick(c.at(60.0))).is_empty());
}

#[test]
fn a_long_batch_updates_one_popup_at_most_once_per_window() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let mut shown = Vec::new();
    // 50 jobs, one a second; the host ticks whenever the policy asks.
    for i in 0..50 {
        let t = c.at(1.0 + f64::from(i));
        while let Some(d) = p.next_deadline().filter(|d| *d <= t) {
            shown.extend(p.tick(d));
        }
        shown.extend(p.apply(&done("Local", &format!("p{i}")), t));
    }
    while let Some(d) = p.next_deadline() {
        shown.extend(p.tick(d));
    }
    let shown = jobs_only(shown);
    assert!(shown.len() <= 6, "{} popups for 50 jobs", shown.len());
    assert!(shown.iter().all(|n| n.key == shown[0].key));
    assert_eq!(shown.last().map(|n| n.jobs), Some(50));
}

#[test]
fn a_job_after_a_quiet_window_is_a_new_single_notification() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let first = p.apply(&done("Local", "a"), c.at(1.0));
    let second = p.apply(&done("Local", "b"), c.at(30.0));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].jobs, 1);
    assert_ne!(second[0].key, first[0].key);
}

#[test]
fn failures_are_coalesced_apart_from_successes() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let mut out = p.apply(&done("Local", "a"), c.at(1.0));
    out.extend(p.apply(
        &job("Local", "b", JobOrigin::SelfApp, JobState::Error),
        c.at(2.0),
    ));
    out.extend(p.apply(
        &job("Local", "c", JobOrigin::SelfApp, JobState::Error),
        c.at(3.0),
    ));
    assert_eq!(
        kinds(&out),
        [NotificationKind::JobDone, NotificationKind::JobFailed]
    );
    let later = jobs_only(p.tick(c.at(12.0)));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].summary, "2 jobs failed on Local");
    assert_eq!(
        later[0].body,
        "Latest: job c: KSampler (node 3): OutOfMemoryError: CUDA out of memory."
    );
}

#[test]
fn switches_are_per_instance_and_per_kind() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.apply(&link("Studio", ConnectionState::Connected), c.at(0.0));
    p.set_instance_settings(
        "Studio",
        NotificationPrefs {
            job_done: false,
            disconnected: false,
            ..NotificationPrefs::default()
        },
    );
    assert!(p.apply(&done("Studio", "s1"), c.at(1.0)).is_empty());
    assert_eq!(p.apply(&done("Local", "l1"), c.at(1.0)).len(), 1);
    let failed = p.apply(
        &job("Studio", "s2", JobOrigin::SelfApp, JobState::Error),
        c.at(2.0),
    );
    assert_eq!(kinds(&failed), [NotificationKind::JobFailed], "still on");

    p.apply(&link("Studio", ConnectionState::Unreachable), c.at(3.0));
    p.apply(&link("Local", ConnectionState::Unreachable), c.at(3.0));
    let down = p.tick(c.at(60.0));
    assert_eq!(kinds(&down), [NotificationKind::Disconnected]);
    assert_eq!(down[0].instance.as_deref(), Some("Local"));
}

#[test]
fn other_clients_jobs_notify_only_when_opted_in() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    for (i, origin) in [JobOrigin::Other, JobOrigin::Anonymous]
        .into_iter()
        .enumerate()
    {
        let e = job("Local", &format!("o{i}"), origin, JobState::Success);
        assert!(p.apply(&e, c.at(1.0)).is_empty());
    }
    p.set_instance_settings(
        "Local",
        NotificationPrefs {
            other_clients_jobs: true,
            ..NotificationPrefs::default()
        },
    );
    let out = p.apply(
        &job("Local", "o2", JobOrigin::Other, JobState::Success),
        c.at(100.0),
    );
    assert_eq!(kinds(&out), [NotificationKind::JobDone]);
}

#[test]
fn a_job_we_cancelled_is_not_news_but_one_stopped_elsewhere_is() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.set_instance_settings(
        "Local",
        NotificationPrefs {
            job_interrupted_by_other: true,
            ..NotificationPrefs::default()
        },
    );
    p.cancelled_by_us("Local", &"mine".into());
    let ours = job("Local", "mine", JobOrigin::SelfApp, JobState::Interrupted);
    assert!(p.apply(&ours, c.at(1.0)).is_empty());
    let theirs = job("Local", "other", JobOrigin::SelfApp, JobState::Interrupted);
    let out = p.apply(&theirs, c.at(2.0));
    assert_eq!(kinds(&out), [NotificationKind::JobInterrupted]);
    assert_eq!(out[0].summary, "Job interrupted on Local");
    assert_eq!(out[0].body, "Job other was stopped from outside this app.");
}

#[test]
fn a_lost_job_notifies_as_a_failure_does_and_says_what_to_do() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.set_job_label("Local", &"mine".into(), "portrait.png");
    let mut lost = view("mine", JobOrigin::SelfApp, JobState::Lost);
    lost.detail = Some("the server restarted".into());
    let out = p.apply(&event("Local", EventKind::Job(Box::new(lost))), c.at(1.0));
    assert_eq!(kinds(&out), [NotificationKind::JobFailed]);
    assert_eq!(out[0].summary, "portrait.png was lost");
    assert_eq!(
        out[0].body,
        "On Local: the server restarted. Queue it again from the history."
    );
    // Not with failures switched off.
    p.set_instance_settings(
        "Local",
        NotificationPrefs {
            job_failed: false,
            ..NotificationPrefs::default()
        },
    );
    let again = job("Local", "other", JobOrigin::SelfApp, JobState::Lost);
    assert!(p.apply(&again, c.at(2.0)).is_empty());
}

#[test]
fn sounds_follow_the_instance_switch_for_each_kind_and_are_off_by_default() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let failed = job("Local", "f", JobOrigin::SelfApp, JobState::Error);
    let out = p.apply(&failed, c.at(1.0));
    assert!(!p.wants_sound(&out[0]), "off for a new instance");
    p.set_instance_settings(
        "Local",
        NotificationPrefs {
            sound_job_failed: true,
            ..NotificationPrefs::default()
        },
    );
    assert!(p.wants_sound(&out[0]));
    let done = p.apply(&done("Local", "d"), c.at(100.0));
    assert_eq!(kinds(&done), [NotificationKind::JobDone]);
    assert!(!p.wants_sound(&done[0]), "only the kinds switched on");
}

#[test]
fn interruptions_are_off_by_default() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    let e = job("Local", "x", JobOrigin::SelfApp, JobState::Interrupted);
    assert!(p.apply(&e, c.at(1.0)).is_empty());
}

#[test]
fn a_pause_drops_job_notices_and_ends_after_an_hour() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.pause(c.at(10.0), Some(Duration::from_secs(3600)));
    assert!(p.paused(c.at(11.0)).is_some());
    assert!(p.apply(&done("Local", "a"), c.at(20.0)).is_empty());
    assert!(p.apply(&done("Local", "b"), c.at(25.0)).is_empty());
    assert!(p.tick(c.at(3609.0)).is_empty());
    assert!(p.tick(c.at(3610.0)).is_empty(), "dropped jobs stay dropped");
    assert_eq!(p.paused(c.at(3610.0)), None);
    assert_eq!(p.apply(&done("Local", "c"), c.at(3611.0)).len(), 1);
}

#[test]
fn a_pause_until_resumed_lasts_until_resume() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.pause(c.at(1.0), None);
    assert!(p.apply(&done("Local", "a"), c.at(100_000.0)).is_empty());
    assert_eq!(p.paused(c.at(100_000.0)), Some(Pause::UntilResumed));
    assert!(p.resume(c.at(100_001.0)).is_empty());
    assert_eq!(p.apply(&done("Local", "b"), c.at(100_002.0)).len(), 1);
}

#[test]
fn an_outage_still_true_when_a_pause_ends_is_told_then() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.pause(c.at(1.0), Some(Duration::from_secs(60)));
    p.apply(&link("Local", ConnectionState::Unreachable), c.at(2.0));
    assert!(p.tick(c.at(40.0)).is_empty());
    // The deadline waits for the pause, so a host ticking on it never spins.
    assert_eq!(p.next_deadline(), Some(c.at(61.0)));
    assert_eq!(kinds(&p.tick(c.at(61.0))), [NotificationKind::Disconnected]);
}

#[test]
fn an_outage_over_before_a_pause_ends_is_never_told() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.pause(c.at(1.0), None);
    p.apply(&link("Local", ConnectionState::Unreachable), c.at(2.0));
    assert!(p.tick(c.at(100.0)).is_empty());
    assert_eq!(
        p.next_deadline(),
        None,
        "nothing to wake up for until resumed"
    );
    p.apply(&link("Local", ConnectionState::Connected), c.at(200.0));
    assert!(p.tick(c.at(210.0)).is_empty());
    assert!(p.resume(c.at(300.0)).is_empty());
}

#[test]
fn focus_silences_notifications_only_with_the_option() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    assert!(p.set_focused(true, c.at(0.5)).is_empty());
    assert_eq!(
        p.apply(&done("Local", "a"), c.at(1.0)).len(),
        1,
        "option off"
    );

    p.set_settings(Settings {
        only_when_unfocused: true,
        ..Settings::default()
    });
    assert!(p.apply(&done("Local", "b"), c.at(100.0)).is_empty());
    p.apply(&link("Local", ConnectionState::Unreachable), c.at(101.0));
    assert!(p.tick(c.at(200.0)).is_empty());
    // Leaving the window: the outage, still going on, is told; the job is old news.
    assert_eq!(
        kinds(&p.set_focused(false, c.at(300.0))),
        [NotificationKind::Disconnected]
    );
    p.apply(&link("Local", ConnectionState::Connected), c.at(301.0));
    assert_eq!(kinds(&p.tick(c.at(311.0))), [NotificationKind::BackOnline]);
    assert_eq!(
        kinds(&jobs_only(p.apply(&done("Local", "c"), c.at(400.0)))),
        [NotificationKind::JobDone]
    );
}

#[test]
fn the_queue_drained_notice_comes_once_when_every_instance_is_idle_after_a_batch() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.apply(&link("Studio", ConnectionState::Connected), c.at(0.0));
    p.apply(&queue("Local", &["a"], &["b"]), c.at(1.0));
    p.apply(&queue("Studio", &["s"], &[]), c.at(1.0));
    p.apply(&done("Local", "a"), c.at(2.0));
    p.apply(&queue("Local", &["b"], &[]), c.at(2.0));
    p.apply(&done("Local", "b"), c.at(3.0));
    p.apply(&queue("Local", &[], &[]), c.at(3.0));
    // Studio still works: no drain.
    assert!(p
        .tick(c.at(20.0))
        .iter()
        .all(|n| n.kind != NotificationKind::QueueDrained));
    p.apply(
        &job("Studio", "s", JobOrigin::SelfApp, JobState::Error),
        c.at(30.0),
    );
    p.apply(&queue("Studio", &[], &[]), c.at(30.0));
    assert_eq!(p.next_deadline(), Some(c.at(35.0)));
    let out = p.tick(c.at(35.0));
    let drained: Vec<_> = out
        .iter()
        .filter(|n| n.kind == NotificationKind::QueueDrained)
        .collect();
    assert_eq!(drained.len(), 1);
    assert_eq!(drained[0].summary, "All queues drained");
    assert_eq!(
        drained[0].body,
        "Local: 2 finished · Studio: 0 finished, 1 failed"
    );
    assert_eq!(drained[0].jobs, 3);
    assert!(p
        .tick(c.at(100.0))
        .iter()
        .all(|n| n.kind != NotificationKind::QueueDrained));
}

#[test]
fn new_work_before_the_drain_settles_postpones_it() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.apply(&done("Local", "a"), c.at(1.0));
    p.apply(&done("Local", "b"), c.at(2.0));
    p.apply(&queue("Local", &[], &[]), c.at(2.0));
    p.apply(&queue("Local", &["c"], &[]), c.at(4.0));
    assert!(p
        .tick(c.at(8.0))
        .iter()
        .all(|n| n.kind != NotificationKind::QueueDrained));
    p.apply(&done("Local", "c"), c.at(20.0));
    p.apply(&queue("Local", &[], &[]), c.at(20.0));
    let out = p.tick(c.at(25.0));
    let drained: Vec<_> = out
        .iter()
        .filter(|n| n.kind == NotificationKind::QueueDrained)
        .collect();
    assert_eq!(drained.len(), 1);
    assert_eq!(drained[0].summary, "Queue drained on Local");
    assert_eq!(drained[0].body, "All jobs are done: 3 finished.");
}

#[test]
fn a_single_job_makes_no_drained_notice() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    p.apply(&queue("Local", &["a"], &[]), c.at(1.0));
    p.apply(&done("Local", "a"), c.at(2.0));
    p.apply(&queue("Local", &[], &[]), c.at(2.0));
    assert!(p.tick(c.at(60.0)).is_empty());
}

#[test]
fn the_same_terminal_state_twice_notifies_once() {
    let c = Clock::new();
    let mut p = connected("Local", &c);
    assert_eq!(p.apply(&done("Local", "a"), c.at(1.0)).len(), 1);
    assert!(p.apply(&done("Local", "a"), c.at(60.0)).is_empty());
    assert!(p.tick(c.at(120.0)).is_empty());
}

#[test]
fn settings_round_trip_as_json_and_fill_missing_switches_with_defaults() {
    let s: NotificationPrefs = serde_json::from_str(r#"{"other_clients_jobs": true}"#).unwrap();
    assert_eq!(
        s,
        NotificationPrefs {
            other_clients_jobs: true,
            ..NotificationPrefs::default()
        }
    );
    let all = Settings {
        only_when_unfocused: true,
        instances: [("Local".to_owned(), s)].into(),
    };
    let back: Settings = serde_json::from_str(&serde_json::to_string(&all).unwrap()).unwrap();
    assert_eq!(back, all);
}

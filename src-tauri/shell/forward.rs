//! The event task: engine events in; the overview, the journal and the event log updated;
//! updates out to the webview, every change of its picture batched per display frame
//! (`batcher.rs`), and none while it is off screen.
//!
//! At exit the task is drained, not dropped ([`Exit::drain`]): it takes no more events and
//! writes the ones already queued (terminal states, log lines) before it ends, within a
//! deadline.

use crate::shell::batcher::ViewBatcher;
use crate::shell::events::{EventLogged, Update};
use crate::shell::overview::SharedOverview;
use crate::shell::previews::{Announced, Previews};
use crate::shell::view::{LogEntry, PreviewRef};
use comfy_app::recorder::{JournalWriter, Logged};
use comfy_engine::Events;
use comfy_engine::{Event, EventKind};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

/// The webview's update for a line written to the event log.
fn logged_update(logged: Logged) -> Update {
    let Logged {
        instance,
        id,
        ts,
        line,
    } = logged;
    Update::EventLogged(EventLogged {
        instance_id: instance,
        entry: LogEntry {
            id,
            ts,
            kind: line.kind,
            detail: line.detail,
            data: line.data,
        },
    })
}

/// A frame announced by the preview store, attached to its job in the overview.
fn preview_shown(overview: &SharedOverview, a: &Announced) -> Option<Update> {
    overview.lock().preview_shown(
        a.instance,
        a.prompt_id.as_deref(),
        PreviewRef {
            seq: a.seq,
            width: a.width,
            height: a.height,
        },
    )
}

/// The exit's hold on the event task (see [`forward`]).
pub struct Exit {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

/// The event task's side of [`Exit`]. Dropping the [`Exit`] unused changes nothing.
pub struct ExitSignal {
    stop: oneshot::Receiver<()>,
    _done: oneshot::Sender<()>,
}

/// A pair to stop the event task at exit with.
pub fn exit_signal() -> (Exit, ExitSignal) {
    let (stop, stop_rx) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    (
        Exit { stop, done },
        ExitSignal {
            stop: stop_rx,
            _done: done_tx,
        },
    )
}

impl Exit {
    /// Tells the event task to take no more events and to write the ones already queued, then
    /// waits for it to end, at most `deadline`. Returns whether it ended in time (if not, what
    /// is left is dropped with the task; the next start reconciles unfinished jobs).
    pub async fn drain(self, deadline: Duration) -> bool {
        // Gone already (the channel closed, the task ended): nothing to wait for.
        let _ = self.stop.send(());
        tokio::time::timeout(deadline, self.done).await.is_ok()
    }
}

/// What the event task sends to, and hears from, the webview.
pub struct View<S, E> {
    /// The number of the last batch the webview has shown.
    pub shown: watch::Receiver<u64>,
    /// Changes of the picture made outside this task (machine stats), to batch with the rest.
    pub changes: mpsc::UnboundedReceiver<Update>,
    /// Whether the webview is on screen: off screen it is sent no change of its picture (it
    /// loads the whole picture when it is back).
    pub on_screen: S,
    pub emit: E,
}

/// Runs until the engine shuts down (its event channel closes), or, once `exit` says so, until
/// the events already queued are written.
pub async fn forward<S: Fn() -> bool, E: FnMut(Update)>(
    mut events: Events,
    view: View<S, E>,
    overview: SharedOverview,
    previews: Previews,
    mut writer: JournalWriter,
    exit: ExitSignal,
    mut observe: impl FnMut(&Event),
) {
    let View {
        mut shown,
        mut changes,
        on_screen,
        mut emit,
    } = view;
    let ExitSignal {
        stop: mut exit,
        _done,
    } = exit;
    // Until the exit asks (or is dropped without asking).
    let mut exit_pending = true;
    let mut changes_open = true;
    let mut batcher = ViewBatcher::default();
    // Holds a change for the next batch, or sends what is not paint at once. Off screen, the
    // picture's changes are dropped (the overview has them all).
    let offer = |batcher: &mut ViewBatcher, update: Update, emit: &mut E| {
        if update.only_paints() && !on_screen() {
            batcher.clear();
            return;
        }
        batcher.offer(update).into_iter().for_each(&mut *emit);
    };
    loop {
        let due = batcher.next_due(Instant::now());
        let preview_due = previews.next_due();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                observe(&event);
                let now = Instant::now();
                let update = match &event.kind {
                    EventKind::Preview(p) => {
                        let cap = previews.cap(event.instance_id);
                        previews
                            .offer(event.instance_id, p, cap, now)
                            .and_then(|a| preview_shown(&overview, &a))
                    }
                    _ => overview.lock().apply(&event),
                };
                // Journal first: a UI that refetches history on a job's final update finds it.
                // An event still in flight from an instance just removed is not written: its
                // id may be given to the next instance saved.
                // Previews and progress-only kinds write nothing, so they take no second lock.
                let logged = (JournalWriter::records(&event.kind)
                    && overview.lock().instance(event.instance_id).is_some())
                .then(|| writer.record(&event, now))
                .flatten()
                .map(logged_update);
                if let Some(update) = update {
                    offer(&mut batcher, update, &mut emit);
                }
                // Log lines take the same way out as every other update (they are few: the
                // event-log rule bounds them per instance and minute).
                if let Some(logged) = logged {
                    offer(&mut batcher, logged, &mut emit);
                }
            }
            change = changes.recv(), if changes_open => match change {
                Some(change) => offer(&mut batcher, change, &mut emit),
                None => changes_open = false,
            },
            asked = &mut exit, if exit_pending => {
                exit_pending = false;
                if asked.is_ok() {
                    // What is queued is still received, then `None` ends the loop.
                    events.close();
                }
            }
            Ok(()) = shown.changed() => {
                batcher.shown(*shown.borrow_and_update());
            }
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                batcher.take_due(Instant::now()).into_iter().for_each(&mut emit);
            }
            () = sleep_until(preview_due.unwrap_or_else(Instant::now)), if preview_due.is_some() => {
                for a in previews.take_due(Instant::now()) {
                    if let Some(update) = preview_shown(&overview, &a) {
                        offer(&mut batcher, update, &mut emit);
                    }
                }
            }
        }
    }
    // Whatever is still held is moot once the engine is gone.
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::{
        ConnectionState, ConnectionStatus, EventKind, JobOrigin, JobState, JobView,
    };
    use time::OffsetDateTime;

    fn event(kind: EventKind) -> Event {
        Event {
            ts: OffsetDateTime::now_utc(),
            instance_id: comfy_model::InstanceId(1),
            instance: "gpu".into(),
            kind,
        }
    }

    fn job(state: JobState, percent: f64) -> EventKind {
        EventKind::Job(Box::new(JobView {
            percent: Some(percent),
            ..JobView::new("p".into(), JobOrigin::SelfApp, state)
        }))
    }

    /// A webview on screen (or, with `on_screen` false, off it) that records what it is sent
    /// and never says it showed a batch.
    fn view(
        on_screen: bool,
        sent: std::sync::Arc<std::sync::Mutex<Vec<Update>>>,
    ) -> View<impl Fn() -> bool, impl FnMut(Update)> {
        View {
            shown: watch::channel(0).1,
            changes: mpsc::unbounded_channel().1,
            on_screen: move || on_screen,
            emit: move |u| sent.lock().expect("not poisoned").push(u),
        }
    }

    /// What was sent, each a batch of picture changes (anything else fails the test).
    fn only_batches(sent: &[Update]) -> Vec<&crate::shell::events::ViewChanged> {
        sent.iter()
            .map(|u| match u {
                Update::ViewChanged(b) => b,
                other => panic!("only batches are sent: {other:?}"),
            })
            .collect()
    }

    fn connected() -> EventKind {
        EventKind::Connection(ConnectionStatus {
            state: ConnectionState::Connected,
            detail: "connected".into(),
            retry_in_ms: None,
        })
    }

    fn gpu_overview() -> SharedOverview {
        let overview = SharedOverview::default();
        overview.lock().add_instance(
            comfy_model::InstanceId(1),
            "gpu",
            "http://gpu/",
            true,
            true,
            None,
        );
        overview
    }

    /// A saved instance "gpu" in a database file, and an overview that has it.
    struct Saved {
        dir: tempfile::TempDir,
        store: comfy_store::Store,
        rec: comfy_store::InstanceRecord,
        overview: SharedOverview,
    }

    fn saved_gpu() -> Saved {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = comfy_store::Store::open(dir.path().join("t.db")).expect("store");
        let rec = store
            .insert_instance(&comfy_store::NewInstance::new("gpu", "http://gpu:8188/"), 1)
            .expect("instance");
        let overview = SharedOverview::default();
        overview
            .lock()
            .add_instance(rec.id, "gpu", "http://gpu:8188/", true, true, None);
        Saved {
            dir,
            store,
            rec,
            overview,
        }
    }

    /// The journal on a second connection to the database in `dir`, as the app opens it.
    fn journal(dir: &tempfile::TempDir) -> comfy_engine::journal::Journal {
        comfy_engine::journal::Journal::new(
            comfy_store::Store::open(dir.path().join("t.db")).expect("second connection"),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_progress_collapses_but_the_final_state_always_arrives() {
        let overview = gpu_overview();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let sent = std::sync::Arc::default();
        let task = tokio::spawn(forward(
            rx.into(),
            view(true, std::sync::Arc::clone(&sent)),
            overview.clone(),
            Previews::default(),
            JournalWriter::new(None),
            exit_signal().1,
            |_| {},
        ));
        tx.send(event(connected())).await.expect("channel open");
        for i in 0..20 {
            tx.send(event(job(JobState::Running, f64::from(i))))
                .await
                .expect("channel open");
        }
        tx.send(event(job(JobState::Success, 100.0)))
            .await
            .expect("channel open");
        // Time enough for batches that are never acknowledged.
        tokio::time::sleep(10 * crate::shell::batcher::ACK_TIMEOUT).await;
        drop(tx);
        task.await.expect("the task ends with the engine");

        let sent = std::mem::take(&mut *sent.lock().expect("not poisoned"));
        let batches = only_batches(&sent);
        assert!(batches.len() < 10, "progress was not coalesced: {sent:?}");
        assert!(batches[0]
            .statuses
            .iter()
            .any(|s| s.status.status.state.is_up()));
        let last = batches.iter().flat_map(|b| &b.jobs).last();
        assert_eq!(last.and_then(|j| j.job.percent), Some(100.0), "{sent:?}");
        assert!(last.is_some_and(|j| j.job.state == JobState::Success));
        // The overview saw every event, whatever was coalesced on the way out.
        let snapshot = overview.lock().snapshot();
        assert_eq!(snapshot.revision, 1 + 1 + 20 + 1);
        assert!(snapshot.instances[0].jobs.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn changes_made_elsewhere_join_the_batches() {
        let overview = gpu_overview();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let (changes, changes_rx) = mpsc::unbounded_channel();
        let sent = std::sync::Arc::default();
        let task = tokio::spawn(forward(
            rx.into(),
            View {
                changes: changes_rx,
                ..view(true, std::sync::Arc::clone(&sent))
            },
            overview.clone(),
            Previews::default(),
            JournalWriter::new(None),
            exit_signal().1,
            |_| {},
        ));
        let stats = crate::shell::view::StatsView {
            ram_total: Some(64.0),
            ram_free: Some(32.0),
            device: None,
            vram_total: None,
            vram_free: None,
        };
        let update = overview.lock().set_stats(comfy_model::InstanceId(1), stats);
        changes.send(update.expect("new stats")).expect("open");
        tx.send(event(connected())).await.expect("channel open");
        tokio::time::sleep(2 * crate::shell::batcher::ACK_TIMEOUT).await;
        drop(tx);
        task.await.expect("the task ends with the engine");
        let sent = sent.lock().expect("not poisoned");
        let batches = only_batches(&sent);
        let stats: Vec<_> = batches.iter().flat_map(|b| &b.stats).collect();
        let statuses: Vec<_> = batches.iter().flat_map(|b| &b.statuses).collect();
        assert_eq!(stats.len(), 1, "{sent:?}");
        assert_eq!(stats[0].stats.ram_free, Some(32.0));
        assert_eq!(statuses.len(), 1, "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn off_screen_the_webview_is_sent_its_log_but_not_its_picture() {
        let Saved {
            dir,
            store: _,
            rec,
            overview,
        } = saved_gpu();
        let journal = journal(&dir);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let sent = std::sync::Arc::default();
        let task = tokio::spawn(forward(
            rx.into(),
            view(false, std::sync::Arc::clone(&sent)),
            overview.clone(),
            Previews::default(),
            JournalWriter::new(Some(journal)),
            exit_signal().1,
            |_| {},
        ));
        for kind in [
            connected(),
            job(JobState::Running, 10.0),
            job(JobState::Success, 100.0),
        ] {
            let event = Event {
                instance_id: rec.id,
                ..event(kind)
            };
            tx.send(event).await.expect("channel open");
        }
        tokio::time::sleep(crate::shell::batcher::ACK_TIMEOUT).await;
        drop(tx);
        task.await.expect("the task ends with the engine");
        let names: Vec<_> = sent
            .lock()
            .expect("not poisoned")
            .iter()
            .map(Update::name)
            .collect();
        assert_eq!(names, [crate::shell::events::EVENT_LOGGED]);
        // The picture is in the overview, for the snapshot the webview loads when it is back.
        let snapshot = overview.lock().snapshot();
        assert!(snapshot.instances[0].status.status.state.is_up());
        assert_eq!(
            snapshot.instances[0].last_job.as_ref().map(|j| j.state),
            Some(JobState::Success)
        );
    }

    #[tokio::test]
    async fn jobs_reach_the_journal_and_connection_changes_the_event_log() {
        let Saved {
            dir,
            store,
            rec,
            overview,
        } = saved_gpu();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        for kind in [
            connected(),
            // The same state again (a status refresh): no second log line.
            connected(),
            job(JobState::Running, 10.0),
            job(JobState::Success, 100.0),
            EventKind::ServerEvent {
                kind: "crystools.monitor".into(),
                data: serde_json::json!({"cpu": 3}),
            },
            EventKind::ServerEvent {
                kind: "crystools.monitor".into(),
                data: serde_json::json!({"cpu": 4}),
            },
        ] {
            let event = Event {
                instance_id: rec.id,
                ..event(kind)
            };
            tx.send(event).await.expect("channel open");
        }
        drop(tx);

        let journal = journal(&dir);
        let sent = std::sync::Arc::default();
        forward(
            rx.into(),
            view(true, std::sync::Arc::clone(&sent)),
            overview,
            Previews::default(),
            JournalWriter::new(Some(journal)),
            exit_signal().1,
            |_| {},
        )
        .await;

        let logged: Vec<_> = sent
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|u| match u {
                Update::EventLogged(e) => Some((e.entry.kind.clone(), e.entry.detail.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            logged,
            [
                ("connected".to_owned(), Some("connected".to_owned())),
                (
                    "server_event".to_owned(),
                    Some("crystools.monitor".to_owned())
                ),
            ]
        );
        let job = store.job(rec.id, "p").expect("read").expect("journalled");
        assert_eq!(job.state, comfy_store::JobState::Success);
        let saved = store.instance(rec.id).expect("instance");
        assert_eq!(saved.last_status.as_deref(), Some("connected"));
        assert!(saved.last_connected.is_some());
        assert_eq!(store.events(Some(rec.id), 10).expect("events").len(), 2);
    }

    /// At exit the task is drained: events already queued (a job's end, a log line) are
    /// written before it ends, even while a sender is still alive (a supervisor that did not
    /// stop in time), and nothing new is taken.
    #[tokio::test]
    async fn at_exit_the_events_already_queued_are_written_before_the_task_ends() {
        let Saved {
            dir,
            store,
            rec,
            overview,
        } = saved_gpu();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let journal = journal(&dir);
        let (exit, signal) = exit_signal();
        let sent = std::sync::Arc::default();
        let task = tokio::spawn(forward(
            rx.into(),
            view(true, std::sync::Arc::clone(&sent)),
            overview,
            Previews::default(),
            JournalWriter::new(Some(journal)),
            signal,
            |_| {},
        ));
        for kind in [
            job(JobState::Running, 10.0),
            job(JobState::Success, 100.0),
            EventKind::ServerEvent {
                kind: "crystools.monitor".into(),
                data: serde_json::json!({"cpu": 3}),
            },
        ] {
            let event = Event {
                instance_id: rec.id,
                ..event(kind)
            };
            tx.send(event).await.expect("channel open");
        }

        assert!(exit.drain(std::time::Duration::from_secs(5)).await);
        assert!(task.await.is_ok());
        let journalled = store.job(rec.id, "p").expect("read").expect("journalled");
        assert_eq!(journalled.state, comfy_store::JobState::Success);
        assert_eq!(store.events(Some(rec.id), 10).expect("events").len(), 1);
        assert!(sent
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|u: &Update| u.name() == crate::shell::events::EVENT_LOGGED));
        let late = event(job(JobState::Pending, 0.0));
        assert!(
            tx.send(late).await.is_err(),
            "nothing is taken after the exit"
        );
    }

    /// A failing journal is told once, not once per job, and again after it recovered.
    #[tokio::test]
    async fn a_journal_that_cannot_write_is_reported_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let mut store = comfy_store::Store::open(&path).expect("store");
        let rec = store
            .insert_instance(&comfy_store::NewInstance::new("gpu", "http://gpu:8188/"), 1)
            .expect("instance");
        drop(store);
        let journal = comfy_engine::journal::Journal::new(
            comfy_store::Store::open_read_only(&path).expect("read-only connection"),
        );
        let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let told = notices.clone();
        let mut writer = JournalWriter::new(Some(journal))
            .with_notices(move |n| told.lock().expect("not poisoned").push(n));
        for i in 0..3 {
            let mut e = event(job(JobState::Running, f64::from(i)));
            e.instance_id = rec.id;
            if let EventKind::Job(j) = &mut e.kind {
                j.prompt_id = format!("p{i}").as_str().into();
            }
            writer.record(&e, Instant::now());
        }
        let notices = notices.lock().expect("not poisoned").clone();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("read-only"), "{notices:?}");
    }
}

//! What every host writes to the database as the engine reports: jobs to the journal (terminal
//! states exactly once), connection changes and custom server events to the event log. The
//! desktop app and `comfy-monitor serve` record through this one writer, so both keep the same
//! history.

use comfy_engine::journal::{EventLogRule, Journal, LogLine};
use comfy_engine::{Event, EventKind};
use comfy_model::InstanceId;
use tokio::time::Instant;

/// A line written to the event log, for a host that shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub instance: InstanceId,
    /// The line's id in the store.
    pub id: i64,
    /// Unix milliseconds.
    pub ts: i64,
    pub line: LogLine,
}

/// Writes what the engine reports to the database: jobs to the journal (terminal states exactly
/// once), connection changes and custom server events to the event log.
/// Events name their instance by the store's id, so they are written under it as they come.
pub struct JournalWriter {
    journal: Option<Journal>,
    rule: EventLogRule,
    /// Told (once, until writing works again) when the journal cannot write a job.
    notice: Box<dyn FnMut(String) + Send>,
    /// Told when outputs may be waiting to be saved: a job's end with files was written, or an
    /// instance is within reach again.
    outputs_waiting: Box<dyn FnMut() + Send>,
    failing: bool,
}

impl JournalWriter {
    pub fn new(journal: Option<Journal>) -> Self {
        Self {
            journal,
            rule: EventLogRule::default(),
            notice: Box::new(|_| {}),
            outputs_waiting: Box::new(|| {}),
            failing: false,
        }
    }

    /// Whom to tell when outputs may be waiting to be saved: the outputs saver.
    pub fn with_outputs_waiting(mut self, tell: impl FnMut() + Send + 'static) -> Self {
        self.outputs_waiting = Box::new(tell);
        self
    }

    /// Where to tell the user that jobs are not being recorded (a full disk, a damaged or
    /// locked database): the first failure, not every job.
    pub fn with_notices(mut self, notice: impl FnMut(String) + Send + 'static) -> Self {
        self.notice = Box::new(notice);
        self
    }

    /// Whether [`JournalWriter::record`] writes anything for this kind of event: jobs go to the
    /// journal, connection changes and custom server events to the event log.
    pub fn records(kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::Job(_) | EventKind::Connection(_) | EventKind::ServerEvent { .. }
        )
    }

    /// Records one event; returns the event-log line written, if one was.
    pub fn record(&mut self, event: &Event, now: Instant) -> Option<Logged> {
        let instance = event.instance_id;
        let journal = self.journal.as_mut()?;
        let ts = comfy_engine::now_ms();
        match &event.kind {
            EventKind::Job(job) => {
                let recorded = journal.record(instance, job, ts);
                if matches!(recorded, Ok(true)) && !job.outputs.is_empty() {
                    (self.outputs_waiting)();
                }
                match recorded {
                    Ok(_) if self.failing => {
                        self.failing = false;
                        tracing::info!("the journal records jobs again");
                    }
                    Ok(_) => {}
                    Err(error) if !self.failing => {
                        self.failing = true;
                        tracing::error!(%error, job = %job.prompt_id, "the journal could not record a job");
                        (self.notice)(format!(
                            "Jobs are not being recorded in the history: {error}"
                        ));
                    }
                    Err(error) => {
                        tracing::debug!(%error, job = %job.prompt_id, "the journal could not record a job");
                    }
                }
                return None;
            }
            EventKind::Connection(status) => {
                let connected = status.state.is_up();
                if connected {
                    (self.outputs_waiting)();
                }
                if let Err(error) = journal.store_mut().set_instance_status(
                    instance,
                    &status.detail,
                    connected.then_some(ts),
                ) {
                    tracing::warn!(%error, "could not save the connection status");
                }
            }
            _ => {}
        }
        let line = self.rule.line(event, now)?;
        let new = comfy_store::NewEvent {
            instance: Some(instance),
            ts,
            kind: line.kind.clone(),
            detail: line.detail.clone(),
            data_json: line.data.clone(),
        };
        match journal.store_mut().log_event(&new) {
            Ok(id) => Some(Logged {
                instance,
                id: id.0,
                ts,
                line,
            }),
            Err(error) => {
                tracing::warn!(%error, "could not log an event");
                None
            }
        }
    }
}

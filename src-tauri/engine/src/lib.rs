//! The comfy-monitor engine: live connections to many ComfyUI instances and a correct picture
//! of every job on them.
//!
//! Hosts (the desktop shell, the CLI, tests) create an [`Engine`], add instances, and read
//! [`Event`]s from one bounded channel. The engine never imports tauri and never touches a
//! terminal: what to do with an event is the host's business.

pub mod actions;
pub mod api;
pub mod backoff;
pub mod event;
pub mod instance;
pub mod journal;
pub mod media_uri;
pub mod outputs;
pub mod probe;
pub mod processor;
mod sink;
mod supervisor;
pub use supervisor::{now_ms, MAX_LOOKUPS};
pub mod tls;
pub mod tracker;
pub mod ws;

pub use event::{
    ConnectionState, ConnectionStatus, ErrorDetails, Estimate, EstimateBasis, Event, EventKind,
    Fidelity, InstanceId, JobOrigin, JobState, JobView, NodeDuration, Preview, ServerInfo,
};
pub use instance::{Auth, InstanceSpec, Secret, SpecError};

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use supervisor::{Command, Supervisor};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Events buffered between the engine and a host.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Installs the rustls crypto provider once per process (both the HTTP and the socket client
/// use it).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no instance with id {0}")]
    UnknownInstance(InstanceId),
    #[error("an instance with id {0} is already monitored")]
    DuplicateInstance(InstanceId),
    #[error("the engine has shut down")]
    ShutDown,
    #[error("{name} is not connected ({detail})")]
    NotConnected { name: String, detail: String },
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error(transparent)]
    Action(#[from] actions::ActionError),
}

struct InstanceHandle {
    name: String,
    client_id: String,
    status: watch::Receiver<ConnectionStatus>,
    server: watch::Receiver<Option<supervisor::Connected>>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

/// Locks a mutex of the engine's; every value guarded stays valid after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A job the server accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submission {
    pub prompt_id: comfy_protocol::PromptId,
    pub number: Option<f64>,
    /// Outputs the server dropped because they failed validation; the rest runs.
    pub node_errors: Vec<comfy_protocol::http::NodeValidationError>,
}

/// Does this ComfyUI version honour `/interrupt {prompt_id}` (0.3.57+)?
fn targeted_interrupt(version: Option<&str>) -> bool {
    let Some(v) = version else { return false };
    let parts: Vec<u64> = v
        .split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .chain(std::iter::repeat(0))
        .take(3)
        .collect();
    (parts[0], parts[1], parts[2]) >= (0, 3, 57)
}

impl Drop for InstanceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A cheap, cloneable handle on the engine: every clone sees the same instances, every method
/// takes `&self`, and when the last clone is dropped every supervisor stops.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where supervisors send their events; taken by [`Engine::shutdown`], so the host's
    /// receiver ends once the last supervisor is gone.
    events: Mutex<Option<mpsc::Sender<Event>>>,
    dropped: Arc<AtomicU64>,
    instances: Mutex<HashMap<InstanceId, InstanceHandle>>,
    /// Ids for instances that are not saved, counting down from -1 so they never meet a
    /// store's row id.
    next_unsaved: AtomicI64,
}

/// What an action needs of a connected instance, taken out of the lock.
struct Reach {
    client_id: String,
    commands: mpsc::Sender<Command>,
    server: supervisor::Connected,
}

/// The engine's events, in the order they happened: a bounded channel (see `sink.rs` for what
/// a slow host loses and what it never does). A preview stops counting against its instance's
/// previews in the channel once it is received.
#[derive(Debug)]
pub struct Events(mpsc::Receiver<Event>);

impl Events {
    /// The next event; `None` once the engine is gone and every event was received.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await.map(received)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        self.0.try_recv().map(received)
    }

    /// No more events are taken; those already sent can still be received.
    pub fn close(&mut self) {
        self.0.close();
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A channel of events made by hand (a host's tests).
impl From<mpsc::Receiver<Event>> for Events {
    fn from(rx: mpsc::Receiver<Event>) -> Self {
        Self(rx)
    }
}

fn received(mut event: Event) -> Event {
    if let EventKind::Preview(preview) = &mut event.kind {
        preview.in_flight = event::InFlight::default();
    }
    event
}

impl Engine {
    /// An engine and the receiving end of its events.
    pub fn new(capacity: usize) -> (Self, Events) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inner = Inner {
            events: Mutex::new(Some(tx)),
            dropped: Arc::new(AtomicU64::new(0)),
            instances: Mutex::new(HashMap::new()),
            next_unsaved: AtomicI64::new(-1),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            Events(rx),
        )
    }

    fn instances_lock(&self) -> MutexGuard<'_, HashMap<InstanceId, InstanceHandle>> {
        lock(&self.inner.instances)
    }

    /// Starts monitoring an instance that is not saved (it gets an id of its own, below zero).
    /// Must be called inside a tokio runtime.
    pub fn add_instance(&self, spec: InstanceSpec) -> Result<InstanceId, EngineError> {
        self.add_instance_with(spec, journal::Restore::default())
    }

    /// [`Engine::add_instance`], resuming jobs the journal left unfinished (the first snapshot
    /// gives each its real outcome, or `lost` if the server has no record of it) and with the
    /// timing the journal learned.
    pub fn add_instance_with(
        &self,
        spec: InstanceSpec,
        restored: journal::Restore,
    ) -> Result<InstanceId, EngineError> {
        let id = InstanceId(self.inner.next_unsaved.fetch_sub(1, Ordering::Relaxed));
        self.add_saved(id, spec, restored)?;
        Ok(id)
    }

    /// Starts monitoring a saved instance under its store id, resuming its unfinished journal
    /// entries. Must be called inside a tokio runtime.
    pub fn add_saved(
        &self,
        id: InstanceId,
        spec: InstanceSpec,
        restored: journal::Restore,
    ) -> Result<(), EngineError> {
        let api = api::Api::new(&spec)?;
        // The sender is read under the instances lock: a shutdown either took it already (and
        // nothing is added) or drains this instance after the lock is released.
        let mut instances = self.instances_lock();
        let events = lock(&self.inner.events)
            .clone()
            .ok_or(EngineError::ShutDown)?;
        if instances.contains_key(&id) {
            return Err(EngineError::DuplicateInstance(id));
        }
        let (status_tx, status_rx) = watch::channel(ConnectionStatus {
            state: ConnectionState::Connecting,
            detail: "starting".into(),
            retry_in_ms: None,
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (server_tx, server_rx) = watch::channel(None);
        let sink = sink::EventSink::new(id, spec.name.clone(), events, self.inner.dropped.clone());
        let name = spec.name.clone();
        let client_id = spec.client_id.clone();
        let task = tokio::spawn(
            Supervisor::new(spec, api, sink, status_tx, cmd_rx, server_tx)
                .restore(restored)
                .run(),
        );
        instances.insert(
            id,
            InstanceHandle {
                name,
                client_id,
                status: status_rx,
                server: server_rx,
                commands: cmd_tx,
                task,
            },
        );
        Ok(())
    }

    /// Stops monitoring an instance (its socket is closed cleanly when possible).
    pub async fn remove_instance(&self, id: InstanceId) -> Result<(), EngineError> {
        let handle = self
            .instances_lock()
            .remove(&id)
            .ok_or(EngineError::UnknownInstance(id))?;
        stop(handle).await;
        Ok(())
    }

    /// The live connection state of an instance.
    pub fn status(&self, id: InstanceId) -> Option<watch::Receiver<ConnectionStatus>> {
        self.instances_lock().get(&id).map(|h| h.status.clone())
    }

    /// Id and name of every instance monitored, by id.
    pub fn instances(&self) -> Vec<(InstanceId, String)> {
        let mut v: Vec<_> = self
            .instances_lock()
            .iter()
            .map(|(id, h)| (*id, h.name.clone()))
            .collect();
        v.sort();
        v
    }

    /// Asks an instance to re-read its queue now.
    pub async fn refresh(&self, id: InstanceId) -> Result<(), EngineError> {
        let commands = self
            .instances_lock()
            .get(&id)
            .map(|h| h.commands.clone())
            .ok_or(EngineError::UnknownInstance(id))?;
        let _ = commands.send(Command::Refresh).await;
        Ok(())
    }

    fn connected(&self, id: InstanceId) -> Result<Reach, EngineError> {
        let instances = self.instances_lock();
        let h = instances.get(&id).ok_or(EngineError::UnknownInstance(id))?;
        let status = h.status.borrow().clone();
        let server = h.server.borrow().clone();
        match server {
            // On HTTP alone too: every action is HTTP (our jobs are then observed, not live).
            Some(server) if status.state.is_up() => Ok(Reach {
                client_id: h.client_id.clone(),
                commands: h.commands.clone(),
                server,
            }),
            _ => Err(EngineError::NotConnected {
                name: h.name.clone(),
                detail: status.detail,
            }),
        }
    }

    /// Queues a workflow (API format) with this app's client id, so the job is followed live
    /// from its first frame (by polling, like other clients' jobs, while on HTTP alone).
    pub async fn submit(
        &self,
        id: InstanceId,
        workflow: serde_json::Value,
        options: actions::SubmitOptions,
    ) -> Result<Submission, EngineError> {
        let reach = self.connected(id)?;
        comfy_protocol::http::check_api_workflow(&workflow).map_err(actions::ActionError::from)?;
        let expected = actions::new_prompt_id();
        let item = tracker::ActiveJob {
            prompt_id: expected.clone(),
            number: None,
            client_id: Some(Some(reach.client_id.clone())),
            graph: Some(workflow.clone()),
            outputs_to_execute: None,
            create_time: None,
        };
        let _ = reach.commands.send(Command::Expect(Box::new(item))).await;
        let result = reach
            .server
            .api
            .submit(&workflow, &reach.client_id, &expected, &options)
            .await;
        let actual = result.as_ref().ok().map(|a| a.prompt_id.clone());
        let _ = reach
            .commands
            .send(Command::Settle { expected, actual })
            .await;
        let accepted = result?;
        Ok(Submission {
            prompt_id: accepted.prompt_id,
            number: accepted.number,
            node_errors: accepted.node_errors,
        })
    }

    /// Cancels one job: removes it if pending, interrupts it if running, and never touches
    /// another job.
    pub async fn cancel(
        &self,
        id: InstanceId,
        prompt_id: &comfy_protocol::PromptId,
    ) -> Result<actions::CancelOutcome, EngineError> {
        let reach = self.connected(id)?;
        let info = &reach.server.info;
        let outcome = reach
            .server
            .api
            .cancel(
                prompt_id,
                info.jobs_api,
                targeted_interrupt(info.version.as_deref()),
            )
            .await?;
        let _ = reach.commands.send(Command::Refresh).await;
        Ok(outcome)
    }

    /// How the server recorded one job: finished (with its outputs), not known, or not
    /// finished yet ([`tracker::Lookup::Unavailable`] on servers with the jobs API).
    pub async fn lookup_job(
        &self,
        id: InstanceId,
        prompt_id: &comfy_protocol::PromptId,
    ) -> Result<tracker::Lookup, EngineError> {
        let server = self.connected(id)?.server;
        Ok(server.api.outcome(prompt_id, server.info.jobs_api).await?)
    }

    /// The graph a job ran or will run, as the server keeps it (`None`: not known to it).
    pub async fn job_graph(
        &self,
        id: InstanceId,
        prompt_id: &comfy_protocol::PromptId,
    ) -> Result<Option<serde_json::Value>, EngineError> {
        let server = self.connected(id)?.server;
        Ok(server
            .api
            .job_graph(prompt_id, server.info.jobs_api)
            .await?)
    }

    /// Downloads one output file of an instance into `dir`.
    pub async fn fetch_output(
        &self,
        id: InstanceId,
        file: &comfy_protocol::http::OutputFile,
        dir: &std::path::Path,
    ) -> Result<std::path::PathBuf, outputs::OutputError> {
        let server = self
            .connected(id)
            .map_err(|e| outputs::OutputError::Api(api::ApiError::Unreachable(e.to_string())))?
            .server;
        server.api.fetch_output(file, dir).await
    }

    /// One output file's bytes, for display (bounded by [`probe::MAX_VIEW_BYTES`]).
    pub async fn view_output(
        &self,
        id: InstanceId,
        file: &comfy_protocol::http::OutputFile,
    ) -> Result<bytes::Bytes, outputs::OutputError> {
        let server = self
            .connected(id)
            .map_err(|e| outputs::OutputError::Api(api::ApiError::Unreachable(e.to_string())))?
            .server;
        server.api.view_output(file).await
    }

    /// The machine's RAM and VRAM as `/system_stats` reports them now.
    pub async fn system_stats(
        &self,
        id: InstanceId,
    ) -> Result<comfy_protocol::http::SystemStats, EngineError> {
        let server = self.connected(id)?.server;
        Ok(server.api.system_stats().await?)
    }

    /// The client id an instance's socket uses (jobs queued under it are this app's).
    pub fn client_id(&self, id: InstanceId) -> Option<String> {
        self.instances_lock().get(&id).map(|h| h.client_id.clone())
    }

    /// Removes every pending job of an instance.
    pub async fn clear_pending(&self, id: InstanceId) -> Result<(), EngineError> {
        let reach = self.connected(id)?;
        reach.server.api.clear_pending().await?;
        let _ = reach.commands.send(Command::Refresh).await;
        Ok(())
    }

    /// Events dropped because the host read too slowly (only supersedable ones are dropped).
    pub fn dropped_events(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Closes every socket cleanly and stops every supervisor (for every clone of the handle);
    /// the events receiver then ends, and no instance can be added any more.
    pub async fn shutdown(&self) {
        lock(&self.inner.events).take();
        let handles: Vec<_> = self.instances_lock().drain().map(|(_, h)| h).collect();
        for h in handles {
            stop(h).await;
        }
    }
}

async fn stop(handle: InstanceHandle) {
    if handle.commands.send(Command::Shutdown).await.is_ok() {
        let grace = std::time::Duration::from_secs(2);
        let task = &mut { handle }.task;
        let _ = tokio::time::timeout(grace, task).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn targeted_interrupt_needs_0_3_57() {
        assert!(!super::targeted_interrupt(None));
        assert!(!super::targeted_interrupt(Some("0.3.56")));
        assert!(super::targeted_interrupt(Some("0.3.57")));
        assert!(super::targeted_interrupt(Some("0.3.64")));
        assert!(super::targeted_interrupt(Some("0.26.0")));
        assert!(super::targeted_interrupt(Some("1.0")));
    }
}

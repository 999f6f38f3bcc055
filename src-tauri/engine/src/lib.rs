//! The comfy-monitor engine: live connections to many ComfyUI instances and a correct picture
//! of every job on them.
//!
//! Hosts (the desktop shell, the CLI, tests) create an [`Engine`], add instances, and read
//! [`Event`]s from one bounded channel. The engine never imports tauri and never touches a
//! terminal: what to do with an event is the host's business.

pub mod api;
pub mod backoff;
pub mod event;
pub mod instance;
pub mod processor;
mod sink;
mod supervisor;
pub use supervisor::now_ms;
pub mod tracker;
pub mod ws;

pub use event::{
    ConnectionState, ConnectionStatus, ErrorDetails, Event, EventKind, Fidelity, JobOrigin,
    JobState, JobView, Preview, ServerInfo,
};
pub use instance::{Auth, InstanceSpec, Secret, SpecError};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// An instance's id within one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct InstanceId(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no instance with id {0:?}")]
    UnknownInstance(InstanceId),
    #[error(transparent)]
    Api(#[from] api::ApiError),
}

struct InstanceHandle {
    name: String,
    status: watch::Receiver<ConnectionStatus>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl Drop for InstanceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Owns one supervisor per instance. Dropping the engine stops them all.
pub struct Engine {
    events: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    instances: HashMap<InstanceId, InstanceHandle>,
    next_id: u64,
}

impl Engine {
    /// An engine and the receiving end of its events.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                events: tx,
                dropped: Arc::new(AtomicU64::new(0)),
                instances: HashMap::new(),
                next_id: 1,
            },
            rx,
        )
    }

    /// Starts monitoring an instance. Must be called inside a tokio runtime.
    pub fn add_instance(&mut self, spec: InstanceSpec) -> Result<InstanceId, EngineError> {
        let api = api::Api::new(&spec)?;
        let id = InstanceId(self.next_id);
        self.next_id += 1;
        let (status_tx, status_rx) = watch::channel(ConnectionStatus {
            state: ConnectionState::Connecting,
            detail: "starting".into(),
            retry_in_ms: None,
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let sink =
            sink::EventSink::new(spec.name.clone(), self.events.clone(), self.dropped.clone());
        let name = spec.name.clone();
        let task = tokio::spawn(Supervisor::new(spec, api, sink, status_tx, cmd_rx).run());
        self.instances.insert(
            id,
            InstanceHandle {
                name,
                status: status_rx,
                commands: cmd_tx,
                task,
            },
        );
        Ok(id)
    }

    /// Stops monitoring an instance (its socket is closed cleanly when possible).
    pub async fn remove_instance(&mut self, id: InstanceId) -> Result<(), EngineError> {
        let handle = self
            .instances
            .remove(&id)
            .ok_or(EngineError::UnknownInstance(id))?;
        stop(handle).await;
        Ok(())
    }

    /// The live connection state of an instance.
    pub fn status(&self, id: InstanceId) -> Option<watch::Receiver<ConnectionStatus>> {
        self.instances.get(&id).map(|h| h.status.clone())
    }

    pub fn instances(&self) -> Vec<(InstanceId, String)> {
        let mut v: Vec<_> = self
            .instances
            .iter()
            .map(|(id, h)| (*id, h.name.clone()))
            .collect();
        v.sort();
        v
    }

    /// Asks an instance to re-read its queue now.
    pub async fn refresh(&self, id: InstanceId) -> Result<(), EngineError> {
        let h = self
            .instances
            .get(&id)
            .ok_or(EngineError::UnknownInstance(id))?;
        let _ = h.commands.send(Command::Refresh).await;
        Ok(())
    }

    /// Events dropped because the host read too slowly (only supersedable ones are dropped).
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Closes every socket cleanly and stops every supervisor.
    pub async fn shutdown(mut self) {
        for (_, h) in self.instances.drain() {
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

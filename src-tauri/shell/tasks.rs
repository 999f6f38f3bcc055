//! Background tasks with an owner: dropping the handle stops the task, so nothing the shell
//! starts outlives what it serves.

/// A spawned task, aborted when this handle is dropped.
pub struct OwnedTask(tauri::async_runtime::JoinHandle<()>);

impl OwnedTask {
    pub fn spawn(future: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        Self(tauri::async_runtime::spawn(future))
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

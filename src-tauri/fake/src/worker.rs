//! The single worker that executes queued jobs one at a time, in `number` order, and produces
//! their messages in ComfyUI's canonical order (protocol reference §5.1).
//!
//! Nodes are interpreted like the real test nodes and core nodes would behave: the sampler test
//! nodes report one progress step per `step_delay_ms`, `MonitorTestFail` raises,
//! `MonitorTestMessages` sends node text and `monitor.custom` events, and the fake-only
//! `FakeLoadSampler` runs the benchmark load's streams (progress, previews, node text, custom
//! events) each on its own clock. The worker holds the state lock only for short synchronous
//! sections and never across a sleep, and it abandons a job silently when a restart bumped the
//! state's epoch. It must not answer HTTP or touch sockets other than through the state's
//! routing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frames;
use crate::graph::{self, ExecutionList, Graph, Node};
use crate::images::{self, ImageFormat};
use crate::json::J;
use crate::load::Cadence;
use crate::obj;
use crate::state::{now_ms, CacheEntry, FileInfo, HistoryEntry, QueueItem, Shared, State, Val};
use crate::ServerVersion;

/// Runs jobs until the state's epoch moves past `epoch` (a restart) or the task is aborted.
pub async fn run(shared: Arc<Shared>, epoch: u64) {
    loop {
        let (wake, next) = {
            let mut s = shared.lock();
            if s.epoch != epoch {
                return;
            }
            (s.signals.worker.clone(), s.take_next())
        };
        match next {
            Some(item) => Job::new(shared.clone(), epoch, item).run().await,
            None => wake.notified().await,
        }
    }
}

/// Why a job stopped before its end.
enum Stop {
    Interrupted {
        node_id: String,
        node_type: String,
    },
    Failed(J),
    /// A restart happened; nothing more may be sent for this job.
    Abandoned,
}

struct Abandoned;

impl From<Abandoned> for Stop {
    fn from(_: Abandoned) -> Stop {
        Stop::Abandoned
    }
}

#[derive(Clone)]
struct NodeProgress {
    value: J,
    max: J,
    finished: bool,
    started: bool,
}

/// ComfyUI's `ProgressBar` throttle state for one node run.
#[derive(Default)]
struct Bar {
    /// Every update is sent, whatever the version (the load reports at the rate it was given).
    unthrottled: bool,
    sent_any: bool,
    last_value: u64,
    last_time: Option<Instant>,
}

struct Job {
    shared: Arc<Shared>,
    epoch: u64,
    item: QueueItem,
    graph: Graph,
    client: Option<String>,
    version: ServerVersion,
    step_delay: Duration,
    sigs: HashMap<String, String>,
    messages: Vec<(String, J)>,
    progress: Vec<(String, NodeProgress)>,
    executed: Vec<String>,
    ui_outputs: J,
    meta: J,
    values: HashMap<String, Vec<Val>>,
    /// Per-job preview method (≥0.5.0): `extra_data.preview_method == "none"` turns previews
    /// off for nodes that consult it.
    previews_on: bool,
    current: Option<(String, String)>,
}

impl Job {
    fn new(shared: Arc<Shared>, epoch: u64, item: QueueItem) -> Job {
        let (version, step_delay) = {
            let s = shared.lock();
            (s.version, s.step_delay)
        };
        let graph = Graph::from_prompt(&item.prompt);
        let sigs = graph::signatures(&graph);
        let previews_on = version != ServerVersion::V0_26
            || item.extra_data.get("preview_method").and_then(J::as_str) != Some("none");
        Job {
            client: item.client_id(),
            shared,
            epoch,
            item,
            graph,
            version,
            step_delay,
            sigs,
            messages: Vec::new(),
            progress: Vec::new(),
            executed: Vec::new(),
            ui_outputs: J::obj(),
            meta: J::obj(),
            values: HashMap::new(),
            previews_on,
            current: None,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, Abandoned> {
        let mut s = self.shared.lock();
        if s.epoch != self.epoch {
            return Err(Abandoned);
        }
        Ok(f(&mut s))
    }

    fn prompt_id(&self) -> &str {
        &self.item.prompt_id
    }

    /// ComfyUI's `add_message`: stamped, recorded for history, sent to the submitter (or to
    /// everyone when `broadcast` and there is no submitter).
    fn add_message(&mut self, event: &str, mut data: J, broadcast: bool) -> Result<(), Abandoned> {
        data.set("timestamp", now_ms());
        self.messages.push((event.to_string(), data.clone()));
        let client = self.client.clone();
        self.with(|s| {
            if client.is_some() || broadcast {
                s.send_event(event, data, client.as_deref());
            }
        })
    }

    /// Sends to the submitter only; nothing when the job has no client id.
    fn to_submitter(&self, event: &str, data: J) -> Result<(), Abandoned> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        self.with(|s| s.send_event(event, data, Some(client)))
    }

    async fn run(mut self) {
        let outcome = self.execute().await;
        let (status_str, completed) = match outcome {
            Ok(()) => {
                let data = obj! { "prompt_id" => self.prompt_id() };
                if self.add_message("execution_success", data, false).is_err() {
                    return;
                }
                ("success", true)
            }
            Err(Stop::Interrupted { node_id, node_type }) => {
                let data = obj! {
                    "prompt_id" => self.prompt_id(),
                    "node_id" => node_id,
                    "node_type" => node_type,
                    "executed" => J::from(self.executed.clone()),
                };
                if self
                    .add_message("execution_interrupted", data, true)
                    .is_err()
                {
                    return;
                }
                ("error", false)
            }
            Err(Stop::Failed(data)) => {
                if self.add_message("execution_error", data, false).is_err() {
                    return;
                }
                ("error", false)
            }
            Err(Stop::Abandoned) => return,
        };
        let entry = HistoryEntry {
            item: self.item.clone(),
            outputs: std::mem::take(&mut self.ui_outputs),
            meta: std::mem::take(&mut self.meta),
            status_str,
            completed,
            messages: std::mem::take(&mut self.messages),
        };
        let _ = self.with(|s| s.finish_job(entry));
    }

    fn is_cached(&self, id: &str, cache: &HashMap<String, CacheEntry>) -> bool {
        self.sigs.get(id).is_some_and(|sig| cache.contains_key(sig))
    }

    async fn execute(&mut self) -> Result<(), Stop> {
        let prompt_id = self.prompt_id().to_string();
        self.add_message(
            "execution_start",
            obj! { "prompt_id" => prompt_id.as_str() },
            false,
        )?;

        let version = self.version;
        let sigs = self.sigs.clone();
        let cached: Vec<String> = self.with(|s| {
            if version != ServerVersion::V0_26 {
                // The classic cache only keeps what the current prompt can use.
                let keep: std::collections::HashSet<&String> = sigs.values().collect();
                s.cache.retain(|k, _| keep.contains(k));
            } else if s.cache.len() > 4096 {
                s.cache.clear();
            }
            self.graph
                .nodes
                .iter()
                .filter(|n| self.is_cached(&n.id, &s.cache))
                .map(|n| n.id.clone())
                .collect()
        })?;
        self.add_message(
            "execution_cached",
            obj! { "nodes" => J::from(cached.clone()), "prompt_id" => prompt_id.as_str() },
            false,
        )?;

        let mut list = ExecutionList::default();
        let is_cached = |id: &str| cached.iter().any(|c| c == id);
        for output in self.item.outputs.clone() {
            list.add_node(&self.graph, &output, &is_cached);
        }
        while !list.is_empty() {
            let Some(id) = list.next(&self.graph) else {
                return Err(Stop::Failed(self.cycle_error(list.pending())));
            };
            let Some(node) = self.graph.get(&id).cloned() else {
                list.complete(&id);
                continue;
            };
            if is_cached(&id) {
                self.visit_cached_output(&node)?;
            } else {
                self.execute_node(&node).await?;
            }
            list.complete(&id);
        }
        Ok(())
    }

    fn cycle_error(&self, pending: &[String]) -> J {
        let node_id = pending.first().cloned().unwrap_or_default();
        let node_type = self
            .graph
            .get(&node_id)
            .map(|n| n.class_type.clone())
            .unwrap_or_default();
        obj! {
            "prompt_id" => self.prompt_id(),
            "node_id" => node_id,
            "node_type" => node_type,
            "executed" => J::from(self.executed.clone()),
            "exception_message" => format!("Dependency cycle detected between nodes {}\n", pending.join(", ")),
            "exception_type" => "graph.DependencyCycleError",
            "traceback" => J::Arr(Vec::new()),
            "current_inputs" => J::obj(),
            "current_outputs" => J::from(self.graph.ids()),
        }
    }

    // ---- progress_state ------------------------------------------------------------------

    fn progress_entry(&mut self, id: &str) -> &mut NodeProgress {
        if let Some(pos) = self.progress.iter().position(|(k, _)| k == id) {
            return &mut self.progress[pos].1;
        }
        self.progress.push((
            id.to_string(),
            NodeProgress {
                value: J::from(0i64),
                max: J::from(1i64),
                finished: false,
                started: false,
            },
        ));
        let last = self.progress.len() - 1;
        &mut self.progress[last].1
    }

    fn progress_state_data(&self) -> J {
        let prompt_id = self.prompt_id();
        let nodes = self
            .progress
            .iter()
            .filter(|(_, p)| p.started || p.finished)
            .map(|(id, p)| {
                (
                    id.clone(),
                    obj! {
                        "value" => p.value.clone(),
                        "max" => p.max.clone(),
                        "state" => if p.finished { "finished" } else { "running" },
                        "node_id" => id.as_str(),
                        "prompt_id" => prompt_id,
                        "display_node_id" => id.as_str(),
                        "parent_node_id" => J::Null,
                        "real_node_id" => id.as_str(),
                    },
                )
            })
            .collect();
        obj! { "prompt_id" => prompt_id, "nodes" => J::Obj(nodes) }
    }

    /// `progress_state` goes to the submitter, or to everyone for a job without client id.
    /// Its nodes are kept with the running job for the companion's state route.
    fn send_progress_state(&self, s: &mut State) {
        if self.version != ServerVersion::Legacy {
            let data = self.progress_state_data();
            if let Some(running) = s.running.as_mut() {
                running.progress_state = data.get("nodes").cloned().unwrap_or_else(J::obj);
            }
            s.send_event("progress_state", data, self.client.as_deref());
        }
    }

    fn start_progress(&mut self, id: &str) -> Result<(), Abandoned> {
        let entry = self.progress_entry(id);
        entry.value = J::float(0.0);
        entry.max = J::float(1.0);
        entry.started = true;
        entry.finished = false;
        self.with(|s| self.send_progress_state(s))
    }

    fn finish_progress(&mut self, id: &str) -> Result<(), Abandoned> {
        let entry = self.progress_entry(id);
        entry.finished = true;
        entry.value = entry.max.clone();
        self.with(|s| self.send_progress_state(s))
    }

    /// What ComfyUI's progress hook does for one `ProgressBar.update_absolute` call.
    fn report(
        &mut self,
        node_id: &str,
        value: u64,
        total: u64,
        preview: Option<(ImageFormat, Arc<Vec<u8>>)>,
        bar: &mut Bar,
    ) -> Result<(), Stop> {
        let value = value.min(total);
        if self.version == ServerVersion::V0_26 && !bar.unthrottled {
            // ≥0.9.2: updates without a preview need 100 ms and 0.5 % since the last one sent.
            let now = Instant::now();
            let due = bar
                .last_time
                .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100))
                && (value.saturating_sub(bar.last_value)) as f64 / total.max(1) as f64 >= 0.005;
            if !(preview.is_some() || !bar.sent_any || value >= total || due) {
                return Ok(());
            }
            bar.sent_any = true;
            bar.last_time = Some(now);
            bar.last_value = value;
        }
        self.check_interrupt()?;
        {
            let entry = self.progress_entry(node_id);
            entry.value = J::from(value);
            entry.max = J::from(total);
            entry.started = true;
        }
        let prompt_id = self.prompt_id().to_string();
        let client = self.client.clone();
        let version = self.version;
        self.with(|s| {
            self.send_progress_state(s);
            let metadata_client = client
                .as_deref()
                .filter(|c| version != ServerVersion::Legacy && s.wants_metadata(c));
            if let (Some((format, image)), Some(c)) = (&preview, metadata_client) {
                let frame = frames::preview_with_metadata(*format, image, node_id, &prompt_id);
                s.send_preview(frame, Some(c), &prompt_id, node_id);
            }
            s.send_progress(&prompt_id, node_id, value, total, client.as_deref());
            if let Some((format, image)) = &preview {
                if metadata_client.is_none() {
                    let frame = frames::preview_legacy(*format, image);
                    s.send_preview(frame, client.as_deref(), &prompt_id, node_id);
                }
            }
        })?;
        Ok(())
    }

    // ---- interrupts and time ---------------------------------------------------------------

    fn check_interrupt(&self) -> Result<(), Stop> {
        if self.with(|s| s.interrupt_flag)? {
            let (node_id, node_type) = self.current.clone().unwrap_or_default();
            return Err(Stop::Interrupted { node_id, node_type });
        }
        Ok(())
    }

    /// Sleeps like `time.sleep` in a node, but wakes early for an interrupt.
    async fn sleep(&self, duration: Duration) -> Result<(), Stop> {
        let wake = self.with(|s| s.signals.interrupt.clone())?;
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.check_interrupt()?;
        if duration.is_zero() {
            // Let socket writers run even on a current-thread runtime.
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(duration) => {}
                _ = &mut notified => {}
            }
        }
        self.check_interrupt()
    }

    // ---- nodes -------------------------------------------------------------------------------

    fn visit_cached_output(&mut self, node: &Node) -> Result<(), Stop> {
        let entry = self.with(|s| {
            self.sigs
                .get(&node.id)
                .and_then(|sig| s.cache.get(sig).cloned())
        })?;
        let (outputs, ui) = entry
            .map(|e| (e.outputs, e.ui))
            .unwrap_or((Vec::new(), None));
        self.values.insert(node.id.clone(), outputs);
        self.to_submitter(
            "executed",
            obj! {
                "node" => node.id.as_str(),
                "display_node" => node.id.as_str(),
                "output" => ui.clone(),
                "prompt_id" => self.prompt_id(),
            },
        )?;
        // Since 0.3.68 a job without client id does not copy cached UI into its history.
        if let Some(ui) = ui {
            if self.client.is_some() || self.version != ServerVersion::V0_26 {
                self.record_ui(&node.id, ui);
            }
        }
        self.finish_progress(&node.id)?;
        Ok(())
    }

    fn record_ui(&mut self, id: &str, ui: J) {
        self.ui_outputs.set(id, ui);
        self.meta.set(
            id,
            obj! { "node_id" => id, "display_node" => id, "parent_node" => J::Null, "real_node_id" => id },
        );
    }

    async fn execute_node(&mut self, node: &Node) -> Result<(), Stop> {
        self.current = Some((node.id.clone(), node.class_type.clone()));
        self.start_progress(&node.id)?;
        let id = node.id.clone();
        self.with(|s| {
            if let Some(running) = s.running.as_mut() {
                running.last_node = Some(id);
            }
        })?;
        self.to_submitter(
            "executing",
            obj! { "node" => node.id.as_str(), "display_node" => node.id.as_str(), "prompt_id" => self.prompt_id() },
        )?;
        self.check_interrupt()?;
        let (outputs, ui) = self.node_body(node).await?;
        let sig = self.sigs.get(&node.id).cloned();
        let entry = CacheEntry {
            outputs: outputs.clone(),
            ui: ui.clone(),
        };
        self.with(|s| {
            if let Some(sig) = sig {
                s.cache.insert(sig, entry);
            }
        })?;
        self.values.insert(node.id.clone(), outputs);
        self.executed.push(node.id.clone());
        if let Some(ui) = ui {
            self.to_submitter(
                "executed",
                obj! {
                    "node" => node.id.as_str(),
                    "display_node" => node.id.as_str(),
                    "output" => ui.clone(),
                    "prompt_id" => self.prompt_id(),
                },
            )?;
            self.record_ui(&node.id, ui);
        }
        self.finish_progress(&node.id)?;
        self.current = None;
        Ok(())
    }

    /// The value on the other end of a link, from this run or from the cache.
    fn linked(&self, from: &str, index: usize) -> Val {
        if let Some(vals) = self.values.get(from) {
            return vals.get(index).cloned().unwrap_or(Val::Other);
        }
        let sig = self.sigs.get(from).cloned();
        self.with(|s| {
            sig.and_then(|sig| s.cache.get(&sig).cloned())
                .and_then(|e| e.outputs.get(index).cloned())
        })
        .ok()
        .flatten()
        .unwrap_or(Val::Other)
    }

    fn input_val(&self, node: &Node, name: &str) -> Option<Val> {
        let value = node.input(name)?;
        if let Some((from, index)) = graph::as_link(value) {
            return Some(self.linked(from, index));
        }
        value.as_i64().map(Val::Int)
    }

    fn int(&self, node: &Node, name: &str) -> Option<i64> {
        match self.input_val(node, name)? {
            Val::Int(i) => Some(i),
            _ => None,
        }
    }

    /// A widget number (`FLOAT` inputs; links are not followed).
    fn float(node: &Node, name: &str) -> Option<f64> {
        node.input(name).and_then(J::as_f64)
    }

    fn text(node: &Node, name: &str) -> Option<String> {
        node.input(name).and_then(J::as_str).map(str::to_string)
    }

    fn image(&self, node: &Node, name: &str) -> Option<(u32, u32, u32)> {
        match self.input_val(node, name)? {
            Val::Image { w, h, batch } => Some((w, h, batch)),
            _ => None,
        }
    }

    fn first_image(&self, node: &Node) -> Val {
        for (name, _) in &node.inputs {
            if let Some((w, h, batch)) = self.image(node, name) {
                return Val::Image { w, h, batch };
            }
        }
        Val::Image {
            w: 64,
            h: 64,
            batch: 1,
        }
    }

    fn ms(&self, node: &Node, name: &str) -> Duration {
        self.int(node, name)
            .map(|ms| Duration::from_millis(ms.max(0) as u64))
            .unwrap_or(self.step_delay)
    }

    async fn node_body(&mut self, node: &Node) -> Result<(Vec<Val>, Option<J>), Stop> {
        match node.class_type.as_str() {
            "MonitorTestSampler" | "MonitorTestPreviewMethodSampler" => {
                self.sampler(node, false).await
            }
            "MonitorTestFail" => self.sampler(node, true).await,
            "MonitorTestMessages" => self.messages_node(node).await,
            "FakeLoadSampler" => self.load_sampler(node).await,
            "SaveImage" => self.save_images(node, "output"),
            "PreviewImage" => self.save_images(node, "temp"),
            "EmptyImage" => {
                let w = self.int(node, "width").unwrap_or(512).clamp(1, 16384) as u32;
                let h = self.int(node, "height").unwrap_or(512).clamp(1, 16384) as u32;
                let batch = self.int(node, "batch_size").unwrap_or(1).clamp(1, 64) as u32;
                Ok((vec![Val::Image { w, h, batch }], None))
            }
            "LoadImage" => Ok((
                vec![
                    Val::Image {
                        w: 64,
                        h: 64,
                        batch: 1,
                    },
                    Val::Other,
                ],
                None,
            )),
            "GetImageSize" => {
                let (w, h, batch) = self.image(node, "image").unwrap_or((64, 64, 1));
                let text = format!("width: {w}, height: {h}\n batch size: {batch}");
                let frame = frames::node_text(&node.id, &text);
                self.with(|s| s.broadcast_binary(&frame))?;
                Ok((
                    vec![
                        Val::Int(i64::from(w)),
                        Val::Int(i64::from(h)),
                        Val::Int(i64::from(batch)),
                    ],
                    None,
                ))
            }
            "ImageScale" => {
                let (w0, h0, batch) = self.image(node, "image").unwrap_or((64, 64, 1));
                let w = self.int(node, "width").unwrap_or(0);
                let h = self.int(node, "height").unwrap_or(0);
                let (w, h) = match (w, h) {
                    (0, 0) => (w0, h0),
                    (0, h) => (
                        (f64::from(w0) * h as f64 / f64::from(h0.max(1))) as u32,
                        h as u32,
                    ),
                    (w, 0) => (
                        w as u32,
                        (f64::from(h0) * w as f64 / f64::from(w0.max(1))) as u32,
                    ),
                    (w, h) => (w as u32, h as u32),
                };
                Ok((vec![Val::Image { w, h, batch }], None))
            }
            "FakeBlocked" => {
                let message = Self::text(node, "message")
                    .unwrap_or_else(|| "blocked by FakeBlocked".to_string());
                let data = obj! {
                    "prompt_id" => self.prompt_id(),
                    "node_id" => node.id.as_str(),
                    "node_type" => node.class_type.as_str(),
                    "executed" => J::from(self.executed.clone()),
                    "exception_message" => format!("Execution Blocked: {message}"),
                    "exception_type" => "ExecutionBlocked",
                    "traceback" => J::Arr(Vec::new()),
                    "current_inputs" => J::Arr(Vec::new()),
                    "current_outputs" => J::Arr(Vec::new()),
                };
                // Not terminal and not recorded in history; broadcast when there is no client.
                let client = self.client.clone();
                self.with(|s| s.send_event("execution_error", data, client.as_deref()))?;
                Ok((Vec::new(), None))
            }
            "FakeCustomEvent" => {
                let kind = Self::text(node, "kind").unwrap_or_else(|| "fake.custom".to_string());
                let data = node.input("data").cloned().unwrap_or_else(J::obj);
                self.with(|s| s.send_event(&kind, data, None))?;
                Ok((Vec::new(), None))
            }
            _ => Ok((vec![self.first_image(node)], None)),
        }
    }

    async fn sampler(&mut self, node: &Node, fail: bool) -> Result<(Vec<Val>, Option<J>), Stop> {
        let steps = self.int(node, "steps").unwrap_or(12).max(1) as u64;
        let delay = self.ms(node, "step_delay_ms");
        let preview_size = self.int(node, "preview_size").unwrap_or(64);
        let seed = self.int(node, "seed").unwrap_or(0).max(0) as u64;
        let image_size = self.int(node, "image_size").unwrap_or(64).clamp(8, 1024) as u32;
        let mut format = if fail {
            Some(ImageFormat::Jpeg)
        } else {
            match Self::text(node, "preview_format").as_deref() {
                Some("PNG") => Some(ImageFormat::Png),
                Some("none") => None,
                _ => Some(ImageFormat::Jpeg),
            }
        };
        if node.class_type == "MonitorTestPreviewMethodSampler" && !self.previews_on {
            format = None;
        }
        let fail_after = fail.then(|| self.int(node, "fail_after").unwrap_or(3).max(0) as u64);
        let message = Self::text(node, "message")
            .unwrap_or_else(|| "MonitorTestFail: deliberate failure".to_string());
        let mut bar = Bar::default();
        for i in 0..steps {
            self.check_interrupt()?;
            self.sleep(delay).await?;
            if let Some(after) = fail_after.filter(|after| i >= *after) {
                return Err(Stop::Failed(self.runtime_error(
                    node,
                    &format!("{message} (MonitorTestFail after {after} of {steps} steps)\n"),
                )));
            }
            let preview = match format {
                Some(f) if preview_size > 0 => Some((
                    f,
                    images::preview(f, preview_size as u32, (i + 1) as u32, steps as u32, seed),
                )),
                _ => None,
            };
            self.report(&node.id, i + 1, steps, preview, &mut bar)?;
        }
        Ok((
            vec![Val::Image {
                w: image_size,
                h: image_size,
                batch: 1,
            }],
            None,
        ))
    }

    /// `FakeLoadSampler`: `steps` progress steps at `progress_per_sec` (0 = no wait), and while
    /// they run, preview frames, node text and `monitor.custom` events each at their own rate,
    /// all to the submitter (to everyone for a job without client id). Unlike the samplers it
    /// reports every step on every version: a benchmark gets the rate it asked for.
    async fn load_sampler(&mut self, node: &Node) -> Result<(Vec<Val>, Option<J>), Stop> {
        let steps = self.int(node, "steps").unwrap_or(20).max(1) as u64;
        let rate = |name: &str, default: f64| Self::float(node, name).unwrap_or(default);
        let preview_size = self.int(node, "preview_size").unwrap_or(512).max(0) as u32;
        let image_size = self.int(node, "image_size").unwrap_or(512).clamp(8, 1024) as u32;
        let preview_fps = rate("preview_fps", 0.0);
        // Framed before the clocks start, so a first encoding of the size does not show up as
        // a burst of late frames.
        let previews = if preview_size > 0 && preview_fps.is_finite() && preview_fps > 0.0 {
            LoadPreviews::new(preview_size, &node.id, self.prompt_id()).await
        } else {
            None
        };
        let start = tokio::time::Instant::now();
        let mut step_clock = Cadence::new(rate("progress_per_sec", 20.0), start);
        let unclocked = step_clock.next().is_none();
        let mut preview_clock =
            Cadence::new(if previews.is_some() { preview_fps } else { 0.0 }, start);
        let mut text_clock = Cadence::new(rate("node_text_per_sec", 0.0), start);
        let mut custom_clock = Cadence::new(rate("custom_events_per_sec", 0.0), start);
        let (mut done, mut sent_previews, mut texts, mut customs) = (0u64, 0usize, 0u64, 0u64);
        let mut bar = Bar {
            unthrottled: true,
            ..Bar::default()
        };
        while done < steps {
            let now = tokio::time::Instant::now();
            let wake = [
                step_clock.next(),
                preview_clock.next(),
                text_clock.next(),
                custom_clock.next(),
            ]
            .into_iter()
            .flatten()
            .min()
            .filter(|_| !unclocked)
            .unwrap_or(now);
            self.sleep(wake.saturating_duration_since(now)).await?;
            let now = tokio::time::Instant::now();
            let client = self.client.clone();
            let prompt_id = self.prompt_id().to_string();
            let version = self.version;
            let (text_due, custom_due) = (text_clock.due(now), custom_clock.due(now));
            let preview_due = preview_clock.due(now);
            self.with(|s| {
                for _ in 0..text_due {
                    texts += 1;
                    let line = format!("load step {done}/{steps}, text {texts}");
                    s.send_binary(frames::node_text(&node.id, &line), client.as_deref());
                }
                for _ in 0..custom_due {
                    customs += 1;
                    let data = obj! {
                        "node" => node.id.as_str(),
                        "index" => customs,
                        "text" => format!("load event {customs}"),
                        "prompt_id" => prompt_id.as_str(),
                        "audience" => if client.is_some() { "submitter" } else { "broadcast" },
                    };
                    s.send_event("monitor.custom", data, client.as_deref());
                }
                if let Some(previews) = &previews {
                    let metadata = client
                        .as_deref()
                        .is_some_and(|c| version != ServerVersion::Legacy && s.wants_metadata(c));
                    for _ in 0..preview_due {
                        let frame = previews.frame(sent_previews, metadata);
                        sent_previews += 1;
                        s.send_preview(frame, client.as_deref(), &prompt_id, &node.id);
                    }
                }
            })?;
            let step_due = if unclocked { 1 } else { step_clock.due(now) };
            for _ in 0..step_due.min(steps - done) {
                done += 1;
                self.report(&node.id, done, steps, None, &mut bar)?;
            }
        }
        Ok((
            vec![Val::Image {
                w: image_size,
                h: image_size,
                batch: 1,
            }],
            None,
        ))
    }

    fn runtime_error(&self, node: &Node, message: &str) -> J {
        let current_inputs = J::Obj(
            node.inputs
                .iter()
                .map(|(k, v)| {
                    let shown = match graph::as_link(v) {
                        Some(_) => J::from("tensor([[[[0.5000, 0.5000, 0.5000]]]])"),
                        None => v.clone(),
                    };
                    (k.clone(), J::Arr(vec![shown]))
                })
                .collect(),
        );
        obj! {
            "prompt_id" => self.prompt_id(),
            "node_id" => node.id.as_str(),
            "node_type" => node.class_type.as_str(),
            "executed" => J::from(self.executed.clone()),
            "exception_message" => message,
            "exception_type" => "RuntimeError",
            "traceback" => J::Arr(vec![
                J::from("  File \"fake-comfyui/execution.py\", line 542, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n"),
                J::from("  File \"fake-comfyui/execution.py\", line 303, in process_inputs\n    result = f(**inputs)\n             ^^^^^^^^^^^\n"),
                J::from("  File \"fake-comfyui/custom_nodes/comfy_test_nodes/__init__.py\", line 70, in _loop\n    raise RuntimeError(f\"{message} (MonitorTestFail after {fail_after} of {steps} steps)\")\n"),
            ]),
            "current_inputs" => current_inputs,
            "current_outputs" => J::from(self.graph.ids()),
        }
    }

    async fn messages_node(&mut self, node: &Node) -> Result<(Vec<Val>, Option<J>), Stop> {
        let text = Self::text(node, "text")
            .unwrap_or_else(|| "hello from MonitorTestMessages".to_string());
        let count = self.int(node, "count").unwrap_or(3).max(0) as u64;
        let delay = self.ms(node, "delay_ms");
        let target = Self::text(node, "target").unwrap_or_else(|| "both".to_string());
        let to_all = target == "broadcast" || target == "both";
        let to_submitter = target == "submitter" || target == "both";
        let total = count.max(1);
        let mut bar = Bar::default();
        for i in 0..count {
            self.check_interrupt()?;
            self.sleep(delay).await?;
            let line = format!("{text} [{}/{count}]", i + 1);
            let payload = obj! {
                "node" => node.id.as_str(),
                "index" => i + 1,
                "count" => count,
                "text" => line.as_str(),
                "prompt_id" => self.prompt_id(),
            };
            let client = self.client.clone();
            self.with(|s| {
                if to_all {
                    s.broadcast_binary(&frames::node_text(&node.id, &line));
                }
                if let (true, Some(c)) = (to_submitter, client.as_deref()) {
                    let frame = frames::node_text(&node.id, &format!("{line} (to submitter)"));
                    s.send_binary(frame, Some(c));
                }
                if to_all {
                    let mut data = payload.clone();
                    data.set("audience", "broadcast");
                    s.send_event("monitor.custom", data, None);
                }
                if let (true, Some(c)) = (to_submitter, client.as_deref()) {
                    let mut data = payload.clone();
                    data.set("audience", "submitter");
                    s.send_event("monitor.custom", data, Some(c));
                }
            })?;
            self.report(&node.id, i + 1, total, None, &mut bar)?;
        }
        let image = self.image(node, "image").map_or(
            Val::Image {
                w: 16,
                h: 16,
                batch: 1,
            },
            |(w, h, batch)| Val::Image { w, h, batch },
        );
        let ui = obj! { "text" => J::Arr(vec![J::from(format!("{text} x{count}"))]) };
        Ok((vec![image], Some(ui)))
    }

    fn save_images(&mut self, node: &Node, kind: &str) -> Result<(Vec<Val>, Option<J>), Stop> {
        let (w, h, batch) = self.image(node, "images").unwrap_or((64, 64, 1));
        let seed = self
            .prompt_id()
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
        let info = FileInfo {
            width: w,
            height: h,
            seed,
        };
        let prefix = Self::text(node, "filename_prefix").unwrap_or_else(|| "ComfyUI".to_string());
        let items = self.with(|s| {
            let prefix = if kind == "temp" {
                s.temp_prefix.clone()
            } else {
                prefix
            };
            s.write_images(kind, &prefix, batch, info)
        })?;
        let outputs = vec![Val::Image { w, h, batch }];
        Ok((outputs, Some(obj! { "images" => J::Arr(items) })))
    }
}

/// One load job's preview frames, framed once for its node and prompt: the cached JPEG ring
/// (see `images::preview_ring`) as type-4 frames with metadata and as legacy type-1 frames.
struct LoadPreviews {
    with_metadata: Vec<Bytes>,
    legacy: Vec<Bytes>,
}

impl LoadPreviews {
    /// `None` when the frames cannot be made (the encoder panicked): the job runs without.
    async fn new(size: u32, node_id: &str, prompt_id: &str) -> Option<LoadPreviews> {
        // Encoded at most once per size for the process; the load task warms it up front.
        let ring =
            tokio::task::spawn_blocking(move || images::preview_ring(ImageFormat::Jpeg, size))
                .await
                .ok()
                .filter(|ring| !ring.is_empty())?;
        let format = ImageFormat::Jpeg;
        Some(LoadPreviews {
            with_metadata: ring
                .iter()
                .map(|jpeg| frames::preview_with_metadata(format, jpeg, node_id, prompt_id))
                .collect(),
            legacy: ring
                .iter()
                .map(|jpeg| frames::preview_legacy(format, jpeg))
                .collect(),
        })
    }

    /// The `n`th frame of the job (the ring repeats).
    fn frame(&self, n: usize, metadata: bool) -> Bytes {
        let frames = if metadata {
            &self.with_metadata
        } else {
            &self.legacy
        };
        frames[n % frames.len()].clone()
    }
}

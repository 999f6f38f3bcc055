//! The send log: an NDJSON file of wall-clock stamps taken when the fake writes a frame to a
//! socket or receives an HTTP request, so a benchmark can measure a client's latency against it.
//!
//! Stamping must not distort the timing it measures: the hot path only reads the clock and pushes
//! a small record into a channel; formatting and file I/O happen on a dedicated writer thread,
//! which flushes whenever it has nothing queued and when the last handle is dropped. This module
//! knows nothing about jobs; callers decide what to stamp.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch with sub-millisecond precision.
pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// What one line records. Times are added when the record is stamped.
#[derive(Clone, Debug)]
pub enum Record {
    Progress {
        port: u16,
        sid: String,
        prompt_id: String,
        node: String,
        value: u64,
        max: u64,
    },
    Preview {
        port: u16,
        sid: String,
        prompt_id: String,
    },
    Request {
        port: u16,
        method: String,
        /// Without the query string, which may carry a token.
        path: String,
    },
}

impl Record {
    fn to_line(&self, ms: f64) -> String {
        let value = match self {
            Record::Progress {
                port,
                sid,
                prompt_id,
                node,
                value,
                max,
            } => serde_json::json!({
                "kind": "progress", "port": port, "prompt_id": prompt_id, "node": node,
                "value": value, "max": max, "sent_ms": ms, "sid": sid,
            }),
            Record::Preview {
                port,
                sid,
                prompt_id,
            } => serde_json::json!({
                "kind": "preview", "port": port, "prompt_id": prompt_id, "sent_ms": ms, "sid": sid,
            }),
            Record::Request { port, method, path } => serde_json::json!({
                "kind": "request", "port": port, "method": method, "path": path, "received_ms": ms,
            }),
        };
        value.to_string()
    }
}

enum Msg {
    Line(Record, f64),
    Flush(mpsc::SyncSender<()>),
}

struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after it wrote and flushed everything queued.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A handle on one send-log file; clones share the file and its writer thread. Several
/// servers (the binary's `--instances`) can share one log: every line carries its port.
///
/// Lines (one JSON object each, in the order they were stamped, except `request` lines, which
/// are written when the answer is ready but carry the time the request arrived):
///
/// ```text
/// {"kind":"progress","port":P,"prompt_id":"…","node":"…","value":V,"max":M,"sent_ms":T,"sid":"…"}
/// {"kind":"preview","port":P,"prompt_id":"…","sent_ms":T,"sid":"…"}      (only with_previews)
/// {"kind":"request","port":P,"method":"POST","path":"/api/interrupt","received_ms":T}
/// ```
///
/// `T` is milliseconds since the Unix epoch as a float with sub-millisecond precision; `sid` is
/// the socket the frame was written to (a broadcast writes one line per socket).
#[derive(Clone)]
pub struct SendLog {
    writer: Arc<Writer>,
    previews: bool,
}

impl std::fmt::Debug for SendLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendLog")
            .field("previews", &self.previews)
            .finish_non_exhaustive()
    }
}

impl SendLog {
    /// Creates (truncates) the file at `path` and starts its writer thread.
    pub fn create(path: impl AsRef<Path>) -> io::Result<SendLog> {
        let file = File::create(path)?;
        SendLog::to_writer(file)
    }

    /// A send log into any writer (a file, a pipe, ...).
    pub fn to_writer(out: impl Write + Send + 'static) -> io::Result<SendLog> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fake-comfyui-send-log".to_string())
            .spawn(move || write_lines(rx, BufWriter::with_capacity(64 * 1024, out)))?;
        Ok(SendLog {
            writer: Arc::new(Writer {
                tx: Some(tx),
                thread: Some(thread),
            }),
            previews: false,
        })
    }

    /// Also stamps every preview frame (off by default: previews can be thousands a second).
    pub fn with_previews(mut self, on: bool) -> SendLog {
        self.previews = on;
        self
    }

    pub fn logs_previews(&self) -> bool {
        self.previews
    }

    /// Blocks until every line stamped so far is written and flushed to the file.
    pub fn flush(&self) {
        let (ack, done) = mpsc::sync_channel(1);
        if let Some(tx) = &self.writer.tx {
            if tx.send(Msg::Flush(ack)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    /// Stamps `record` with the current time.
    pub(crate) fn stamp(&self, record: Record) {
        self.stamp_at(record, epoch_ms());
    }

    pub(crate) fn stamp_at(&self, record: Record, ms: f64) {
        if let Some(tx) = &self.writer.tx {
            let _ = tx.send(Msg::Line(record, ms));
        }
    }
}

fn write_lines(rx: mpsc::Receiver<Msg>, mut out: impl Write) {
    let mut failed = false;
    let mut write = |out: &mut dyn Write, msg: Msg| match msg {
        Msg::Line(record, ms) => {
            if !failed {
                if let Err(e) = writeln!(out, "{}", record.to_line(ms)) {
                    tracing::warn!("the send log cannot be written: {e}");
                    failed = true;
                }
            }
        }
        Msg::Flush(ack) => {
            let _ = out.flush();
            let _ = ack.send(());
        }
    };
    while let Ok(msg) = rx.recv() {
        write(&mut out, msg);
        // Drain what is queued, then flush once: cheap under load, prompt when idle.
        while let Ok(msg) = rx.try_recv() {
            write(&mut out, msg);
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

/// A record to stamp when its frame is written to the socket (see `ws::run`).
#[derive(Clone, Debug)]
pub struct Stamp {
    pub log: SendLog,
    pub record: Record,
}

impl Stamp {
    pub fn sent_now(self) {
        self.log.stamp(self.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_have_the_documented_fields_and_are_on_disk_after_flush() {
        let out = Shared::default();
        let log = SendLog::to_writer(out.clone()).unwrap();
        log.stamp_at(
            Record::Progress {
                port: 8188,
                sid: "monitor".into(),
                prompt_id: "p".into(),
                node: "1".into(),
                value: 3,
                max: 20,
            },
            1_700_000_000_123.456,
        );
        log.stamp(Record::Request {
            port: 8188,
            method: "POST".into(),
            path: "/api/interrupt".into(),
        });
        log.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"kind": "progress", "port": 8188, "prompt_id": "p", "node": "1",
                "value": 3, "max": 20, "sent_ms": 1_700_000_000_123.456, "sid": "monitor"})
        );
        assert_eq!(lines[1]["kind"], "request");
        assert_eq!(lines[1]["path"], "/api/interrupt");
        assert!(lines[1]["received_ms"].as_f64().unwrap() > 1.7e12);
    }

    #[test]
    fn dropping_the_last_handle_writes_everything_queued() {
        let out = Shared::default();
        let log = SendLog::to_writer(out.clone()).unwrap();
        let clone = log.clone();
        for i in 0..1000 {
            clone.stamp(Record::Preview {
                port: 1,
                sid: "s".into(),
                prompt_id: format!("p{i}"),
            });
        }
        drop(clone);
        drop(log);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1000);
    }
}

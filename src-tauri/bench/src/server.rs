//! The fake ComfyUI in a process of its own, so the CPU time the measuring process reads is its
//! own work and none of the server's.
//!
//! `comfy-bench serve-fake` (hidden) hosts a [`FakeComfy`], prints `ready PORT`, then answers one
//! line per command line on stdin. [`ServerProcess`] is the measuring side. Only the fake's public
//! API is used; commands that make the server push frames end with a broadcast "sentinel"
//! message, so a reader knows every frame before it has arrived (a socket keeps order).

use anyhow::{bail, Context};
use fake_comfyui::{FakeComfy, FakeConfig, ServerVersion};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The custom message type that closes a burst of frames.
pub const SENTINEL: &str = "comfy-bench.sentinel";

/// The node the sampler runs as in every workflow here.
pub const SAMPLER_NODE: &str = "1";

/// How long a command may take before the server is declared stuck (a soak batch included).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A sampler job with a 512 px preview per step and a saved image, as the test nodes run it.
pub fn sampler_workflow(
    steps: u64,
    step_delay_ms: u64,
    preview_size: u32,
    seed: u64,
) -> serde_json::Value {
    serde_json::json!({
        SAMPLER_NODE: {"class_type": "MonitorTestSampler", "inputs": {
            "steps": steps, "step_delay_ms": step_delay_ms, "preview_size": preview_size,
            "seed": seed, "image_size": 512
        }},
        "2": {"class_type": "SaveImage", "inputs": {"images": [SAMPLER_NODE, 0], "filename_prefix": "bench"}}
    })
}

/// Runs the server side until stdin closes or `quit` arrives.
pub fn serve(version: ServerVersion) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let fake = FakeComfy::start(FakeConfig {
            version,
            ..FakeConfig::default()
        })
        .await
        .context("starting the fake server")?;
        let mut out = tokio::io::stdout();
        out.write_all(format!("ready {}\n", fake.addr().port()).as_bytes())
            .await?;
        out.flush().await?;
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut frames = Frames::default();
        let mut seed = 0u64;
        while let Some(line) = lines.next_line().await? {
            let words: Vec<&str> = line.split_whitespace().collect();
            let reply = match handle(&fake, &words, &mut frames, &mut seed).await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => format!("err {e:#}"),
            };
            out.write_all(format!("{reply}\n").as_bytes()).await?;
            out.flush().await?;
        }
        Ok(())
    })
}

/// The pre-encoded preview frame, built once per prompt id.
#[derive(Default)]
struct Frames {
    prompt_id: String,
    frame: Vec<u8>,
}

fn arg<T: std::str::FromStr>(words: &[&str], i: usize, what: &str) -> anyhow::Result<T> {
    words
        .get(i)
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("`{}` needs {what} as argument {i}", words.join(" ")))
}

/// Queues a workflow under `sid`; a refusal is an answer, not a panic.
fn submit(fake: &FakeComfy, prompt: serde_json::Value, sid: &str) -> anyhow::Result<String> {
    let done = fake.submit_with(fake_comfyui::SubmitOptions {
        prompt,
        client_id: Some(sid.to_owned()),
        ..fake_comfyui::SubmitOptions::default()
    })?;
    Ok(done.prompt_id)
}

async fn handle(
    fake: &FakeComfy,
    words: &[&str],
    frames: &mut Frames,
    seed: &mut u64,
) -> anyhow::Result<Option<String>> {
    let sentinel = |seq: u64| fake.broadcast_json(SENTINEL, serde_json::json!({ "seq": seq }));
    Ok(Some(match words.first().copied().unwrap_or("") {
        "wait-client" => {
            let sid: String = arg(words, 1, "a client id")?;
            let found =
                tokio::time::timeout(Duration::from_secs(30), fake.wait_for_client(Some(&sid)))
                    .await
                    .context("no such client connected within 30 s")?;
            format!("client {found}")
        }
        "wait-gone" => {
            let sid: String = arg(words, 1, "a client id")?;
            tokio::time::timeout(Duration::from_secs(30), fake.wait_until_unregistered(&sid))
                .await
                .context("the client stayed registered for 30 s")?;
            "gone".into()
        }
        // submit SID STEPS STEP_DELAY_MS PREVIEW_SIZE: one job, answered once it runs.
        "submit" => {
            let sid: String = arg(words, 1, "a client id")?;
            let workflow = sampler_workflow(
                arg(words, 2, "steps")?,
                arg(words, 3, "a step delay")?,
                arg(words, 4, "a preview size")?,
                0,
            );
            let id = submit(fake, workflow, &sid)?;
            let started = tokio::time::Instant::now();
            while fake.queue_snapshot().0.as_deref() != Some(id.as_str()) {
                if started.elapsed() > Duration::from_secs(10) {
                    bail!("job {id} did not start within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            format!("prompt {id}")
        }
        // previews COUNT PROMPT_ID SEQ: type-4 frames to every socket, then the sentinel.
        "previews" => {
            let count: usize = arg(words, 1, "a count")?;
            let prompt: String = arg(words, 2, "a prompt id")?;
            let seq: u64 = arg(words, 3, "a sequence number")?;
            if frames.prompt_id != prompt || frames.frame.is_empty() {
                let jpeg = crate::frames::preview_jpeg(crate::frames::PREVIEW_PX, 1)?;
                frames.frame = crate::frames::preview_frame(&jpeg, SAMPLER_NODE, &prompt);
                frames.prompt_id = prompt;
            }
            for _ in 0..count {
                fake.send_raw_binary(frames.frame.clone());
            }
            sentinel(seq);
            format!("queued {}", frames.frame.len())
        }
        // progress SID PROMPT_ID COUNT SEQ: `progress` messages to one socket, then the sentinel.
        "progress" => {
            let sid: String = arg(words, 1, "a client id")?;
            let prompt: String = arg(words, 2, "a prompt id")?;
            let count: usize = arg(words, 3, "a count")?;
            let seq: u64 = arg(words, 4, "a sequence number")?;
            fake.flood_progress_of(&sid, &prompt, count);
            sentinel(seq);
            "queued".into()
        }
        // jobs SID COUNT STEPS PREVIEW_SIZE: COUNT jobs at once, answered when the queue is idle.
        "jobs" => {
            let sid: String = arg(words, 1, "a client id")?;
            let count: u64 = arg(words, 2, "a count")?;
            let steps: u64 = arg(words, 3, "steps")?;
            let size: u32 = arg(words, 4, "a preview size")?;
            for _ in 0..count {
                *seed += 1;
                submit(fake, sampler_workflow(steps, 0, size, *seed), &sid)?;
            }
            fake.wait_idle().await;
            "idle".into()
        }
        "down" => {
            fake.set_down(true);
            "ok".into()
        }
        "up" => {
            fake.set_down(false);
            "ok".into()
        }
        "restart" => {
            fake.restart().await;
            "ok".into()
        }
        "rss" => format!("rss {}", crate::sys::rss_kib(None)?),
        "quit" => return Ok(None),
        other => bail!("unknown command `{other}`"),
    }))
}

/// The measuring side's handle on a `serve-fake` process; dropping it kills the process.
pub struct ServerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl ServerProcess {
    /// Starts this binary's `serve-fake` and waits for its port.
    pub async fn spawn() -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("locating comfy-bench itself")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("serve-fake")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the fake server process")?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut server = ServerProcess {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            port: 0,
        };
        let ready = server.read_line(Duration::from_secs(30)).await?;
        server.port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("the fake server said {ready:?} instead of `ready PORT`"))?;
        Ok(server)
    }

    async fn read_line(&mut self, limit: Duration) -> anyhow::Result<String> {
        match tokio::time::timeout(limit, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => bail!("the fake server process exited"),
            Ok(Err(e)) => Err(e).context("reading from the fake server process"),
            Err(_) => bail!("the fake server process did not answer within {limit:?}"),
        }
    }

    /// Sends one command and returns the answer (an `err …` answer is an error).
    pub async fn call(&mut self, command: &str) -> anyhow::Result<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .context("writing to the fake server process")?;
        self.stdin.flush().await?;
        let answer = self.read_line(CALL_TIMEOUT).await?;
        match answer.strip_prefix("err ") {
            Some(e) => bail!("the fake server refused `{command}`: {e}"),
            None => Ok(answer),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self, client_id: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?clientId={client_id}", self.port)
    }

    /// Asks the process to stop, and kills it if it does not within a second.
    pub async fn stop(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

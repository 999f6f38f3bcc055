//! Real-socket clients for the tests: a tokio-tungstenite WebSocket and a tiny HTTP/1.1 client.
//! Timeouts here are failure guards only; nothing waits for time to pass.

use std::future::Future;
use std::time::Duration;

use fake_comfyui::{FakeComfy, FakeConfig, ServerVersion};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes absurdly long (a hang, not a timing assertion).
pub async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

pub async fn fake(version: ServerVersion) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        version,
        step_delay: Duration::from_millis(2),
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts")
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(Value),
    Binary(Vec<u8>),
}

impl Frame {
    pub fn json(&self) -> &Value {
        match self {
            Frame::Text(v) => v,
            Frame::Binary(b) => panic!("expected a text frame, got {} binary bytes", b.len()),
        }
    }

    pub fn kind(&self) -> String {
        match self {
            Frame::Text(v) => v["type"].as_str().unwrap_or("?").to_string(),
            Frame::Binary(b) => format!("bin{}", b.get(3).copied().unwrap_or(0)),
        }
    }

    /// A short description used to compare message sequences.
    pub fn sig(&self) -> String {
        let Frame::Text(v) = self else {
            return self.kind();
        };
        let data = &v["data"];
        match v["type"].as_str().unwrap_or("?") {
            "status" => format!("status:{}", data["status"]["exec_info"]["queue_remaining"]),
            "executing" => format!("executing:{}", data["node"].as_str().unwrap_or("null")),
            "executed" => format!("executed:{}", data["node"].as_str().unwrap_or("?")),
            "progress" => format!("progress:{}/{}", data["value"], data["max"]),
            "progress_state" => {
                let nodes = data["nodes"].as_object().expect("nodes map");
                let mut parts: Vec<String> = nodes
                    .iter()
                    .map(|(k, n)| format!("{k}{}", &n["state"].as_str().unwrap_or("?")[..1]))
                    .collect();
                parts.sort();
                format!("ps:{}", parts.join(","))
            }
            other => other.to_string(),
        }
    }
}

pub async fn connect(fake: &FakeComfy, sid: &str) -> Ws {
    let (ws, _) = guard(
        "connect",
        tokio_tungstenite::connect_async(fake.ws_url(sid)),
    )
    .await
    .expect("websocket connects");
    ws
}

/// Connects, reads the hello, sends the feature flags and waits until the server processed them.
pub async fn connect_negotiated(fake: &FakeComfy, sid: &str) -> Ws {
    let mut ws = connect(fake, sid).await;
    let hello = next(&mut ws).await;
    assert_eq!(hello.json()["data"]["sid"], sid);
    send_json(
        &mut ws,
        json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}}),
    )
    .await;
    guard("flags processed", fake.wait_for_client(Some(sid))).await;
    if fake.version() != ServerVersion::Legacy {
        assert_eq!(next(&mut ws).await.kind(), "feature_flags");
    }
    ws
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("send");
}

pub async fn next(ws: &mut Ws) -> Frame {
    loop {
        let msg = guard("a frame", ws.next())
            .await
            .expect("socket still open")
            .expect("no socket error");
        match msg {
            Message::Text(t) => {
                return Frame::Text(serde_json::from_str(t.as_str()).expect("json frame"))
            }
            Message::Binary(b) => return Frame::Binary(b.to_vec()),
            _ => continue,
        }
    }
}

/// Reads until `executing {node: null, prompt_id}` and returns every frame including it.
pub async fn until_end(ws: &mut Ws, prompt_id: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let f = next(ws).await;
        let end = matches!(&f, Frame::Text(v)
            if v["type"] == "executing" && v["data"]["node"].is_null() && v["data"]["prompt_id"] == prompt_id);
        frames.push(f);
        if end {
            return frames;
        }
    }
}

/// Reads until a broadcast `{"type": "sentinel", "data": {"n": n}}` and returns what came before.
pub async fn until_sentinel(ws: &mut Ws, n: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let f = next(ws).await;
        if matches!(&f, Frame::Text(v) if v["type"] == "sentinel" && v["data"]["n"] == n) {
            return frames;
        }
        frames.push(f);
    }
}

pub fn sentinel(fake: &FakeComfy, n: u64) {
    fake.broadcast_json("sentinel", json!({ "n": n }));
}

pub fn sigs(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(Frame::sig).collect()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub async fn http(
    fake: &FakeComfy,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    guard("an HTTP answer", async {
        let mut stream = TcpStream::connect(fake.addr()).await.expect("tcp connect");
        let body = body.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            fake.addr(),
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        parse_response(&raw)
    })
    .await
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

pub async fn post_json(fake: &FakeComfy, path: &str, body: &Value) -> Resp {
    http(fake, "POST", path, Some(&body.to_string()), &[]).await
}

/// `POST /prompt` with an exact body text (keeps the graph's key order).
pub async fn post_prompt_text(fake: &FakeComfy, body: &str) -> Resp {
    http(fake, "POST", "/prompt", Some(body), &[]).await
}

pub async fn get(fake: &FakeComfy, path: &str) -> Resp {
    http(fake, "GET", path, None, &[]).await
}

/// A sampler -> blur -> save graph plus a preview of the sampler, as in the recorded traces.
pub fn sampler_graph(steps: u32, delay_ms: u32, preview: &str) -> String {
    format!(
        r#"{{"1": {{"class_type": "MonitorTestSampler", "inputs": {{"steps": {steps}, "step_delay_ms": {delay_ms}, "preview_size": 32, "seed": 1, "preview_format": "{preview}", "image_size": 64}}}},
 "2": {{"class_type": "ImageBlur", "inputs": {{"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}}},
 "3": {{"class_type": "SaveImage", "inputs": {{"images": ["2", 0], "filename_prefix": "it"}}}},
 "4": {{"class_type": "PreviewImage", "inputs": {{"images": ["1", 0]}}}}}}"#
    )
}

/// A single long sampler job (steps × delay) that is interrupted or cancelled by the test.
pub fn long_graph(seed: u32) -> String {
    format!(
        r#"{{"1": {{"class_type": "MonitorTestSampler", "inputs": {{"steps": 10000, "step_delay_ms": 5, "preview_size": 0, "seed": {seed}}}}},
 "2": {{"class_type": "SaveImage", "inputs": {{"images": ["1", 0], "filename_prefix": "long"}}}}}}"#
    )
}

pub fn short_graph(seed: u32) -> String {
    format!(
        r#"{{"1": {{"class_type": "MonitorTestSampler", "inputs": {{"steps": 2, "step_delay_ms": 1, "preview_size": 0, "seed": {seed}}}}},
 "2": {{"class_type": "SaveImage", "inputs": {{"images": ["1", 0], "filename_prefix": "short"}}}}}}"#
    )
}

/// Posts `{"prompt": graph, "client_id": client}` and returns the prompt id.
pub async fn queue(fake: &FakeComfy, graph: &str, client: Option<&str>) -> String {
    let body = match client {
        Some(c) => format!(r#"{{"prompt": {graph}, "client_id": "{c}"}}"#),
        None => format!(r#"{{"prompt": {graph}}}"#),
    };
    let resp = post_prompt_text(fake, &body).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["prompt_id"]
        .as_str()
        .expect("prompt id")
        .to_string()
}

/// Waits on the socket until the running job reached its first sampler step.
pub async fn until_progress(ws: &mut Ws) {
    loop {
        if next(ws).await.kind() == "progress" {
            return;
        }
    }
}

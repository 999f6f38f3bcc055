//! The `/ws` endpoint: registration under a sid, the hello `status`, the `executing` replay,
//! feature-flag negotiation and the per-socket writer.
//!
//! Registration reproduces ComfyUI's routing table exactly, including open bug #16010: a reused
//! sid replaces the routing entry without closing the old socket, and when the old socket later
//! closes its cleanup removes the entry of the new one. Each socket runs in its own task whose
//! abort handle is kept in the state, so the fake can kill sockets without a close frame. This
//! module must not decide which messages a job produces.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::frames;
use crate::json::J;
use crate::obj;
use crate::state::{Conn, Outbound, Shared};
use crate::{ServerVersion, SocketMode};

pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let mode = shared.lock().socket_mode;
    match mode {
        SocketMode::Accept => {}
        SocketMode::Refuse(status) => return refused(status),
        SocketMode::Hang => return std::future::pending().await,
        SocketMode::AcceptThenClose => {
            return ws.on_upgrade(|mut socket| async move {
                let close = CloseFrame {
                    code: 1011,
                    reason: "fake: closing at once".into(),
                };
                let _ = socket.send(Message::Close(Some(close))).await;
            })
        }
    }
    let client_id = params.get("clientId").filter(|s| !s.is_empty()).cloned();
    // ComfyUI never limits outgoing frames; incoming client messages are limited to 4 MiB.
    ws.max_message_size(4 << 20)
        .on_upgrade(move |socket| serve(shared, socket, client_id))
}

/// What a proxy that does not pass WebSockets answers the upgrade with.
fn refused(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{status}: WebSockets are not passed through here"),
    )
        .into_response();
    if code.is_redirection() {
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/login"));
    }
    response
}

/// Unregisters the socket when its task ends for any reason, aborts included.
struct Guard {
    shared: Arc<Shared>,
    conn_id: u64,
    epoch: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        if s.epoch != self.epoch {
            return;
        }
        // Only a socket that is still registered cleans up. Like ComfyUI's handler, it removes
        // the routing entry of its sid unconditionally, even when a newer socket owns it now.
        if let Some(conn) = s.conns.remove(&self.conn_id) {
            s.routes.remove(&conn.sid);
            s.sid_flags.remove(&conn.sid);
            s.signals.bump_clients();
        }
    }
}

async fn serve(shared: Arc<Shared>, socket: WebSocket, client_id: Option<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (conn_id, epoch, sid) = {
        let mut s = shared.lock();
        let sid = client_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let conn_id = s.next_id();
        s.conns.insert(
            conn_id,
            Conn {
                sid: sid.clone(),
                tx: tx.clone(),
                abort: None,
                first_frame_done: false,
            },
        );
        if s.replay.is_none() {
            s.routes.insert(sid.clone(), conn_id);
            s.sid_flags.insert(sid.clone(), J::obj());
            let hello = obj! { "status" => s.exec_info(), "sid" => sid.as_str() };
            let _ = tx.send(Outbound::Text(frames::event_text("status", hello)));
            let replay = s
                .running
                .as_ref()
                .filter(|r| r.item.client_id().as_deref() == Some(sid.as_str()))
                .and_then(|r| r.last_node.clone());
            if let Some(node) = replay {
                let _ = tx.send(Outbound::Text(frames::event_text(
                    "executing",
                    obj! { "node" => node },
                )));
            }
        } else if let Some(script) = s.replay.clone() {
            // Replay sockets get the recorded frames, hello included, and nothing else.
            for frame in &script.frames {
                let _ = tx.send(frame.clone());
            }
        }
        s.signals.bump_clients();
        (conn_id, s.epoch, sid)
    };
    let guard = Guard {
        shared: shared.clone(),
        conn_id,
        epoch,
    };
    let task = tokio::spawn(run(shared.clone(), socket, rx, guard, sid));
    {
        let mut s = shared.lock();
        let current = s.epoch == epoch;
        match s.conns.get_mut(&conn_id) {
            Some(conn) if current => conn.abort = Some(task.abort_handle()),
            // Killed between registration and now.
            _ => task.abort(),
        }
    }
    let _ = task.await;
}

async fn run(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    guard: Guard,
    sid: String,
) {
    let mut slot_used = false;
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                let sent = match out {
                    Outbound::Text(text) => socket.send(Message::Text(text.into())).await,
                    Outbound::Binary(bytes) => socket.send(Message::Binary(bytes)).await,
                    // Send-log stamps are taken here, after the frame left this socket's queue
                    // and right before it is handed to the socket (which writes and flushes
                    // it): queueing behind earlier frames is not counted, a full TCP send
                    // buffer (a peer that reads slowly) is.
                    Outbound::StampedText(text, stamp) => {
                        stamp.sent_now();
                        socket.send(Message::Text(text.into())).await
                    }
                    Outbound::StampedBinary(bytes, stamp) => {
                        stamp.sent_now();
                        socket.send(Message::Binary(bytes)).await
                    }
                    Outbound::Flood { prompt_id, count } => flood(&mut socket, &prompt_id, count).await,
                    Outbound::FloodEvents { count, per_sec } => flood_events(&mut socket, count, per_sec).await,
                    Outbound::Stall => {
                        // Half-open: never read (no pongs) or write again; queued frames are lost.
                        while rx.recv().await.is_some() {}
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if !slot_used {
                            slot_used = first_text(&shared, guard.conn_id, &sid, text.as_str());
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    drop(guard);
}

/// Handles a client text frame while the "first message" slot is open. Returns whether the
/// slot is now used: only a frame that parses as JSON uses it.
fn first_text(shared: &Shared, conn_id: u64, sid: &str, text: &str) -> bool {
    let Ok(message) = J::parse(text) else {
        tracing::debug!("ignoring a client text frame that is not JSON");
        return false;
    };
    let mut s = shared.lock();
    if s.version != ServerVersion::Legacy
        && message.get("type").and_then(J::as_str) == Some("feature_flags")
    {
        let flags = message.get("data").cloned().unwrap_or_else(J::obj);
        s.sid_flags.insert(sid.to_string(), flags);
        let features = s.server_features();
        // Like ComfyUI, the reply goes through the routing table under this sid.
        s.send_event("feature_flags", features, Some(sid));
    }
    if let Some(conn) = s.conns.get_mut(&conn_id) {
        conn.first_frame_done = true;
    }
    s.signals.bump_clients();
    true
}

async fn flood(socket: &mut WebSocket, prompt_id: &str, count: usize) -> Result<(), axum::Error> {
    for i in 1..=count {
        let text = frames::event_text(
            "progress",
            obj! { "value" => i, "max" => count, "prompt_id" => prompt_id, "node" => "1" },
        );
        socket.send(Message::Text(text.into())).await?;
    }
    Ok(())
}

/// `count` custom messages of a new type each, in bursts every 10 ms adding up to `per_sec`.
async fn flood_events(
    socket: &mut WebSocket,
    count: usize,
    per_sec: f64,
) -> Result<(), axum::Error> {
    let burst = ((per_sec / 100.0).ceil() as usize).max(1);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
    let mut sent = 0;
    while sent < count {
        tick.tick().await;
        for _ in 0..burst.min(count - sent) {
            sent += 1;
            let text = frames::event_text(&format!("fake.flood.{sent}"), obj! { "i" => sent });
            socket.send(Message::Text(text.into())).await?;
        }
    }
    Ok(())
}

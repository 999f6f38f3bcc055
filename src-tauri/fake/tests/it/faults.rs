//! Misbehaviour on purpose: authentication, restarts, dropped, stalled and flooded sockets,
//! downtime.

use fake_comfyui::{FakeAuth, ServerVersion, SocketMode};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::support::*;

async fn upgrade_status(url: &str, header: Option<(&str, &str)>) -> u16 {
    let mut request = url.into_client_request().expect("request");
    if let Some((k, v)) = header {
        request.headers_mut().insert(
            k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>()
                .expect("name"),
            v.parse().expect("value"),
        );
    }
    match guard("upgrade", tokio_tungstenite::connect_async(request)).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected upgrade error {e}"),
    }
}

#[tokio::test]
async fn bearer_auth_rejects_http_and_the_websocket_upgrade() {
    let fake = fake(ServerVersion::V0_26).await;
    fake.set_auth(Some(FakeAuth::Bearer("s3cret".into())));
    let denied = get(&fake, "/queue").await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert_eq!(upgrade_status(&fake.ws_url("a"), None).await, 401);
    assert!(fake.connected_clients().is_empty());

    let allowed = http(
        &fake,
        "GET",
        "/queue",
        None,
        &[("Authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        upgrade_status(&fake.ws_url("a"), Some(("authorization", "Bearer s3cret"))).await,
        101
    );
    let log = fake.request_log();
    let upgrades: Vec<u16> = log
        .iter()
        .filter(|r| r.path.starts_with("/ws"))
        .map(|r| r.status)
        .collect();
    assert_eq!(upgrades, [401, 101]);
    assert_eq!(
        log.last().and_then(|r| r.header("Authorization")),
        Some("Bearer s3cret")
    );

    fake.set_auth(None);
    assert_eq!(get(&fake, "/queue").await.status, 200);
}

#[tokio::test]
async fn basic_header_and_query_token_gates_answer_like_their_proxies() {
    let fake = fake(ServerVersion::V0_26).await;
    fake.set_auth(Some(FakeAuth::Basic {
        user: "u".into(),
        password: "p".into(),
    }));
    let denied = get(&fake, "/system_stats").await;
    assert_eq!(denied.status, 401);
    assert!(denied
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic")));
    let ok = http(
        &fake,
        "GET",
        "/system_stats",
        None,
        &[("Authorization", "Basic dTpw")],
    )
    .await;
    assert_eq!(ok.status, 200);

    fake.set_auth(Some(FakeAuth::Header {
        name: "x-api-key".into(),
        value: "k".into(),
    }));
    assert_eq!(get(&fake, "/prompt").await.status, 403);
    assert_eq!(upgrade_status(&fake.ws_url("a"), None).await, 403);
    assert_eq!(
        upgrade_status(&fake.ws_url("a"), Some(("x-api-key", "k"))).await,
        101
    );

    fake.set_auth(Some(FakeAuth::QueryToken("t".into())));
    let redirect = get(&fake, "/queue").await;
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("location"), Some("/login"));
    assert_eq!(get(&fake, "/login").await.status, 200);
    assert_eq!(get(&fake, "/queue?token=t").await.status, 200);
    assert_eq!(upgrade_status(&fake.ws_url("a"), None).await, 302);
    let url = format!("{}&token=t", fake.ws_url("a"));
    assert_eq!(upgrade_status(&url, None).await, 101);
}

#[tokio::test]
async fn restart_forgets_queue_and_history_and_cuts_sockets_without_close_frame() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    let done = queue(&fake, &sampler_graph(1, 1, "none"), Some("A")).await;
    until_end(&mut ws, &done).await;
    let history = get(&fake, &format!("/history/{done}")).await.json();
    let temp = history[&done]["outputs"]["4"]["images"][0]["filename"]
        .as_str()
        .expect("temp file")
        .to_string();
    let output = history[&done]["outputs"]["3"]["images"][0]["filename"]
        .as_str()
        .expect("output file")
        .to_string();
    let running = queue(&fake, &long_graph(1), Some("A")).await;
    until_progress(&mut ws).await;
    queue(&fake, &short_graph(2), Some("A")).await;

    fake.restart().await;
    // Frames already on the wire still arrive; then the connection ends without a close frame.
    let end = guard("socket end", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(
        matches!(
            end,
            Some(Err(WsError::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            ))) | Some(Err(WsError::Io(_)))
                | None
        ),
        "expected a connection cut without close frame, got {end:?}"
    );

    assert_eq!(
        get(&fake, "/queue").await.json(),
        json!({"queue_running": [], "queue_pending": []})
    );
    assert_eq!(get(&fake, "/history").await.json(), json!({}));
    assert_eq!(
        get(&fake, &format!("/history/{running}")).await.json(),
        json!({})
    );
    assert_eq!(
        get(&fake, &format!("/api/jobs/{running}")).await.status,
        404
    );
    assert_eq!(
        get(&fake, &format!("/view?filename={temp}&type=temp"))
            .await
            .status,
        404
    );
    assert_eq!(
        get(&fake, &format!("/view?filename={output}&type=output"))
            .await
            .status,
        200
    );

    let mut again = connect(&fake, "A").await;
    assert_eq!(
        next(&mut again).await.json(),
        &json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "A"}})
    );
    let renumbered = post_prompt_text(&fake, &format!(r#"{{"prompt": {}}}"#, short_graph(3))).await;
    assert_eq!(renumbered.json()["number"], 0);
    guard("idle", fake.wait_idle()).await;
}

#[tokio::test]
async fn dropped_sockets_end_without_a_close_frame_and_can_reconnect() {
    let fake = fake(ServerVersion::V0_3_64).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    fake.drop_sockets();
    let end = guard("socket end", ws.next()).await;
    assert!(!matches!(end, Some(Ok(Message::Close(_)))), "{end:?}");
    assert!(fake.connected_clients().is_empty());
    let mut again = connect(&fake, "A").await;
    assert_eq!(next(&mut again).await.json()["data"]["sid"], "A");
    assert_eq!(fake.connected_clients(), ["A"]);
}

#[tokio::test]
async fn stalled_sockets_receive_nothing_more() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    fake.stall_sockets();
    sentinel(&fake, 1);
    fake.send_raw_text("{\"type\": \"late\"}");
    // Half-open: still registered, so broadcasts are "sent" but never written.
    assert_eq!(fake.connected_clients(), ["A"]);
    fake.drop_sockets();
    let end = guard("socket end", ws.next()).await;
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "a stalled socket wrote {end:?}"
    );
}

#[tokio::test]
async fn server_that_is_down_closes_new_connections_at_once() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    fake.set_down(true);
    let end = guard("socket end", ws.next()).await;
    assert!(!matches!(end, Some(Ok(Message::Text(_)))));
    let refused = guard(
        "connect while down",
        tokio_tungstenite::connect_async(fake.ws_url("A")),
    )
    .await;
    assert!(refused.is_err());
    fake.set_down(false);
    let mut back = connect(&fake, "A").await;
    assert_eq!(next(&mut back).await.kind(), "status");
}

#[tokio::test]
async fn flood_sends_every_progress_message_in_order() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect(&fake, "A").await;
    next(&mut ws).await;
    fake.flood_progress("A", 500);
    for i in 1..=500u64 {
        let frame = next(&mut ws).await;
        assert_eq!(frame.json()["data"]["value"], i);
        assert_eq!(frame.json()["data"]["max"], 500);
    }
}

#[tokio::test]
async fn raw_and_extension_frames_reach_every_socket() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut a = connect(&fake, "A").await;
    let mut b = connect(&fake, "B").await;
    next(&mut a).await;
    next(&mut b).await;
    fake.broadcast_json("crystools.monitor", json!({"cpu_utilization": 12.5}));
    fake.send_raw_text("{not json");
    fake.send_raw_binary(vec![0, 0, 0]);
    for ws in [&mut a, &mut b] {
        assert_eq!(next(ws).await.json()["type"], "crystools.monitor");
        let raw = guard("raw text", ws.next())
            .await
            .expect("open")
            .expect("ok");
        assert_eq!(raw, Message::Text("{not json".into()));
        assert_eq!(next(ws).await, Frame::Binary(vec![0, 0, 0]));
    }
}

#[tokio::test]
async fn socket_modes_refuse_hang_or_drop_the_upgrade_while_http_works() {
    let fake = fake(ServerVersion::V0_26).await;
    for (mode, status) in [
        (SocketMode::Refuse(400), 400),
        (SocketMode::Refuse(403), 403),
        (SocketMode::Refuse(404), 404),
        (SocketMode::Refuse(302), 302),
    ] {
        fake.set_socket_mode(mode);
        assert_eq!(upgrade_status(&fake.ws_url("a"), None).await, status);
        assert_eq!(get(&fake, "/queue").await.status, 200, "{mode:?}");
    }
    let redirect = fake
        .request_log()
        .into_iter()
        .rfind(|r| r.path.starts_with("/ws"))
        .expect("logged");
    assert_eq!(redirect.status, 302);
    assert!(fake.connected_clients().is_empty());

    // Accepted, then closed at once with a close frame.
    fake.set_socket_mode(SocketMode::AcceptThenClose);
    let (mut ws, response) = guard(
        "upgrade",
        tokio_tungstenite::connect_async(fake.ws_url("b")),
    )
    .await
    .expect("upgraded");
    assert_eq!(response.status().as_u16(), 101);
    match guard("close", ws.next()).await {
        Some(Ok(Message::Close(Some(c)))) => assert_eq!(u16::from(c.code), 1011),
        other => panic!("{other:?}"),
    }

    // Never answered: the upgrade is still waiting when HTTP has long answered.
    fake.set_socket_mode(SocketMode::Hang);
    let hung = tokio::spawn(tokio_tungstenite::connect_async(fake.ws_url("c")));
    assert_eq!(get(&fake, "/queue").await.status, 200);
    assert_eq!(get(&fake, "/system_stats").await.status, 200);
    assert!(!hung.is_finished());
    hung.abort();

    fake.set_socket_mode(SocketMode::Accept);
    assert_eq!(upgrade_status(&fake.ws_url("d"), None).await, 101);
    for (text, mode) in [
        ("accept", SocketMode::Accept),
        ("refuse-403", SocketMode::Refuse(403)),
        ("hang", SocketMode::Hang),
        ("close", SocketMode::AcceptThenClose),
    ] {
        assert_eq!(text.parse::<SocketMode>().expect(text), mode);
    }
    assert!("refuse-200".parse::<SocketMode>().is_err());
}

#[tokio::test]
async fn a_custom_event_flood_sends_every_message_with_a_type_of_its_own() {
    let fake = fake(ServerVersion::V0_26).await;
    let mut ws = connect_negotiated(&fake, "flooded").await;
    fake.flood_custom_events(500, 10_000.0);
    let mut seen = 0;
    while seen < 500 {
        let frame = next(&mut ws).await;
        if frame.kind().starts_with("fake.flood.") {
            seen += 1;
            assert_eq!(frame.kind(), format!("fake.flood.{seen}"));
            assert_eq!(frame.json()["data"]["i"], json!(seen));
        }
    }
}

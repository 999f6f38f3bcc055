//! HTTP answers that must not hurt: bodies over their endpoint's cap or never ending, downloads
//! that trickle past the request timeout, stall or grow past their cap, redirects. Real sockets
//! on loopback against the fake's faults, and real time (paused time would fire the timeouts
//! while the sockets work); nothing waits for time, only for answers.

use crate::live::{engine, spec, until, GUARD};
use comfy_engine::api::{Api, ApiError, HttpLimits};
use comfy_engine::outputs::OutputError;
use comfy_engine::{Auth, ConnectionState, EventKind, InstanceSpec, Secret};
use comfy_protocol::http::OutputFile;
use comfy_protocol::PromptId;
use fake_comfyui::{FakeAuth, FakeComfy, FakeConfig, HttpFault, ServerVersion};
use std::path::Path;
use std::time::Duration;

async fn fake(version: ServerVersion, auth: Option<FakeAuth>) -> FakeComfy {
    FakeComfy::start(FakeConfig {
        version,
        auth,
        ..FakeConfig::default()
    })
    .await
    .expect("fake server starts")
}

fn api(server: &FakeComfy) -> Api {
    Api::new(&InstanceSpec::new("fake", &server.base_url()).unwrap()).unwrap()
}

/// Short limits, so the tests are quick: what matters is how they compare.
fn quick() -> HttpLimits {
    HttpLimits {
        request_timeout: Duration::from_secs(1),
        download_idle: Duration::from_secs(1),
        download_total: GUARD,
        max_download: 1 << 20,
    }
}

fn png(name: &str) -> OutputFile {
    OutputFile {
        filename: name.into(),
        subfolder: String::new(),
        kind: "output".into(),
    }
}

/// Every file name in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_queue_larger_than_its_cap_is_refused_naming_the_endpoint_and_the_cap() {
    let server = fake(ServerVersion::V0_3_64, None).await;
    let api = api(&server);
    for chunked in [false, true] {
        server.set_http_fault(
            "/queue",
            Some(HttpFault::Sized {
                len: 33 << 20,
                chunked,
            }),
        );
        let e = api.queue().await.unwrap_err();
        assert!(
            matches!(&e, ApiError::TooLarge { cap, .. } if *cap == 32 << 20),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "the answer to api/queue is larger than 32 MiB; refused"
        );
    }
    // Under the cap, the same endpoint is read as before.
    server.set_http_fault("/queue", None);
    assert!(api.queue().await.unwrap().running.is_empty());
}

#[tokio::test]
async fn an_endless_body_is_refused_at_its_endpoints_cap() {
    let server = fake(ServerVersion::V0_26, None).await;
    let api = api(&server);
    // One job's answer: never ending, undeclared.
    server.set_http_fault("/jobs/p1", Some(HttpFault::Endless { declared: None }));
    let e = api.outcome(&PromptId::from("p1"), true).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the answer to api/jobs/p1 is larger than 4 MiB; refused"
    );
    // Declaring a terabyte: refused before a byte of it is read (else this would not end).
    server.set_http_fault(
        "/system_stats",
        Some(HttpFault::Endless {
            declared: Some(1 << 40),
        }),
    );
    let mut probing = api.clone();
    let e = probing.probe().await.unwrap_err();
    assert!(matches!(e, ApiError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("system_stats"), "{e}");
}

#[tokio::test]
async fn an_instance_whose_probe_never_ends_is_unreachable_saying_why() {
    let server = fake(ServerVersion::V0_26, None).await;
    server.set_http_fault("/system_stats", Some(HttpFault::Endless { declared: None }));
    let (_engine, mut rx) = engine(spec(&server, "cm-endless"));
    let (e, _) = until(
        &mut rx,
        "unreachable",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::Unreachable),
    )
    .await;
    let EventKind::Connection(c) = &e.kind else {
        unreachable!()
    };
    assert!(
        c.detail
            .contains("the answer to api/system_stats is larger than 4 MiB"),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_download_slower_than_the_request_timeout_completes() {
    let server = fake(ServerVersion::V0_26, None).await;
    // 30 pieces, one every 100 ms: three times the request timeout, never idle for long.
    server.set_http_fault(
        "/view",
        Some(HttpFault::Trickle {
            chunk: 1000,
            every: Duration::from_millis(100),
            chunks: 30,
            stall: false,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let api = api(&server).with_limits(quick());
    let path = api
        .fetch_output(&png("slow.mp4"), dir.path())
        .await
        .unwrap();
    assert_eq!(path, dir.path().join("slow.mp4"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 30_000);
    assert_eq!(listing(dir.path()), ["slow.mp4"], "no temporary file left");
}

#[tokio::test]
async fn a_stalled_download_fails_after_the_idle_timeout_and_leaves_nothing() {
    let server = fake(
        ServerVersion::V0_26,
        Some(FakeAuth::QueryToken("s3cret".into())),
    )
    .await;
    server.set_http_fault(
        "/view",
        Some(HttpFault::Trickle {
            chunk: 1000,
            every: Duration::from_millis(10),
            chunks: 3,
            stall: true,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut s = InstanceSpec::new("fake", &server.base_url()).unwrap();
    s.auth = Auth::QueryToken(Secret::new("s3cret"));
    let api = Api::new(&s).unwrap().with_limits(quick());
    let e = api
        .fetch_output(&png("stuck.png"), dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the download stalled: nothing arrived for 1 s"
    );
    assert!(!format!("{e} {e:?}").contains("s3cret"));
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[tokio::test]
async fn a_download_over_the_size_cap_is_refused_and_leaves_nothing() {
    let server = fake(ServerVersion::V0_26, None).await;
    let dir = tempfile::tempdir().unwrap();
    let api = api(&server).with_limits(quick());
    for chunked in [false, true] {
        server.set_http_fault(
            "/view",
            Some(HttpFault::Sized {
                len: 2 << 20,
                chunked,
            }),
        );
        let e = api
            .fetch_output(&png("huge.mp4"), dir.path())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, OutputError::Api(ApiError::TooLarge { cap, .. }) if *cap == 1 << 20),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "huge.mp4 is larger than 1 MiB; refused");
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }
    // At the cap exactly, it is saved.
    server.set_http_fault(
        "/view",
        Some(HttpFault::Sized {
            len: 1 << 20,
            chunked: true,
        }),
    );
    api.fetch_output(&png("huge.mp4"), dir.path())
        .await
        .unwrap();
    assert_eq!(listing(dir.path()), ["huge.mp4"]);
}

#[tokio::test]
async fn a_download_never_touches_a_users_own_part_file() {
    let server = fake(ServerVersion::V0_26, None).await;
    server.set_http_fault(
        "/view",
        Some(HttpFault::Sized {
            len: 10_000,
            chunked: false,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.part"), b"mine").unwrap();
    let api = api(&server);
    let png_path = api.fetch_output(&png("x.png"), dir.path()).await.unwrap();
    let mp4_path = api.fetch_output(&png("x.mp4"), dir.path()).await.unwrap();
    assert_eq!(std::fs::metadata(png_path).unwrap().len(), 10_000);
    assert_eq!(std::fs::metadata(mp4_path).unwrap().len(), 10_000);
    assert_eq!(std::fs::read(dir.path().join("x.part")).unwrap(), b"mine");
    assert_eq!(listing(dir.path()), ["x.mp4", "x.part", "x.png"]);
}

#[tokio::test]
async fn a_download_dropped_half_way_leaves_no_partial_file() {
    let server = fake(ServerVersion::V0_26, None).await;
    server.set_http_fault(
        "/view",
        Some(HttpFault::Trickle {
            chunk: 1000,
            every: Duration::from_millis(1),
            chunks: 2,
            stall: true,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let api = api(&server).with_limits(HttpLimits {
        download_idle: GUARD,
        ..quick()
    });
    let file = png("dropped.png");
    let mut download = Box::pin(api.fetch_output(&file, dir.path()));
    // Drive the download until its temporary file exists, then drop it (as a closed window or
    // a cancelled command does).
    tokio::time::timeout(GUARD, async {
        while listing(dir.path()).is_empty() {
            tokio::select! {
                biased;
                r = &mut download => panic!("the stalled download ended: {r:?}"),
                () = tokio::task::yield_now() => {}
            }
        }
    })
    .await
    .expect("the download starts");
    assert!(listing(dir.path())[0].starts_with("dropped.png."));
    assert!(listing(dir.path())[0].ends_with(".part"));
    drop(download);
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[tokio::test]
async fn a_redirect_to_https_says_which_url_to_use_and_is_no_auth_failure() {
    let server = fake(ServerVersion::V0_26, None).await;
    let port = server.addr().port();
    server.set_http_fault(
        "/system_stats",
        Some(HttpFault::Redirect {
            status: 301,
            location: format!("https://127.0.0.1:{port}/api/system_stats?token=s3cret"),
        }),
    );
    let mut api = api(&server);
    let e = api.probe().await.unwrap_err();
    assert!(!e.is_auth(), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("the server redirects to https://127.0.0.1:{port}/ (HTTP 301); use that URL")
    );

    // The monitor says so, and does not call it an authentication failure.
    let (_engine, mut rx) = engine(spec(&server, "cm-redirect"));
    let (e, _) = until(
        &mut rx,
        "unreachable",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state != ConnectionState::Connecting),
    )
    .await;
    let EventKind::Connection(c) = &e.kind else {
        unreachable!()
    };
    assert_eq!(c.state, ConnectionState::Unreachable, "{c:?}");
    assert!(c.detail.contains("use that URL"), "{c:?}");

    // So does Test connection.
    let auth = comfy_store::AuthSettings::None;
    let secrets = Default::default();
    let check = comfy_app::check::test_connection(
        None,
        comfy_app::check::Candidate {
            name: "",
            url: &server.base_url(),
            auth: &auth,
            accept_invalid_certs: false,
            certificate_sha256: None,
            secrets: &secrets,
            saved: None,
        },
    )
    .await
    .unwrap();
    let http = &check.steps()[0];
    assert!(!http.ok && !http.auth, "{http:?}");
    assert!(http.detail.contains("use that URL"), "{http:?}");
}

#[tokio::test]
async fn a_redirect_to_a_login_page_is_still_an_auth_failure() {
    let server = fake(
        ServerVersion::V0_26,
        Some(FakeAuth::QueryToken("right".into())),
    )
    .await;
    let mut s = InstanceSpec::new("fake", &server.base_url()).unwrap();
    s.auth = Auth::QueryToken(Secret::new("wrong"));
    let e = Api::new(&s).unwrap().probe().await.unwrap_err();
    assert!(matches!(e, ApiError::Auth(_)), "{e:?}");
    assert!(e.to_string().contains("/login"), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
}

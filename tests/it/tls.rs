//! TLS against a real rustls server on loopback: a TLS front (certificates made with rcgen)
//! before the fake ComfyUI, terminating TLS and passing the bytes through, so HTTP and the
//! socket meet the same certificate. Servers with their own certificate (pinned), a private CA
//! in the OS trust store, and the certificates that must be refused.

use crate::live::{fake, spec, until, GUARD};
use comfy_engine::probe::check_connection;
use comfy_engine::tls::fingerprint;
use comfy_engine::{Auth, ConnectionState, EventKind, InstanceSpec, Secret};
use comfy_model::{CertificateFingerprint, CertificateRefusal, CheckStep, ConnectionCheck};
use fake_comfyui::{FakeAuth, FakeComfy, FakeConfig, ServerVersion};
use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A certificate and its key, as a server presents them.
#[derive(Clone)]
struct Identity {
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Identity {
    fn fingerprint(&self) -> CertificateFingerprint {
        fingerprint(&self.der)
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

/// The names a certificate for the TLS front must carry to be valid for it.
const LOOPBACK: &[&str] = &["127.0.0.1", "localhost"];

/// A certificate signed by its own key: a server with its own certificate.
fn self_signed(names: &[&str]) -> Identity {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    Identity {
        der: params.self_signed(&key).unwrap().der().clone(),
        key: key.serialize_der(),
    }
}

/// A private certificate authority, trusted as the OS trust store of this test process: the
/// platform verifier reads `SSL_CERT_FILE` on Linux, as OpenSSL does. Set once, before any test
/// that needs it builds a verifier; nothing else in this process verifies through the OS store.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    _dir: tempfile::TempDir,
}

fn trusted_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "comfy-monitor test CA");
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        std::env::set_var("SSL_CERT_FILE", &path);
        TestCa {
            issuer: Issuer::new(params, key),
            _dir: dir,
        }
    })
}

/// A certificate issued by the trusted CA, for `names`, valid between the two dates.
fn issued(names: &[&str], valid: Option<(i32, i32)>) -> Identity {
    let ca = trusted_ca();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if let Some((from, until)) = valid {
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
    }
    Identity {
        der: params.signed_by(&key, &ca.issuer).unwrap().der().clone(),
        key: key.serialize_der(),
    }
}

/// A TLS server on `127.0.0.1:0` that passes each connection's bytes to the fake.
struct TlsFront {
    addr: SocketAddr,
    /// Who accepts new connections: the certificate presented now.
    current: Arc<Mutex<(tokio_rustls::TlsAcceptor, CertificateFingerprint)>>,
    /// Bumped when the certificate is replaced: open connections close, as after a restart.
    generation: watch::Sender<u64>,
    /// Handshakes completed, by the certificate presented (each one could carry credentials).
    handshakes: Arc<Mutex<HashMap<CertificateFingerprint, usize>>>,
    task: JoinHandle<()>,
}

fn acceptor(identity: &Identity) -> (tokio_rustls::TlsAcceptor, CertificateFingerprint) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![identity.der.clone()], identity.key())
    .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        identity.fingerprint(),
    )
}

impl TlsFront {
    async fn start(backend: SocketAddr, identity: &Identity) -> TlsFront {
        let current = Arc::new(Mutex::new(acceptor(identity)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (generation, _) = watch::channel(0);
        let handshakes = Arc::new(Mutex::new(HashMap::new()));
        let (now, gen, count) = (current.clone(), generation.clone(), handshakes.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, presented) = now.lock().unwrap().clone();
                let (count, mut changed) = (count.clone(), gen.subscribe());
                tokio::spawn(async move {
                    // A refused certificate ends here: the client aborts the handshake.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    *count.lock().unwrap().entry(presented).or_insert(0) += 1;
                    let Ok(mut inner) = TcpStream::connect(backend).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut tls, &mut inner) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        TlsFront {
            addr,
            current,
            generation,
            handshakes,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`
    fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Presents `identity` from now on and closes the connections open with the old one.
    fn replace_certificate(&self, identity: &Identity) {
        *self.current.lock().unwrap() = acceptor(identity);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Handshakes a client completed while the front presented `identity`.
    fn handshakes_with(&self, identity: &Identity) -> usize {
        let counts = self.handshakes.lock().unwrap();
        counts.get(&identity.fingerprint()).copied().unwrap_or(0)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fake behind a TLS front presenting `identity`, and a spec for it.
async fn behind_tls(
    identity: &Identity,
    config: FakeConfig,
) -> (FakeComfy, TlsFront, InstanceSpec) {
    let server = FakeComfy::start(config).await.unwrap();
    let front = TlsFront::start(server.addr(), identity).await;
    let mut s = spec(&server, "cm-tls");
    s.base_url = comfy_engine::instance::parse_base_url(&front.base_url()).unwrap();
    (server, front, s)
}

fn step(check: &ConnectionCheck, step: CheckStep) -> &comfy_model::StepResult {
    check
        .steps()
        .iter()
        .find(|s| s.step == step)
        .unwrap_or_else(|| panic!("no {step:?} step in {check:?}"))
}

/// An own certificate: trust only what is pinned.
fn own(mut s: InstanceSpec, pin: Option<CertificateFingerprint>) -> InstanceSpec {
    s.accept_invalid_certs = true;
    s.certificate_sha256 = pin;
    s
}

#[tokio::test]
async fn an_unpinned_own_certificate_is_refused_before_any_request_and_its_fingerprint_reported() {
    let cert = self_signed(LOOPBACK);
    let (server, front, s) = behind_tls(
        &cert,
        FakeConfig {
            auth: Some(FakeAuth::Bearer("t0k".into())),
            ..FakeConfig::default()
        },
    )
    .await;
    let mut s = own(s, None);
    s.auth = Auth::Bearer(Secret::new("t0k"));
    let check = check_connection(&s).await;
    assert!(!check.ok());
    let http = step(&check, CheckStep::Http);
    assert_eq!(
        http.certificate,
        Some(CertificateRefusal {
            presented: cert.fingerprint(),
            pinned: None
        })
    );
    assert!(!http.auth, "not the credentials' fault: {http:?}");
    assert!(
        http.detail.contains(&cert.fingerprint().to_string()),
        "{http:?}"
    );
    assert_eq!(check.steps().len(), 1, "the socket is not tried");
    // Refused inside the handshake: not one request, so the token never left.
    assert_eq!(front.handshakes_with(&cert), 0);
    assert!(server.request_log().is_empty());
    // What the CLI pins on `instances add --insecure`: the same certificate.
    assert_eq!(
        comfy_engine::tls::presented_certificate(&s).await.unwrap(),
        cert.fingerprint()
    );
}

#[tokio::test]
async fn a_pinned_own_certificate_works_over_http_and_the_socket() {
    let cert = self_signed(&["comfy.box"]);
    let (_server, _front, s) = behind_tls(&cert, FakeConfig::default()).await;
    let s = own(s, Some(cert.fingerprint()));
    let check = check_connection(&s).await;
    assert!(check.ok(), "{check:?}");
    assert_eq!(check.steps().len(), 2, "HTTP and the socket: {check:?}");

    let (_engine, mut rx) = crate::live::engine(s);
    crate::live::connected(&mut rx).await;
}

#[tokio::test]
async fn a_changed_certificate_is_refused_with_both_fingerprints_and_waits_for_the_user() {
    let (old, new) = (self_signed(LOOPBACK), self_signed(LOOPBACK));
    let (_server, front, s) = behind_tls(&old, FakeConfig::default()).await;
    let pinned = own(s, Some(old.fingerprint()));
    let (_engine, mut rx) = crate::live::engine(pinned.clone());
    crate::live::connected(&mut rx).await;

    front.replace_certificate(&new);
    let (e, _) = until(
        &mut rx,
        "auth failed",
        |e| matches!(&e.kind, EventKind::Connection(c) if c.state == ConnectionState::AuthFailed),
    )
    .await;
    let EventKind::Connection(c) = &e.kind else {
        unreachable!()
    };
    assert!(
        c.detail.starts_with(&format!(
            "the server's certificate changed (was {}, now {})",
            old.fingerprint(),
            new.fingerprint()
        )),
        "{c:?}"
    );
    // Waits for the user like rejected credentials: the next try is far off.
    assert!(c.retry_in_ms.unwrap() >= 20_000, "{c:?}");
    assert_eq!(front.handshakes_with(&new), 0, "nothing was sent to it");

    // Test connection shows both, and accepting the new one works.
    let check = check_connection(&pinned).await;
    assert_eq!(
        step(&check, CheckStep::Http).certificate,
        Some(CertificateRefusal {
            presented: new.fingerprint(),
            pinned: Some(old.fingerprint())
        })
    );
    let accepted = own(pinned, Some(new.fingerprint()));
    assert!(check_connection(&accepted).await.ok());
}

#[tokio::test]
async fn a_private_ca_in_the_os_trust_store_is_trusted_by_http_and_the_socket() {
    let cert = issued(LOOPBACK, None);
    let (_server, _front, s) = behind_tls(&cert, FakeConfig::default()).await;
    let check = check_connection(&s).await;
    assert!(check.ok(), "{check:?}");
    assert_eq!(check.steps().len(), 2, "{check:?}");
    let (_engine, mut rx) = crate::live::engine(s);
    crate::live::connected(&mut rx).await;
}

/// Test connection's HTTP step against a front presenting `cert`, through the OS trust store.
async fn refused_by_the_os_store(cert: &Identity) -> comfy_model::StepResult {
    trusted_ca();
    let (server, front, s) = behind_tls(cert, FakeConfig::default()).await;
    let check = check_connection(&s).await;
    assert!(!check.ok(), "{check:?}");
    assert_eq!(check.steps().len(), 1, "the socket is not tried: {check:?}");
    assert_eq!(front.handshakes_with(cert), 0);
    assert!(server.request_log().is_empty());
    let http = step(&check, CheckStep::Http).clone();
    assert_eq!(http.certificate, None, "nothing to pin: {http:?}");
    assert!(!http.auth);
    assert!(
        http.detail
            .starts_with("the server's certificate is not trusted: "),
        "{http:?}"
    );
    http
}

#[tokio::test]
async fn an_expired_certificate_is_refused_and_says_so() {
    let http = refused_by_the_os_store(&issued(LOOPBACK, Some((2020, 2021)))).await;
    assert!(http.detail.contains("expired"), "{http:?}");
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_and_says_so() {
    let http = refused_by_the_os_store(&issued(&["comfy.example"], None)).await;
    assert!(http.detail.contains("not valid for name"), "{http:?}");
}

#[tokio::test]
async fn an_own_certificate_without_the_opt_in_is_refused_with_where_to_trust_it() {
    let http = refused_by_the_os_store(&self_signed(LOOPBACK)).await;
    assert!(
        http.detail.contains("trust it in the instance's settings"),
        "{http:?}"
    );
}

/// A TLS front before a fake on its own runtime thread, so the CLI can run its own runtime
/// here; returns the front's URL, a handle to replace its certificate, and the stop switch.
fn serve_tls(identity: Identity) -> (String, std::sync::mpsc::Sender<Identity>) {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (swap_tx, swap_rx) = std::sync::mpsc::channel::<Identity>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let server = fake(ServerVersion::V0_26).await;
            let front = TlsFront::start(server.addr(), &identity).await;
            url_tx.send(front.base_url()).unwrap();
            let front = Arc::new(front);
            let swapper = front.clone();
            // Runs until the test drops its sender.
            let _ = tokio::task::spawn_blocking(move || {
                while let Ok(next) = swap_rx.recv() {
                    swapper.replace_certificate(&next);
                }
            })
            .await;
            drop(server);
        });
    });
    (url_rx.recv_timeout(GUARD).unwrap(), swap_tx)
}

fn cli(args: &[&str]) -> ExitCode {
    let mut argv = vec!["comfy-monitor"];
    argv.extend_from_slice(args);
    comfy_cli::run_from(argv).expect("a subcommand ran")
}

#[test]
fn instances_add_insecure_pins_the_presented_certificate_and_accept_certificate_pins_a_new_one() {
    let (first, second) = (self_signed(LOOPBACK), self_signed(LOOPBACK));
    let (url, swap) = serve_tls(first.clone());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    let saved = || {
        comfy_store::Store::open(db)
            .unwrap()
            .instance_by_name("box")
            .unwrap()
    };
    let add = [
        "--db",
        db,
        "instances",
        "add",
        "--name",
        "box",
        "--url",
        &url,
    ];
    assert_eq!(
        cli(&[&add[..], &["--insecure"]].concat()),
        ExitCode::SUCCESS
    );
    let rec = saved();
    assert!(rec.accept_invalid_certs);
    assert_eq!(rec.certificate_sha256, Some(first.fingerprint()));

    swap.send(second.clone()).unwrap();
    let edit = ["--db", db, "instances", "edit", "box"];
    // Other edits keep the pin: the changed certificate is not taken by the way.
    assert_eq!(
        cli(&[&edit[..], &["--insecure"]].concat()),
        ExitCode::SUCCESS
    );
    assert_eq!(saved().certificate_sha256, Some(first.fingerprint()));
    assert_eq!(
        cli(&[&edit[..], &["--accept-certificate"]].concat()),
        ExitCode::SUCCESS
    );
    assert_eq!(saved().certificate_sha256, Some(second.fingerprint()));

    assert_eq!(cli(&[&edit[..], &["--secure"]].concat()), ExitCode::SUCCESS);
    let rec = saved();
    assert!(!rec.accept_invalid_certs);
    assert_eq!(rec.certificate_sha256, None);
    let given = first.fingerprint().to_string();
    assert_eq!(
        cli(&[&edit[..], &["--certificate-sha256", &given]].concat()),
        ExitCode::SUCCESS
    );
    let rec = saved();
    assert!(rec.accept_invalid_certs);
    assert_eq!(rec.certificate_sha256, Some(first.fingerprint()));
}

#[test]
fn instances_add_insecure_is_refused_when_the_certificate_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("profile.db");
    let db = db.to_str().unwrap();
    // A server that closes every connection before the handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            drop(tcp);
        }
    });
    let url = format!("https://127.0.0.1:{port}");
    let add = [
        "--db",
        db,
        "instances",
        "add",
        "--name",
        "box",
        "--url",
        &url,
    ];
    assert_eq!(
        cli(&[&add[..], &["--insecure"]].concat()),
        ExitCode::from(1)
    );
    let store = comfy_store::Store::open(db).unwrap();
    assert!(store.instance_by_name("box").is_err(), "nothing saved");
    drop(store);
    // With the fingerprint given, nothing needs reading.
    let fp = self_signed(LOOPBACK).fingerprint().to_string();
    assert_eq!(
        cli(&[&add[..], &["--insecure", "--certificate-sha256", &fp]].concat()),
        ExitCode::SUCCESS
    );
}

//! Measure 2: from a restarted server accepting connections again to the engine's instance
//! being connected (its `Connected` event at the sink), over repeated restarts with outages of
//! varied length, in real time.
//!
//! Each outage is the fake going down (every socket and connection cut, new ones closed at
//! once), a process restart (queue and history gone), a pause, then up again. The connection
//! events the engine publishes meanwhile carry each retry delay, so every sample is split into
//! the backoff still to wait after the server came back and the handshake itself (probe,
//! capability checks, socket upgrade).

use crate::server::ServerProcess;
use crate::stats::{percentile, round};
use anyhow::{bail, Context};
use comfy_engine::{ConnectionState, Engine, EventKind, InstanceSpec, DEFAULT_EVENT_CAPACITY};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A session shorter than the engine's stable-session threshold (10 s in its supervisor) does
/// not reset the backoff; holding longer makes each restart the first after a stable session,
/// as a server restarted now and then sees it.
const STABLE_HOLD: Duration = Duration::from_millis(10_500);

#[derive(Debug, Clone)]
pub struct Config {
    pub restarts: usize,
    pub hold: Duration,
    pub min_outage: Duration,
    pub max_outage: Duration,
}

impl Config {
    pub fn new(smoke: bool) -> Config {
        Config {
            restarts: if smoke { 3 } else { 20 },
            hold: if smoke {
                Duration::from_millis(1_500)
            } else {
                STABLE_HOLD
            },
            min_outage: Duration::from_millis(200),
            max_outage: Duration::from_millis(if smoke { 1_000 } else { 3_000 }),
        }
    }

    /// Outage lengths evenly spread over the range, in a fixed shuffled order so long and short
    /// ones alternate.
    pub fn outages(&self) -> Vec<Duration> {
        let n = self.restarts.max(1);
        let span = self.max_outage.saturating_sub(self.min_outage);
        let even: Vec<Duration> = (0..n)
            .map(|i| self.min_outage + span.mul_f64(i as f64 / (n - 1).max(1) as f64))
            .collect();
        // A stride coprime with n visits every index once.
        let stride = (1..=n)
            .rev()
            .find(|s| gcd(*s, n) == 1 && *s * 3 <= n)
            .unwrap_or(1);
        (0..n).map(|i| even[(i * stride) % n]).collect()
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub outage_ms: u64,
    pub reconnect_ms: f64,
    /// Backoff the supervisor still had to wait after the server was back.
    pub backoff_wait_ms: f64,
    /// From the attempt that succeeded starting (or the server coming back, if later) to
    /// `Connected`.
    pub handshake_ms: f64,
    /// Retry delays announced during the outage (each a failed attempt), in ms.
    pub retry_delays_ms: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub restarts: usize,
    pub stable_hold_ms: u64,
    pub outage_min_ms: u64,
    pub outage_max_ms: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub target_p99_ms: f64,
    pub backoff_wait_p50_ms: f64,
    pub backoff_wait_p99_ms: f64,
    pub handshake_p50_ms: f64,
    pub handshake_p99_ms: f64,
    /// `backoff` when the wait for the next scheduled attempt makes up most of the p99 sample.
    pub p99_dominated_by: &'static str,
    pub samples: Vec<Sample>,
}

pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut server = ServerProcess::spawn().await?;
    let result = measure(cfg, &mut server).await;
    server.stop().await;
    result
}

type Seen = (Instant, comfy_engine::ConnectionStatus);

async fn next_connected(statuses: &mut mpsc::UnboundedReceiver<Seen>) -> anyhow::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    let limit = Duration::from_secs(90);
    loop {
        let status = tokio::time::timeout(limit, statuses.recv())
            .await
            .with_context(|| format!("the engine did not connect within {limit:?}"))?
            .context("the engine stopped")?;
        let done = status.1.state == ConnectionState::Connected;
        seen.push(status);
        if done {
            return Ok(seen);
        }
    }
}

async fn measure(cfg: &Config, server: &mut ServerProcess) -> anyhow::Result<Report> {
    let (engine, mut events) = Engine::new(DEFAULT_EVENT_CAPACITY);
    engine.add_instance(InstanceSpec::new("Bench", &server.base_url())?)?;
    let (tx, mut statuses) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let EventKind::Connection(status) = event.kind {
                let _ = tx.send((Instant::now(), status));
            }
        }
    });
    next_connected(&mut statuses).await?;
    let mut samples = Vec::new();
    for (i, outage) in cfg.outages().into_iter().enumerate() {
        tokio::time::sleep(cfg.hold).await;
        while statuses.try_recv().is_ok() {}
        server.call("down").await?;
        server.call("restart").await?;
        tokio::time::sleep(outage).await;
        let up = Instant::now();
        server.call("up").await?;
        let seen = next_connected(&mut statuses).await?;
        let sample = sample(outage, up, &seen)?;
        eprintln!(
            "  reconnect {}/{}: outage {} ms, connected {:.0} ms after up (backoff {:.0} + handshake {:.0})",
            i + 1,
            cfg.restarts,
            sample.outage_ms,
            sample.reconnect_ms,
            sample.backoff_wait_ms,
            sample.handshake_ms
        );
        samples.push(sample);
    }
    engine.shutdown().await;
    let _ = reader.await;
    Ok(summarise(cfg, samples))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Splits one reconnect into backoff and handshake, from the events seen between the outage
/// and `Connected` (the last one).
pub fn sample(outage: Duration, up: Instant, seen: &[Seen]) -> anyhow::Result<Sample> {
    let Some((connected_at, _)) = seen.last() else {
        bail!("no connection event");
    };
    let retries: Vec<&Seen> = seen
        .iter()
        .filter(|(_, s)| s.retry_in_ms.is_some())
        .collect();
    // The successful attempt began when the last announced retry was due (or at once, if none).
    let attempt_at = retries
        .last()
        .map(|(at, s)| *at + Duration::from_millis(s.retry_in_ms.unwrap_or(0)));
    let backoff_wait = attempt_at.map_or(Duration::ZERO, |a| a.saturating_duration_since(up));
    let handshake_from = attempt_at.map_or(up, |a| a.max(up));
    Ok(Sample {
        outage_ms: outage.as_millis() as u64,
        reconnect_ms: round(ms(connected_at.saturating_duration_since(up)), 1),
        backoff_wait_ms: round(ms(backoff_wait), 1),
        handshake_ms: round(
            ms(connected_at.saturating_duration_since(handshake_from)),
            1,
        ),
        retry_delays_ms: retries.iter().filter_map(|(_, s)| s.retry_in_ms).collect(),
    })
}

fn summarise(cfg: &Config, samples: Vec<Sample>) -> Report {
    let pick = |f: fn(&Sample) -> f64, p: f64| {
        let v: Vec<f64> = samples.iter().map(f).collect();
        round(percentile(&v, p).unwrap_or(f64::NAN), 1)
    };
    // The sample nearest the p99 figure tells what dominates it.
    let p99 = pick(|s| s.reconnect_ms, 99.0);
    let worst = samples.iter().min_by(|a, b| {
        (a.reconnect_ms - p99)
            .abs()
            .total_cmp(&(b.reconnect_ms - p99).abs())
    });
    let dominated_by = match worst {
        Some(s) if s.backoff_wait_ms > s.handshake_ms => "backoff",
        Some(_) => "handshake",
        None => "none",
    };
    Report {
        restarts: samples.len(),
        stable_hold_ms: cfg.hold.as_millis() as u64,
        outage_min_ms: cfg.min_outage.as_millis() as u64,
        outage_max_ms: cfg.max_outage.as_millis() as u64,
        p50_ms: pick(|s| s.reconnect_ms, 50.0),
        p99_ms: p99,
        max_ms: pick(|s| s.reconnect_ms, 100.0),
        target_p99_ms: 1500.0,
        backoff_wait_p50_ms: pick(|s| s.backoff_wait_ms, 50.0),
        backoff_wait_p99_ms: pick(|s| s.backoff_wait_ms, 99.0),
        handshake_p50_ms: pick(|s| s.handshake_ms, 50.0),
        handshake_p99_ms: pick(|s| s.handshake_ms, 99.0),
        p99_dominated_by: dominated_by,
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_engine::ConnectionStatus;

    fn status(state: ConnectionState, retry_ms: Option<u64>) -> ConnectionStatus {
        ConnectionStatus {
            state,
            detail: String::new(),
            retry_in_ms: retry_ms,
        }
    }

    #[test]
    fn outages_cover_the_range_once_each_in_mixed_order() {
        let cfg = Config::new(false);
        let o = cfg.outages();
        assert_eq!(o.len(), 20);
        let mut sorted = o.clone();
        sorted.sort();
        assert_eq!(sorted[0], Duration::from_millis(200));
        assert_eq!(sorted[19], Duration::from_millis(3_000));
        sorted.dedup();
        assert_eq!(sorted.len(), 20, "every length once");
        assert_ne!(o, {
            let mut s = o.clone();
            s.sort();
            s
        });
    }

    #[test]
    fn a_retry_due_after_the_server_is_back_counts_as_backoff() {
        let t = Instant::now();
        let up = t + Duration::from_millis(1_000);
        let seen = vec![
            (t, status(ConnectionState::Reconnecting, None)),
            (
                t + Duration::from_millis(5),
                status(ConnectionState::Unreachable, Some(400)),
            ),
            (
                t + Duration::from_millis(410),
                status(ConnectionState::Unreachable, Some(900)),
            ),
            (
                t + Duration::from_millis(1_330),
                status(ConnectionState::Connected, None),
            ),
        ];
        let s = sample(Duration::from_millis(1_000), up, &seen).unwrap();
        assert_eq!(s.reconnect_ms, 330.0);
        assert_eq!(s.backoff_wait_ms, 310.0);
        assert_eq!(s.handshake_ms, 20.0);
        assert_eq!(s.retry_delays_ms, [400, 900]);
    }

    #[test]
    fn an_attempt_already_due_is_all_handshake() {
        let t = Instant::now();
        let seen = vec![
            (t, status(ConnectionState::Unreachable, Some(100))),
            (
                t + Duration::from_millis(600),
                status(ConnectionState::Connected, None),
            ),
        ];
        let s = sample(Duration::ZERO, t + Duration::from_millis(500), &seen).unwrap();
        assert_eq!(s.backoff_wait_ms, 0.0);
        assert_eq!(s.handshake_ms, 100.0);
    }
}

//! Reconnect delays, as pure functions of the attempt number and a jitter sample in [0, 1).

use std::time::Duration;

const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(30);
/// A server that was connected a moment ago and is now down is most likely restarting (a
/// ComfyUI restart takes seconds): for this long after the drop, retries stay close together...
pub const RESTART_WINDOW: Duration = Duration::from_secs(120);
/// ...at most this far apart, so the monitor is back within about a second of the server.
const RESTART_CAP: Duration = Duration::from_secs(1);
const AUTH_BASE: Duration = Duration::from_secs(30);
const AUTH_CAP: Duration = Duration::from_secs(300);

fn exponential(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u64.checked_shl(attempt.min(20)).unwrap_or(u64::MAX);
    base.checked_mul(factor.min(u32::MAX as u64) as u32)
        .unwrap_or(cap)
        .min(cap)
}

/// Delay before reconnect attempt `attempt` (0 = the first retry): capped exponential with
/// "equal jitter", so many clients of one restarted server do not come back in lockstep.
///
/// `down_for` is how long ago a working connection ended (`None` when there never was one this
/// run). Within [`RESTART_WINDOW`] of that the cap is one second instead of thirty: an outage
/// that follows a good session is usually a restart, and each retry against a closed local or
/// remote port costs next to nothing. A server that was never reachable, or has been down for
/// minutes, backs off to the full cap.
pub fn reconnect_delay(attempt: u32, down_for: Option<Duration>, jitter: f64) -> Duration {
    let cap = match down_for {
        Some(d) if d < RESTART_WINDOW => RESTART_CAP,
        _ => CAP,
    };
    let d = exponential(BASE, cap, attempt);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Delay after the server rejected our credentials: slow, so a wrong password never becomes a
/// request storm, and still retried because a proxy may come back to its senses.
pub fn auth_retry_delay(attempt: u32, jitter: f64) -> Duration {
    let d = exponential(AUTH_BASE, AUTH_CAP, attempt);
    d.mul_f64(0.75 + 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_at_the_cap() {
        let d: Vec<_> = (0..10).map(|a| reconnect_delay(a, None, 1.0)).collect();
        assert_eq!(d[0], Duration::from_millis(500));
        assert_eq!(d[1], Duration::from_secs(1));
        assert_eq!(d[3], Duration::from_secs(4));
        assert!(d.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(d[9], CAP);
        assert_eq!(reconnect_delay(u32::MAX, None, 1.0), CAP);
    }

    #[test]
    fn a_server_that_just_went_down_is_retried_every_second_at_most() {
        let just_now = Some(Duration::from_secs(3));
        let d: Vec<_> = (0..40).map(|a| reconnect_delay(a, just_now, 1.0)).collect();
        assert_eq!(d[0], Duration::from_millis(500));
        assert!(d.iter().all(|d| *d <= Duration::from_secs(1)));
        assert_eq!(
            reconnect_delay(u32::MAX, just_now, 1.0),
            Duration::from_secs(1)
        );
        // Near the end of the window still fast; past it, the full cap again.
        let late = RESTART_WINDOW - Duration::from_millis(1);
        assert_eq!(reconnect_delay(30, Some(late), 1.0), Duration::from_secs(1));
        assert_eq!(reconnect_delay(30, Some(RESTART_WINDOW), 1.0), CAP);
    }

    #[test]
    fn jitter_keeps_delays_between_half_and_full() {
        for down_for in [None, Some(Duration::from_secs(1))] {
            for a in 0..8 {
                let full = reconnect_delay(a, down_for, 1.0);
                let low = reconnect_delay(a, down_for, 0.0);
                assert_eq!(low, full / 2);
                let mid = reconnect_delay(a, down_for, 0.37);
                assert!(low <= mid && mid <= full);
            }
        }
    }

    #[test]
    fn auth_failures_wait_at_least_twenty_seconds() {
        assert!(auth_retry_delay(0, 0.0) >= Duration::from_secs(20));
        assert_eq!(auth_retry_delay(10, 1.0), AUTH_CAP);
    }
}

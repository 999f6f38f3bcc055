//! Reconnect delays, as pure functions of the attempt number and a jitter sample in [0, 1).

use std::time::Duration;

const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(30);
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
pub fn reconnect_delay(attempt: u32, jitter: f64) -> Duration {
    let d = exponential(BASE, CAP, attempt);
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
        let d: Vec<_> = (0..10).map(|a| reconnect_delay(a, 1.0)).collect();
        assert_eq!(d[0], Duration::from_millis(500));
        assert_eq!(d[1], Duration::from_secs(1));
        assert_eq!(d[3], Duration::from_secs(4));
        assert!(d.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(d[9], CAP);
        assert_eq!(reconnect_delay(u32::MAX, 1.0), CAP);
    }

    #[test]
    fn jitter_keeps_delays_between_half_and_full() {
        for a in 0..8 {
            let full = reconnect_delay(a, 1.0);
            let low = reconnect_delay(a, 0.0);
            assert_eq!(low, full / 2);
            let mid = reconnect_delay(a, 0.37);
            assert!(low <= mid && mid <= full);
        }
    }

    #[test]
    fn auth_failures_wait_at_least_twenty_seconds() {
        assert!(auth_retry_delay(0, 0.0) >= Duration::from_secs(20));
        assert_eq!(auth_retry_delay(10, 1.0), AUTH_CAP);
    }
}

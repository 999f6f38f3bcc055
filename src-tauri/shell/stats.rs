//! When to read each instance's RAM and VRAM from `/system_stats`: every few seconds while it
//! works, seldom while it idles, and at once when it connects or a job ends (the moments memory
//! moves). An idle farm of 100 servers then costs about three requests a second instead of 20.

use comfy_model::InstanceId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a server with running or pending jobs is read.
pub const BUSY_EVERY: Duration = Duration::from_secs(5);
/// How often an idle server is read.
pub const IDLE_EVERY: Duration = Duration::from_secs(30);
/// How often the schedule is consulted.
pub const TICK: Duration = Duration::from_secs(1);

/// What the schedule needs to know of an instance at a tick.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub id: InstanceId,
    pub connected: bool,
    pub busy: bool,
}

#[derive(Debug)]
struct Last {
    /// When it was last read.
    read_at: Instant,
    /// Whether it was busy at the previous tick.
    busy: bool,
}

/// Per-instance read times. Pure: time is passed in.
#[derive(Debug, Default)]
pub struct StatsSchedule {
    last: HashMap<InstanceId, Last>,
}

impl StatsSchedule {
    /// The instances to read now, and records them as read. Instances not connected, or no
    /// longer listed, are forgotten, so they are read as soon as they connect again.
    pub fn due(&mut self, seen: impl IntoIterator<Item = Seen>, now: Instant) -> Vec<InstanceId> {
        let mut due = Vec::new();
        let mut listed = Vec::new();
        for s in seen {
            if !s.connected {
                continue;
            }
            listed.push(s.id);
            let read = match self.last.get_mut(&s.id) {
                None => true,
                Some(last) => {
                    let job_ended = last.busy && !s.busy;
                    last.busy = s.busy;
                    let every = if s.busy { BUSY_EVERY } else { IDLE_EVERY };
                    job_ended || now.saturating_duration_since(last.read_at) >= every
                }
            };
            if read {
                self.last.insert(
                    s.id,
                    Last {
                        read_at: now,
                        busy: s.busy,
                    },
                );
                due.push(s.id);
            }
        }
        self.last.retain(|id, _| listed.contains(id));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: InstanceId = InstanceId(1);
    const B: InstanceId = InstanceId(2);

    fn seen(id: InstanceId, connected: bool, busy: bool) -> Seen {
        Seen {
            id,
            connected,
            busy,
        }
    }

    /// Runs the schedule once a second for `secs` seconds and counts the reads of A.
    fn reads_over(
        schedule: &mut StatsSchedule,
        start: Instant,
        secs: u64,
        state: impl Fn(u64) -> (bool, bool),
    ) -> Vec<u64> {
        (0..secs)
            .filter(|t| {
                let (connected, busy) = state(*t);
                let due = schedule.due([seen(A, connected, busy)], start + Duration::from_secs(*t));
                due == [A]
            })
            .collect()
    }

    #[test]
    fn an_idle_server_is_read_when_it_connects_and_then_every_thirty_seconds() {
        let mut s = StatsSchedule::default();
        let reads = reads_over(&mut s, Instant::now(), 95, |_| (true, false));
        assert_eq!(reads, [0, 30, 60, 90]);
    }

    #[test]
    fn a_busy_server_is_read_every_five_seconds_and_once_more_when_its_job_ends() {
        let mut s = StatsSchedule::default();
        // Busy from 0 s to 17 s, then idle.
        let reads = reads_over(&mut s, Instant::now(), 60, |t| (true, t < 17));
        assert_eq!(reads, [0, 5, 10, 15, 17, 47]);
    }

    #[test]
    fn a_server_that_gets_busy_is_read_at_once_when_the_last_read_is_old() {
        let mut s = StatsSchedule::default();
        // Idle, then busy from 12 s: the read at 0 s is older than the busy interval.
        let reads = reads_over(&mut s, Instant::now(), 20, |t| (true, t >= 12));
        assert_eq!(reads, [0, 12, 17]);
    }

    #[test]
    fn a_disconnected_server_is_not_read_and_is_read_again_as_soon_as_it_reconnects() {
        let mut s = StatsSchedule::default();
        let reads = reads_over(&mut s, Instant::now(), 40, |t| {
            (!(3..8).contains(&t), false)
        });
        assert_eq!(reads, [0, 8, 38]);
    }

    #[test]
    fn each_instance_has_its_own_schedule_and_removed_ones_are_forgotten() {
        let mut s = StatsSchedule::default();
        let t0 = Instant::now();
        let both = |busy_b| [seen(A, true, false), seen(B, true, busy_b)];
        assert_eq!(s.due(both(true), t0), [A, B]);
        assert_eq!(s.due(both(true), t0 + BUSY_EVERY), [B]);
        assert!(s
            .due([seen(A, true, false)], t0 + BUSY_EVERY * 2)
            .is_empty());
        assert_eq!(s.last.len(), 1, "b was removed");
        assert_eq!(s.due(both(true), t0 + BUSY_EVERY * 3), [B]);
    }
}

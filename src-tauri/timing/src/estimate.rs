//! Estimates for one job at one moment, from its [`Expectation`] and what is known of its run.

use crate::model::{Expectation, MAX_EXPECTED_MS};
use comfy_model::{Estimate, NodeId};
use std::collections::HashSet;

/// A running estimate's percent stops here: only the outcome makes a job 100 % done.
const MAX_PERCENT: f64 = 99.0;
/// A job at the end of its expected time is "about to end" (99 %, nothing left) for this share
/// of it, at least [`GRACE_MIN_MS`], before it runs "longer than usual": a run a hair over
/// the usual one (or seen starting a poll early) is not news.
const GRACE_SHARE: f64 = 0.1;
const GRACE_MIN_MS: f64 = 1_000.0;

/// One node running now.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentNode {
    pub node: NodeId,
    /// How long it has run so far.
    pub ran_ms: u64,
    /// Steps still to do and the measured milliseconds per step, while it reports steps.
    pub steps: Option<(f64, f64)>,
}

/// What is seen of a followed (live or relayed) job's run: which nodes will still run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The nodes this run will execute.
    pub planned: Vec<NodeId>,
    /// Nodes that will not run again: finished, or cached.
    pub settled: HashSet<NodeId>,
    pub current: Vec<CurrentNode>,
}

/// A running job's estimate after `elapsed_ms` of execution. With `progress` (a followed job)
/// and per-node expectations, what remains is the expected time of each node not yet run, plus
/// each running node's rest (from its measured step rate while it steps, from its expected time
/// otherwise); otherwise it is the expected total less the time run so far.
pub fn running(e: &Expectation, elapsed_ms: u64, progress: Option<&Progress>) -> Estimate {
    let elapsed = elapsed_ms as f64;
    let by_nodes = progress
        .filter(|_| !e.nodes.is_empty())
        .map(|p| remaining_by_nodes(e, p));
    // Step counts and rates are the server's: what they add up to is believed up to a week.
    let remaining = match by_nodes {
        Some(r) if r >= 1.0 => r.min(MAX_EXPECTED_MS),
        _ => (e.total_ms - elapsed).clamp(0.0, MAX_EXPECTED_MS),
    };
    let mut estimate = Estimate {
        basis: e.basis,
        samples: e.samples,
        typical_ms: whole_ms(e.total_ms),
        percent: None,
        eta_ms: None,
        starts_in_ms: None,
        longer_than_usual: false,
    };
    if remaining < 1.0 {
        if elapsed <= e.total_ms + (e.total_ms * GRACE_SHARE).max(GRACE_MIN_MS) {
            estimate.percent = Some(MAX_PERCENT);
            estimate.eta_ms = Some(0);
        } else {
            estimate.longer_than_usual = true;
        }
        return estimate;
    }
    let percent = (100.0 * elapsed / (elapsed + remaining)).min(MAX_PERCENT);
    estimate.percent = Some((percent * 10.0).round() / 10.0);
    estimate.eta_ms = Some(remaining.round() as u64);
    estimate
}

fn remaining_by_nodes(e: &Expectation, p: &Progress) -> f64 {
    let expected = |n: &NodeId| e.nodes.get(n).copied().unwrap_or(0.0);
    let waiting: f64 = p
        .planned
        .iter()
        .filter(|n| !p.settled.contains(*n))
        .filter(|n| !p.current.iter().any(|c| &c.node == *n))
        .map(expected)
        .sum();
    let running: f64 = p
        .current
        .iter()
        .map(|c| match c.steps {
            Some((left, ms_per_step)) => left.max(0.0) * ms_per_step,
            None => (expected(&c.node) - c.ran_ms as f64).max(0.0),
        })
        .sum();
    waiting + running
}

/// An expected time in whole milliseconds, at most [`MAX_EXPECTED_MS`] (an [`Expectation`]
/// made by hand may say anything).
fn whole_ms(ms: f64) -> u64 {
    ms.clamp(0.0, MAX_EXPECTED_MS).round() as u64
}

/// A pending job's estimate: how long it should run and, when everything ahead of it in the
/// queue has an estimate (`ahead_ms`, the wait), when it starts and ends.
pub fn pending(e: &Expectation, ahead_ms: Option<f64>) -> Estimate {
    let total = whole_ms(e.total_ms);
    let starts_in = ahead_ms.map(|a| a.max(0.0).round() as u64);
    Estimate {
        basis: e.basis,
        samples: e.samples,
        typical_ms: total,
        percent: None,
        eta_ms: starts_in.map(|s| s.saturating_add(total)),
        starts_in_ms: starts_in,
        longer_than_usual: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_model::EstimateBasis;
    use std::collections::BTreeMap;

    fn n(id: &str) -> NodeId {
        NodeId::from(id)
    }

    fn whole(total_ms: f64) -> Expectation {
        Expectation {
            basis: EstimateBasis::Workflow,
            samples: 3,
            total_ms,
            nodes: BTreeMap::new(),
        }
    }

    fn by_node() -> Expectation {
        Expectation {
            basis: EstimateBasis::Workflow,
            samples: 4,
            total_ms: 12_000.0,
            nodes: [("1", 1_000.0), ("2", 8_000.0), ("3", 3_000.0)]
                .into_iter()
                .map(|(k, v)| (n(k), v))
                .collect(),
        }
    }

    #[test]
    fn an_observed_job_is_as_far_as_its_time_against_its_usual_run() {
        let e = running(&whole(10_000.0), 2_500, None);
        assert_eq!(e.percent, Some(25.0));
        assert_eq!(e.eta_ms, Some(7_500));
        assert_eq!(e.typical_ms, 10_000);
        assert_eq!((e.basis, e.samples), (EstimateBasis::Workflow, 3));
        assert!(!e.longer_than_usual);
    }

    #[test]
    fn it_never_says_100_and_a_job_past_its_usual_run_says_so_instead_of_99() {
        let near = running(&whole(10_000.0), 9_995, None);
        assert_eq!(near.percent, Some(99.0), "held below 100");
        let due = running(&whole(10_000.0), 10_800, None);
        assert_eq!(
            (due.percent, due.eta_ms),
            (Some(99.0), Some(0)),
            "a hair over: due"
        );
        assert!(!due.longer_than_usual);
        let past = running(&whole(10_000.0), 14_000, None);
        assert!(past.longer_than_usual);
        assert_eq!(past.percent, None);
        assert_eq!(past.eta_ms, None);
    }

    #[test]
    fn before_the_first_step_a_followed_job_has_its_whole_usual_run_ahead() {
        let p = Progress {
            planned: vec![n("1"), n("2"), n("3")],
            ..Progress::default()
        };
        let e = running(&by_node(), 0, Some(&p));
        assert_eq!(e.eta_ms, Some(12_000));
        assert_eq!(e.percent, Some(0.0));
    }

    #[test]
    fn during_sampling_the_step_rate_and_history_of_the_later_nodes_add_up() {
        // Node 1 done, the sampler half-way at 100 ms a step with 40 steps left, the decode
        // still to come: 4 s + 3 s.
        let p = Progress {
            planned: vec![n("1"), n("2"), n("3")],
            settled: [n("1")].into_iter().collect(),
            current: vec![CurrentNode {
                node: n("2"),
                ran_ms: 4_000,
                steps: Some((40.0, 100.0)),
            }],
        };
        let e = running(&by_node(), 5_000, Some(&p));
        assert_eq!(e.eta_ms, Some(7_000));
        assert!((e.percent.unwrap() - 41.7).abs() < 0.05, "{:?}", e.percent);
    }

    #[test]
    fn a_node_without_steps_counts_down_from_its_usual_time() {
        let p = Progress {
            planned: vec![n("1"), n("2"), n("3")],
            settled: [n("1"), n("2")].into_iter().collect(),
            current: vec![CurrentNode {
                node: n("3"),
                ran_ms: 1_000,
                steps: None,
            }],
        };
        assert_eq!(running(&by_node(), 10_000, Some(&p)).eta_ms, Some(2_000));
    }

    #[test]
    fn cached_nodes_are_not_waited_for() {
        let p = Progress {
            planned: vec![n("1"), n("2"), n("3")],
            settled: [n("2")].into_iter().collect(),
            current: Vec::new(),
        };
        assert_eq!(running(&by_node(), 0, Some(&p)).eta_ms, Some(4_000));
    }

    #[test]
    fn the_last_node_running_long_falls_back_to_the_whole_run_then_to_longer_than_usual() {
        let p = Progress {
            planned: vec![n("1"), n("2"), n("3")],
            settled: [n("1"), n("2")].into_iter().collect(),
            current: vec![CurrentNode {
                node: n("3"),
                ran_ms: 5_000,
                steps: None,
            }],
        };
        assert_eq!(running(&by_node(), 11_000, Some(&p)).eta_ms, Some(1_000));
        assert!(running(&by_node(), 14_000, Some(&p)).longer_than_usual);
    }

    #[test]
    fn a_pending_job_starts_when_the_jobs_ahead_end() {
        let e = pending(&whole(10_000.0), Some(25_000.0));
        assert_eq!(e.starts_in_ms, Some(25_000));
        assert_eq!(e.eta_ms, Some(35_000));
        let unknown_wait = pending(&whole(10_000.0), None);
        assert_eq!(unknown_wait.starts_in_ms, None);
        assert_eq!(unknown_wait.eta_ms, None);
        assert_eq!(unknown_wait.typical_ms, 10_000);
    }
}

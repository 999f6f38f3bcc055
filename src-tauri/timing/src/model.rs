//! The timing model of one instance: what its past jobs took.

use crate::shape::Shape;
use crate::stats::Series;
use comfy_model::{EstimateBasis, NodeDuration, NodeId};
use std::collections::{BTreeMap, HashMap};

/// Workflows remembered per instance; the least recently run is forgotten first.
const MAX_WORKFLOWS: usize = 256;
/// Node classes remembered per instance.
const MAX_CLASSES: usize = 512;
/// Nodes remembered per workflow (a graph larger than this keeps its total only).
const MAX_NODES: usize = 512;
/// A run whose nodes were not seen, shorter than this, was answered from the server's cache.
pub const MIN_RUN_MS: u64 = 50;
/// Nothing is expected to take longer than a week: what a graph or a server says beyond that
/// (a billion steps, a frame count near `u64::MAX`) is not believed past it.
pub const MAX_EXPECTED_MS: f64 = 7.0 * 24.0 * 3_600_000.0;

/// What one job that succeeded teaches.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub fingerprint: Option<&'a str>,
    /// How long the job ran, queue wait excluded, when known.
    pub run_ms: Option<u64>,
    /// How long each node ran, for a job whose nodes we followed (`Some(&[])`: none ran, the
    /// server answered every one from its cache); `None` when its nodes were not seen.
    pub nodes: Option<&'a [NodeDuration]>,
}

impl Run<'_> {
    /// Whether the job really ran. A job the server answered from its cache (the same workflow
    /// and seed again) says nothing of how long the workflow takes: when its nodes were
    /// followed, none of them ran; otherwise it took under [`MIN_RUN_MS`]. The one rule for
    /// every run learned, live or rebuilt from the journal.
    pub fn ran(&self) -> bool {
        match self.nodes {
            Some(nodes) => !nodes.is_empty(),
            None => self.run_ms.is_some_and(|ms| ms >= MIN_RUN_MS),
        }
    }
}

/// A workflow's typical run time, and how many runs it stands on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Typical {
    pub ms: f64,
    pub samples: u32,
}

/// What a job is expected to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub basis: EstimateBasis,
    pub samples: u32,
    /// The whole run, queue wait excluded.
    pub total_ms: f64,
    /// Expected milliseconds per node, for the nodes that are known (empty when only whole
    /// runs were seen).
    pub nodes: BTreeMap<NodeId, f64>,
}

/// Which of a workflow's two series a run belongs to. ComfyUI keeps the previous job's outputs
/// and its models loaded: a workflow run right after itself finds its loaders cached and its
/// model in place, and run after another workflow it loads them again, often taking twice as
/// long. The two are learned apart, so neither is the average of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Itself = 0,
    Another = 1,
}

impl After {
    fn of(fingerprint: &str, previous: Option<&str>) -> Self {
        if previous == Some(fingerprint) {
            Self::Itself
        } else {
            Self::Another
        }
    }
}

/// Two series of one measure, by [`After`].
#[derive(Debug, Clone, Default)]
struct Split([Series; 2]);

impl Split {
    fn push(&mut self, after: After, v: f64) {
        self.0[after as usize].push(v);
    }

    /// The series of `after`, or the other one while it has none.
    fn get(&self, after: After) -> &Series {
        let own = &self.0[after as usize];
        if own.len() > 0 {
            own
        } else {
            &self.0[1 - after as usize]
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Workflow {
    totals: Split,
    /// Every run, either way: what the workflow typically takes, to tell a person.
    all: Series,
    nodes: HashMap<NodeId, Split>,
    used: u64,
}

#[derive(Debug, Clone, Default)]
struct Class {
    /// Milliseconds per unit of work.
    per_work: Series,
    used: u64,
}

/// See the [crate docs](crate).
#[derive(Debug, Clone, Default)]
pub struct TimingModel {
    workflows: HashMap<String, Workflow>,
    /// Speed per node class, and per node class with the models it works with
    /// (`class` + `/` + [`NodeCost::models`](crate::NodeCost::models)), preferred when known.
    classes: HashMap<String, Class>,
    /// Counts runs learned: the recency order for forgetting.
    clock: u64,
    /// The fingerprint of the last run learned: what the next one runs after.
    last: Option<String>,
}

impl TimingModel {
    /// Changes whenever the model learns: an [`Expectation`] worked out at one version holds
    /// until the next.
    pub fn version(&self) -> u64 {
        self.clock
    }

    /// The fingerprint of the last run learned: the job a running one ran after.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// Learns from a job that succeeded, unless it did not really run ([`Run::ran`]). Runs are
    /// learned in the order they ran (one at a time, so the order they ended).
    pub fn learn(&mut self, run: &Run<'_>) {
        if !run.ran() {
            return;
        }
        let nodes = run.nodes.unwrap_or_default();
        self.clock += 1;
        let clock = self.clock;
        let previous = std::mem::replace(&mut self.last, run.fingerprint.map(str::to_owned));
        for n in nodes {
            let Some(class) = n.node_type.as_deref() else {
                continue;
            };
            let work = n.work.filter(|w| w.is_finite() && *w > 0.0).unwrap_or(1.0);
            let keys = std::iter::once(class.to_owned())
                .chain(n.models.as_deref().map(|m| class_key(class, m)));
            for key in keys {
                if !self.classes.contains_key(&key) {
                    forget_oldest(&mut self.classes, MAX_CLASSES, |c| c.used);
                }
                let c = self.classes.entry(key).or_default();
                c.per_work.push(n.ms as f64 / work);
                c.used = clock;
            }
        }
        let Some(fp) = run.fingerprint else {
            return;
        };
        if run.run_ms.is_none() && nodes.is_empty() {
            return;
        }
        if !self.workflows.contains_key(fp) {
            forget_oldest(&mut self.workflows, MAX_WORKFLOWS, |w| w.used);
        }
        let after = After::of(fp, previous.as_deref());
        let w = self.workflows.entry(fp.to_owned()).or_default();
        w.used = clock;
        if let Some(ms) = run.run_ms {
            w.totals.push(after, ms as f64);
            w.all.push(ms as f64);
        }
        for n in nodes {
            if w.nodes.len() >= MAX_NODES && !w.nodes.contains_key(&n.node) {
                continue;
            }
            w.nodes
                .entry(n.node.clone())
                .or_default()
                .push(after, n.ms as f64);
        }
    }

    /// The typical run time of a workflow, by fingerprint, over all its recent runs.
    pub fn typical(&self, fingerprint: &str) -> Option<Typical> {
        let w = self.workflows.get(fingerprint)?;
        Some(Typical {
            ms: w.all.typical()?.min(MAX_EXPECTED_MS),
            samples: w.all.len() as u32,
        })
    }

    /// What a job of this shape is expected to take when it runs after a job of fingerprint
    /// `after`: from earlier runs of the same workflow (those after itself, or those after
    /// another, as this one will be), else from each node class's speed scaled by the node's
    /// work. `None` when nothing of it was seen before.
    pub fn expect(&self, shape: &Shape, after: Option<&str>) -> Option<Expectation> {
        if let Some(w) = self.workflows.get(&shape.fingerprint) {
            let after = After::of(&shape.fingerprint, after);
            let nodes: BTreeMap<NodeId, f64> = w
                .nodes
                .iter()
                .filter_map(|(id, s)| Some((id.clone(), believed(s.get(after).typical()?)?)))
                .collect();
            let totals = w.totals.get(after);
            let (total_ms, samples) = match totals.typical() {
                Some(t) => (t, totals.len()),
                None => (
                    nodes.values().sum(),
                    w.nodes
                        .values()
                        .map(|s| s.get(after).len())
                        .max()
                        .unwrap_or(0),
                ),
            };
            if let Some(total_ms) = believed(total_ms) {
                return Some(Expectation {
                    basis: EstimateBasis::Workflow,
                    samples: samples as u32,
                    total_ms,
                    nodes,
                });
            }
        }
        let mut nodes = BTreeMap::new();
        let mut samples = usize::MAX;
        for (id, cost) in &shape.nodes {
            let with_models = cost
                .models
                .as_deref()
                .and_then(|m| self.classes.get(&class_key(&cost.class, m)));
            let Some(class) = with_models.or_else(|| self.classes.get(&cost.class)) else {
                continue;
            };
            let Some(per_work) = class.per_work.typical() else {
                continue;
            };
            let Some(ms) = believed(per_work * cost.work) else {
                continue;
            };
            nodes.insert(id.clone(), ms);
            samples = samples.min(class.per_work.len());
        }
        let total_ms = believed(nodes.values().sum())?;
        Some(Expectation {
            basis: EstimateBasis::Nodes,
            samples: samples as u32,
            total_ms,
            nodes,
        })
    }
}

/// An expected time as it is believed: a positive number of milliseconds, at most
/// [`MAX_EXPECTED_MS`]; `None` for zero, a negative or not a number. An infinite one (a graph
/// of absurd work) is a week.
fn believed(ms: f64) -> Option<f64> {
    (ms > 0.0).then(|| ms.min(MAX_EXPECTED_MS))
}

fn class_key(class: &str, models: &str) -> String {
    format!("{class}/{models}")
}

/// Makes room for one more entry by forgetting the least recently used one.
fn forget_oldest<V>(map: &mut HashMap<String, V>, max: usize, used: impl Fn(&V) -> u64) {
    if map.len() < max {
        return;
    }
    if let Some(oldest) = map
        .iter()
        .min_by_key(|(_, v)| used(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(steps: u32, width: u32) -> Shape {
        Shape::of(&json!({
            "1": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": 1000, "batch_size": 1}},
            "2": {"class_type": "KSampler", "inputs": {"steps": steps, "seed": 5, "latent_image": ["1", 0]}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0]}}
        }))
        .unwrap()
    }

    /// A model that has seen one run of `shape(20, 1000)`, node by node: 10 ms loading, 10 s
    /// sampling, 0.5 s decoding.
    fn one_run_of_20_steps_at_1000_px() -> TimingModel {
        let seen = shape(20, 1000);
        let mut m = TimingModel::default();
        m.learn(&Run {
            fingerprint: Some(&seen.fingerprint),
            run_ms: Some(10_500),
            nodes: Some(&durations(&seen, &[("1", 10), ("2", 10_000), ("3", 500)])),
        });
        m
    }

    fn durations(shape: &Shape, ms: &[(&str, u64)]) -> Vec<NodeDuration> {
        ms.iter()
            .map(|(id, ms)| {
                let cost = &shape.nodes[&NodeId::from(*id)];
                NodeDuration {
                    node: NodeId::from(*id),
                    node_type: Some(cost.class.clone()),
                    ms: *ms,
                    work: Some(cost.work),
                    models: cost.models.clone(),
                }
            })
            .collect()
    }

    #[test]
    fn nothing_is_expected_of_what_was_never_seen() {
        assert_eq!(TimingModel::default().expect(&shape(20, 1000), None), None);
    }

    #[test]
    fn a_workflow_seen_before_is_expected_to_take_what_it_took() {
        let s = shape(20, 1000);
        let mut m = TimingModel::default();
        for ms in [12_000, 10_000, 10_200] {
            m.learn(&Run {
                fingerprint: Some(&s.fingerprint),
                run_ms: Some(ms),
                nodes: None,
            });
        }
        // The first run came after something else (models loaded); the next two after itself.
        let e = m.expect(&s, Some(&s.fingerprint)).unwrap();
        assert_eq!(e.basis, EstimateBasis::Workflow);
        assert_eq!(e.samples, 2);
        assert_eq!(e.total_ms, 10_200.0);
        assert!(e.nodes.is_empty(), "only whole runs were seen");
        let cold = m.expect(&s, Some("0123456789abcdef")).unwrap();
        assert_eq!((cold.total_ms, cold.samples), (12_000.0, 1));
        let typical = m.typical(&s.fingerprint).unwrap();
        assert_eq!(
            (typical.ms, typical.samples),
            (10_200.0, 3),
            "every run counts here"
        );
        assert_eq!(m.last(), Some(s.fingerprint.as_str()));
    }

    #[test]
    fn a_workflow_only_ever_run_one_way_is_expected_the_same_either_way() {
        let s = shape(20, 1000);
        let mut m = TimingModel::default();
        m.learn(&Run {
            fingerprint: Some(&s.fingerprint),
            run_ms: Some(9_000),
            nodes: None,
        });
        let warm = m.expect(&s, Some(&s.fingerprint)).unwrap();
        let cold = m.expect(&s, None).unwrap();
        assert_eq!((warm.total_ms, cold.total_ms), (9_000.0, 9_000.0));
    }

    #[test]
    fn a_new_workflow_is_expected_from_its_node_classes_scaled_by_their_work() {
        let m = one_run_of_20_steps_at_1000_px();
        // Twice the steps, twice the width: the sampler does four times the work, the decode
        // twice.
        let new = shape(40, 2000);
        let e = m.expect(&new, None).unwrap();
        assert_eq!(e.basis, EstimateBasis::Nodes);
        assert_eq!(e.samples, 1);
        assert!((e.nodes[&NodeId::from("2")] - 40_000.0).abs() < 1e-6);
        assert!((e.nodes[&NodeId::from("3")] - 1_000.0).abs() < 1e-6);
        assert!((e.total_ms - 41_020.0).abs() < 1e-6, "{}", e.total_ms);
    }

    #[test]
    fn a_workflow_seen_node_by_node_knows_each_node() {
        let m = one_run_of_20_steps_at_1000_px();
        let e = m.expect(&shape(20, 1000), None).unwrap();
        assert_eq!(e.basis, EstimateBasis::Workflow);
        // The run's own time, not the sum of its nodes (10,510 ms).
        assert_eq!(e.total_ms, 10_500.0);
        assert_eq!(e.nodes[&NodeId::from("2")], 10_000.0);
    }

    #[test]
    fn the_model_stays_bounded_forgetting_the_least_recently_run() {
        let mut m = TimingModel::default();
        let keep = "keep";
        for i in 0..(MAX_WORKFLOWS * 2) {
            let fp = format!("{i:016x}");
            m.learn(&Run {
                fingerprint: Some(&fp),
                run_ms: Some(1_000),
                nodes: None,
            });
            if i % 10 == 0 {
                m.learn(&Run {
                    fingerprint: Some(keep),
                    run_ms: Some(700),
                    nodes: None,
                });
            }
        }
        assert!(m.workflows.len() <= MAX_WORKFLOWS);
        assert_eq!(m.typical(keep).unwrap().ms, 700.0, "run often, kept");
        assert!(
            m.typical(&format!("{:016x}", 0)).is_none(),
            "oldest forgotten"
        );
    }

    #[test]
    fn a_run_answered_from_the_cache_teaches_nothing() {
        let s = shape(20, 1000);
        let fp = Some(s.fingerprint.as_str());
        let nodes = durations(&s, &[("2", 9_000)]);
        let mut m = TimingModel::default();
        // Followed, and no node ran: every one came from the cache, however long the server
        // took to say so.
        m.learn(&Run {
            fingerprint: fp,
            run_ms: Some(3_000),
            nodes: Some(&[]),
        });
        // Not followed, and over in a few milliseconds.
        m.learn(&Run {
            fingerprint: fp,
            run_ms: Some(MIN_RUN_MS - 1),
            nodes: None,
        });
        // Not followed, and no time known.
        m.learn(&Run {
            fingerprint: fp,
            run_ms: None,
            nodes: None,
        });
        assert_eq!(m.version(), 0, "nothing learned");
        assert_eq!((m.typical(&s.fingerprint), m.last()), (None, None));

        m.learn(&Run {
            fingerprint: fp,
            run_ms: Some(MIN_RUN_MS),
            nodes: None,
        });
        m.learn(&Run {
            fingerprint: fp,
            run_ms: Some(9_500),
            nodes: Some(&nodes),
        });
        assert_eq!(m.typical(&s.fingerprint).unwrap().samples, 2);
    }

    #[test]
    fn an_absurd_graph_is_expected_to_take_a_week_at_most() {
        let m = one_run_of_20_steps_at_1000_px();
        let absurd = Shape::of(&json!({
            "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 1e200, "height": 1e200, "batch_size": 1e300}},
            "2": {"class_type": "KSampler", "inputs": {"steps": 1e300, "seed": 5, "latent_image": ["1", 0]}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0]}}
        }))
        .unwrap();
        assert!(absurd.nodes.values().all(|n| n.work.is_finite()));
        let e = m.expect(&absurd, None).unwrap();
        assert!(
            e.total_ms.is_finite() && e.total_ms <= MAX_EXPECTED_MS,
            "{e:?}"
        );
        assert!(e.nodes.values().all(|ms| *ms <= MAX_EXPECTED_MS), "{e:?}");
        let week = MAX_EXPECTED_MS as u64;

        let p = crate::pending(&e, Some(1e300));
        assert_eq!(p.typical_ms, week);
        assert_eq!(
            p.eta_ms,
            Some(u64::MAX),
            "a start past any clock ends there too"
        );
        let steps = crate::Progress {
            planned: e.nodes.keys().cloned().collect(),
            current: vec![crate::CurrentNode {
                node: NodeId::from("2"),
                ran_ms: u64::MAX,
                steps: Some((f64::MAX, f64::MAX)),
            }],
            ..Default::default()
        };
        let r = crate::running(&e, u64::MAX, Some(&steps));
        assert!(r.eta_ms.is_some_and(|ms| ms <= week), "{r:?}");
        assert!(r.percent.is_some_and(|p| p.is_finite()), "{r:?}");

        // A server that says its run took longer than any clock.
        let seen = shape(20, 1000);
        let mut m = TimingModel::default();
        m.learn(&Run {
            fingerprint: Some(&seen.fingerprint),
            run_ms: Some(u64::MAX),
            nodes: None,
        });
        assert_eq!(m.expect(&seen, None).unwrap().total_ms, MAX_EXPECTED_MS);
        assert_eq!(m.typical(&seen.fingerprint).unwrap().ms, MAX_EXPECTED_MS);
    }
}

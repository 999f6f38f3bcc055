//! How long a ComfyUI job will take, learned from how long this server's past jobs took.
//!
//! Pure and clock-free, like the tracker that uses it: time is passed in.
//!
//! - [`Shape`]: what of a graph decides its cost. Its fingerprint covers the graph's structure
//!   and the inputs that change how long it runs (steps, sizes, batch and frame counts, model
//!   names), not seeds or prompt text, so re-running a workflow with a new seed or prompt is the
//!   same workflow. Each node gets a *work* figure (steps × megapixels × frames, where the graph
//!   says) that its class's speed is scaled by.
//! - [`TimingModel`]: per instance, the recent run times of each workflow (and of each of its
//!   nodes, for jobs whose nodes we saw run), and each node class's milliseconds per unit of
//!   work. Robust (a median weighted toward recent runs), bounded in size, rebuilt from the
//!   journal at start and updated as jobs succeed, by one rule of what it learns ([`Run::ran`]:
//!   not a run the server answered from its cache). Nothing is expected to take more than a
//!   week ([`MAX_EXPECTED_MS`]).
//! - [`estimate`]: a running job's estimated percent and ETA, and a pending job's start and end,
//!   from the model and what is known of the job's progress.

mod estimate;
mod model;
mod shape;
mod stats;

pub use estimate::{pending, running, CurrentNode, Progress};
pub use model::{Expectation, Run, TimingModel, Typical, MAX_EXPECTED_MS, MIN_RUN_MS};
pub use shape::{NodeCost, Shape};

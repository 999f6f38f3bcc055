//! What a job was, read from its graph: the figures an artist looks for first, and every node.

use serde::{Deserialize, Serialize};

/// A readable summary of an API-format workflow (`comfy_protocol::summary`). Every field is
/// what the graph holds literally; a value fed by another node's output is not guessed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WorkflowSummary {
    /// Checkpoints and diffusion models loaded (`ckpt_name`, `unet_name`).
    pub models: Vec<String>,
    pub loras: Vec<LoraUse>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub steps: Option<u64>,
    pub cfg: Option<f64>,
    /// As text: a seed can be past what the webview's numbers hold exactly (2^53).
    pub seed: Option<String>,
    pub denoise: Option<f64>,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub batch_size: Option<u64>,
    /// The text of the encoders feeding the samplers' positive conditioning.
    pub positive: Vec<String>,
    /// The same for the negative conditioning.
    pub negative: Vec<String>,
    /// Every node, by id (numeric ids in number order).
    pub nodes: Vec<GraphNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LoraUse {
    pub name: String,
    /// `strength_model`, when the graph holds it as a number.
    pub strength: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GraphNode {
    pub id: String,
    pub class_type: String,
    /// The title the page gave it (`_meta.title`), when it has one.
    pub title: Option<String>,
}

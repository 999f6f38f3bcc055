//! What of an API-format graph decides how long it runs: its fingerprint, and each node's work.

use comfy_model::NodeId;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Float inputs that change a graph's cost (other floats, like `cfg` or `denoise`, are tuned
/// between runs without changing how long a step takes).
const COST_FLOATS: &[&str] = &[
    "scale_by",
    "upscale_by",
    "megapixels",
    "resize_by",
    "scale_factor",
];

/// Text inputs that change a graph's cost besides every `*_name` (checkpoint, sampler, VAE,
/// upscale model…). Prompt text, filename prefixes and input file names do not.
const COST_TEXTS: &[&str] = &[
    "model",
    "scheduler",
    "upscale_method",
    "method",
    "precision",
];

/// Inputs that multiply the work of a node and everything downstream of it.
const FRAME_INPUTS: &[&str] = &[
    "length",
    "frames",
    "num_frames",
    "frame_count",
    "video_frames",
];
const BATCH_INPUTS: &[&str] = &["batch_size", "amount"];

/// One node's part in the cost of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeCost {
    /// `class_type`.
    pub class: String,
    /// Steps × megapixels × batch × frames, each factor where the graph gives it (through links
    /// for sizes: a sampler's size is its latent's), else 1. Always finite.
    pub work: f64,
    /// The model files and methods the node works with (every `*_name` input of it and of the
    /// nodes upstream of it), as 16 hex digits: a VAE decode of a video model is not as fast
    /// per pixel as one of an image model. `None` when there are none.
    pub models: Option<String>,
}

/// A graph as the timing model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// 16 hex digits, stable across versions of this app (it is stored in the journal).
    pub fingerprint: String,
    pub nodes: BTreeMap<NodeId, NodeCost>,
}

impl Shape {
    /// The shape of an API-format graph (`{"id": {"class_type", "inputs"}, …}`); `None` for
    /// anything else.
    pub fn of(graph: &Value) -> Option<Shape> {
        let graph = graph.as_object()?;
        let mut ids: Vec<&String> = graph
            .iter()
            .filter(|(_, n)| class_of(n).is_some())
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return None;
        }
        ids.sort();
        let mut hash = Fnv::new();
        for id in &ids {
            let node = &graph[id.as_str()];
            hash.field(id);
            hash.field(class_of(node).unwrap_or_default());
            let Some(inputs) = node.get("inputs").and_then(Value::as_object) else {
                continue;
            };
            let mut names: Vec<&String> = inputs.keys().collect();
            names.sort();
            for name in names {
                let v = &inputs[name.as_str()];
                if let Some((src, slot)) = link(v) {
                    hash.field(name);
                    hash.field(&format!("@{src}:{slot}"));
                } else if counts_for_cost(name, v) {
                    hash.field(name);
                    hash.field(&v.to_string());
                }
            }
        }
        let mut sizes = HashMap::new();
        let mut names = HashMap::new();
        let nodes = ids
            .iter()
            .map(|id| {
                let node = &graph[id.as_str()];
                let steps = number(node, "steps").filter(|s| *s >= 1.0).unwrap_or(1.0);
                let size = size_of(graph, id, &mut sizes, 0);
                let size = if size > 0.0 { size } else { 1.0 };
                let models = model_names(graph, id, &mut names, 0);
                let cost = NodeCost {
                    class: class_of(node).unwrap_or_default().to_owned(),
                    // Finite however absurd the graph: a billion steps at a billion pixels
                    // is the largest number there is, not infinity.
                    work: (steps * size).min(f64::MAX),
                    models: (!models.is_empty()).then(|| {
                        let mut h = Fnv::new();
                        for m in &models {
                            h.field(m);
                        }
                        format!("{:016x}", h.0)
                    }),
                };
                (NodeId::from(id.as_str()), cost)
            })
            .collect();
        Some(Shape {
            fingerprint: format!("{:016x}", hash.0),
            nodes,
        })
    }
}

fn class_of(node: &Value) -> Option<&str> {
    node.get("class_type").and_then(Value::as_str)
}

fn number(node: &Value, input: &str) -> Option<f64> {
    node.get("inputs")?
        .get(input)?
        .as_f64()
        .filter(|n| n.is_finite() && *n > 0.0)
}

fn link(v: &Value) -> Option<(String, u64)> {
    let a = v.as_array()?;
    if a.len() != 2 {
        return None;
    }
    let slot = a[1].as_u64()?;
    let src = match &a[0] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((src, slot))
}

/// Whether an input's value is part of the fingerprint: integers but seeds, booleans, the
/// floats and texts that change cost.
fn counts_for_cost(name: &str, v: &Value) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::Number(n) if n.is_i64() || n.is_u64() => !name.contains("seed"),
        Value::Number(_) => COST_FLOATS.contains(&name),
        Value::String(_) => name.ends_with("_name") || COST_TEXTS.contains(&name),
        _ => false,
    }
}

/// Megapixels × batch × frames a node works on: its own `width`/`height` (and batch, frames)
/// where it has them, else the largest of what it is linked to, scaled by its own upscale
/// factor; 0 when nothing says (a loader, a text encoder).
fn size_of(
    graph: &Map<String, Value>,
    id: &str,
    memo: &mut HashMap<String, f64>,
    depth: usize,
) -> f64 {
    if let Some(s) = memo.get(id) {
        return *s;
    }
    let Some(node) = graph.get(id) else {
        return 0.0;
    };
    // A graph is acyclic and shallow; a hostile one is cut off instead of recursing without
    // end: a node met again while its size is being worked out counts as unknown.
    if depth > 256 {
        return 0.0;
    }
    memo.insert(id.to_owned(), 0.0);
    let factor = |names: &[&str]| names.iter().find_map(|n| number(node, n)).unwrap_or(1.0);
    let own = match (number(node, "width"), number(node, "height")) {
        (Some(w), Some(h)) => Some(w * h / 1_000_000.0),
        _ => None,
    };
    let size = match own {
        Some(mp) => mp * factor(BATCH_INPUTS) * factor(FRAME_INPUTS),
        None => {
            let upstream = node
                .get("inputs")
                .and_then(Value::as_object)
                .map(|inputs| {
                    inputs
                        .values()
                        .filter_map(link)
                        .map(|(src, _)| size_of(graph, &src, memo, depth + 1))
                        .fold(0.0, f64::max)
                })
                .unwrap_or(0.0);
            let scale = ["scale_by", "upscale_by"]
                .iter()
                .find_map(|n| number(node, n))
                .unwrap_or(1.0);
            upstream * scale * scale
        }
    };
    let size = if size.is_finite() && size > 0.0 {
        size
    } else {
        0.0
    };
    memo.insert(id.to_owned(), size);
    size
}

/// Every `name=value` of a `*_name` text input of the node and of everything upstream of it.
fn model_names(
    graph: &Map<String, Value>,
    id: &str,
    memo: &mut HashMap<String, BTreeSet<String>>,
    depth: usize,
) -> BTreeSet<String> {
    if let Some(s) = memo.get(id) {
        return s.clone();
    }
    let Some(inputs) = graph
        .get(id)
        .and_then(|n| n.get("inputs"))
        .and_then(Value::as_object)
    else {
        return BTreeSet::new();
    };
    // As in `size_of`: a node met again while being worked out, or too deep, adds nothing.
    if depth > 256 {
        return BTreeSet::new();
    }
    memo.insert(id.to_owned(), BTreeSet::new());
    let mut names = BTreeSet::new();
    for (name, v) in inputs {
        match v {
            Value::String(s) if name.ends_with("_name") => {
                names.insert(format!("{name}={s}"));
            }
            _ => {
                if let Some((src, _)) = link(v) {
                    names.extend(model_names(graph, &src, memo, depth + 1));
                }
            }
        }
    }
    memo.insert(id.to_owned(), names.clone());
    names
}

/// FNV-1a, 64 bits: small, and the same on every build (the standard hasher is not promised
/// to be), which a fingerprint stored in the journal needs.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `s` and a separator, so `("ab", "c")` and `("a", "bc")` differ.
    fn field(&mut self, s: &str) {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn txt2img(seed: u64, text: &str, steps: u32, width: u32) -> Value {
        json!({
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": 512, "batch_size": 2}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
            "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": steps, "cfg": 7.5,
                  "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                  "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"},
                  "_meta": {"title": "Save"}}
        })
    }

    fn fp(v: &Value) -> String {
        Shape::of(v).unwrap().fingerprint
    }

    #[test]
    fn a_new_seed_prompt_or_cfg_is_the_same_workflow() {
        let a = txt2img(1, "a cat", 20, 512);
        let mut b = txt2img(99, "a dog in the rain", 20, 512);
        b["3"]["inputs"]["cfg"] = json!(4.0);
        b["9"]["inputs"]["filename_prefix"] = json!("other");
        b["9"]["_meta"]["title"] = json!("Renamed");
        assert_eq!(fp(&a), fp(&b));
        assert_eq!(fp(&a).len(), 16);
    }

    #[test]
    fn steps_sizes_models_and_wiring_change_the_workflow() {
        let base = fp(&txt2img(1, "x", 20, 512));
        assert_ne!(base, fp(&txt2img(1, "x", 30, 512)), "steps");
        assert_ne!(base, fp(&txt2img(1, "x", 20, 768)), "size");
        let mut model = txt2img(1, "x", 20, 512);
        model["4"]["inputs"]["ckpt_name"] = json!("sdxl.safetensors");
        assert_ne!(base, fp(&model), "checkpoint");
        let mut sampler = txt2img(1, "x", 20, 512);
        sampler["3"]["inputs"]["sampler_name"] = json!("dpmpp_2m");
        assert_ne!(base, fp(&sampler), "sampler");
        let mut wiring = txt2img(1, "x", 20, 512);
        wiring["3"]["inputs"]["negative"] = json!(["4", 1]);
        assert_ne!(base, fp(&wiring), "links");
    }

    #[test]
    fn the_fingerprint_is_stable_across_builds() {
        // Stored in journals: a change here makes every learned workflow unknown again.
        assert_eq!(fp(&txt2img(1, "x", 20, 512)), "eb1a92c73d0b9c4f");
    }

    #[test]
    fn work_is_steps_times_the_size_reaching_the_node() {
        let s = Shape::of(&txt2img(1, "x", 20, 1024)).unwrap();
        let work = |id: &str| s.nodes[&NodeId::from(id)].work;
        // 1024×512 px, batch of 2: 1.048576 MP; the sampler does 20 steps of it.
        let mp = 1024.0 * 512.0 * 2.0 / 1e6;
        assert!((work("5") - mp).abs() < 1e-9);
        assert!((work("3") - 20.0 * mp).abs() < 1e-9);
        assert!(
            (work("8") - mp).abs() < 1e-9,
            "decode follows the sampler's size"
        );
        assert!((work("4") - 1.0).abs() < 1e-9, "a loader has no size");
        assert_eq!(s.nodes[&NodeId::from("3")].class, "KSampler");
    }

    #[test]
    fn a_node_knows_the_models_it_works_with_through_its_inputs() {
        let s = Shape::of(&txt2img(1, "x", 20, 512)).unwrap();
        let models = |id: &str| s.nodes[&NodeId::from(id)].models.clone();
        assert_eq!(models("5"), None, "an empty latent uses no model");
        assert!(models("8").is_some());
        let mut other = txt2img(1, "x", 20, 512);
        other["4"]["inputs"]["ckpt_name"] = json!("video.safetensors");
        let o = Shape::of(&other).unwrap();
        assert_ne!(o.nodes[&NodeId::from("8")].models, models("8"));
        // Steps and sizes are work, not models.
        let bigger = Shape::of(&txt2img(9, "y", 40, 1024)).unwrap();
        assert_eq!(bigger.nodes[&NodeId::from("8")].models, models("8"));
    }

    #[test]
    fn an_upscale_multiplies_the_size_downstream() {
        let mut g = txt2img(1, "x", 20, 512);
        g["10"] = json!({"class_type": "ImageScaleBy", "inputs": {"image": ["8", 0], "scale_by": 2.0, "upscale_method": "lanczos"}});
        g["9"]["inputs"]["images"] = json!(["10", 0]);
        let s = Shape::of(&g).unwrap();
        let mp = 512.0 * 512.0 * 2.0 / 1e6;
        assert!((s.nodes[&NodeId::from("9")].work - 4.0 * mp).abs() < 1e-9);
    }

    #[test]
    fn anything_but_a_graph_has_no_shape() {
        assert_eq!(Shape::of(&json!(null)), None);
        assert_eq!(Shape::of(&json!({"1": 3})), None);
        // A cycle (never valid, but a hostile server may list one) does not hang.
        let cyclic = json!({
            "1": {"class_type": "A", "inputs": {"x": ["2", 0]}},
            "2": {"class_type": "B", "inputs": {"x": ["1", 0]}}
        });
        assert!(Shape::of(&cyclic).is_some());
    }
}

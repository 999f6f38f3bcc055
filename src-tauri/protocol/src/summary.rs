//! What a job was, read from its API-format graph ([`WorkflowSummary`]): the models, LoRAs,
//! sampler settings, size and prompt text an artist looks for, and every node.
//!
//! Only what the graph holds literally is reported: a setting fed by another node's output is
//! followed only where its meaning is plain (a text encoder's text from a primitive, conditioning
//! through combiners and ControlNets), never guessed. A graph that is not an object gives an
//! empty summary; links are followed to a bounded depth, so a cycle costs nothing.

use comfy_model::{GraphNode, LoraUse, WorkflowSummary};
use serde_json::{Map, Value};

/// How many links are followed from a sampler to the text that conditions it.
const MAX_DEPTH: usize = 16;
/// The inputs a text encoder takes its text from.
const TEXT_INPUTS: [&str; 4] = ["text", "text_g", "text_l", "prompt"];
/// The inputs conditioning passes through unchanged in meaning (combine, concat, set area…).
const CONDITIONING_INPUTS: [&str; 5] = [
    "conditioning",
    "conditioning_1",
    "conditioning_2",
    "conditioning_to",
    "conditioning_from",
];

type Nodes = Map<String, Value>;

/// The summary of an API-format workflow.
pub fn summarize(prompt: &Value) -> WorkflowSummary {
    let Value::Object(nodes) = prompt else {
        return WorkflowSummary::default();
    };
    let mut ids: Vec<&String> = nodes.keys().collect();
    ids.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    });
    let mut s = WorkflowSummary::default();
    for id in ids {
        let node = &nodes[id];
        let class = node.get("class_type").and_then(Value::as_str).unwrap_or("");
        s.nodes.push(GraphNode {
            id: id.clone(),
            class_type: class.to_owned(),
            title: node
                .pointer("/_meta/title")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        let Some(inputs) = node.get("inputs").and_then(Value::as_object) else {
            continue;
        };
        let text = |name: &str| inputs.get(name).and_then(Value::as_str);
        let int = |name: &str| inputs.get(name).and_then(Value::as_u64);
        let number = |name: &str| inputs.get(name).and_then(Value::as_f64);
        for name in ["ckpt_name", "unet_name"] {
            if let Some(model) = text(name) {
                push_new(&mut s.models, model);
            }
        }
        if let Some(name) = text("lora_name") {
            s.loras.push(LoraUse {
                name: name.to_owned(),
                strength: number("strength_model"),
            });
        }
        // The first sampler in node order gives the settings (a second pass, an upscale, is
        // listed with the nodes).
        first(&mut s.sampler, text("sampler_name").map(str::to_owned));
        first(&mut s.scheduler, text("scheduler").map(str::to_owned));
        if inputs.contains_key("sampler_name") || inputs.contains_key("noise_seed") {
            first(&mut s.steps, int("steps"));
            first(&mut s.cfg, number("cfg"));
            first(&mut s.denoise, number("denoise"));
        }
        first(
            &mut s.seed,
            int("seed")
                .or_else(|| int("noise_seed"))
                .map(|n| n.to_string()),
        );
        if class.starts_with("Empty") && class.contains("Latent") {
            first(&mut s.width, int("width"));
            first(&mut s.height, int("height"));
            first(&mut s.batch_size, int("batch_size"));
        }
        if let Some(link) = inputs.get("positive") {
            texts(nodes, link, 0, &mut s.positive);
        }
        if let Some(link) = inputs.get("negative") {
            texts(nodes, link, 0, &mut s.negative);
        }
    }
    s
}

/// At most this many characters of prompt text in a [`label`].
const LABEL_PROMPT_CHARS: usize = 40;

/// A short name for a job with no file name: its model (without the file extension) and the
/// first words of its prompt, e.g. `sd_xl_base_1.0 · a lighthouse at dusk, volumetric…`.
pub fn label(summary: &WorkflowSummary) -> Option<String> {
    let model = summary.models.first().map(|m| {
        let file = m.rsplit(['/', '\\']).next().unwrap_or(m);
        file.rsplit_once('.')
            .map_or(file, |(stem, _)| stem)
            .to_owned()
    });
    let words = summary.positive.first().map(|text| {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() <= LABEL_PROMPT_CHARS {
            return text;
        }
        let cut: String = text.chars().take(LABEL_PROMPT_CHARS).collect();
        // At a word's end where there is one.
        let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
        format!("{}…", cut.trim_end_matches([',', ';', ' ']))
    });
    match (model, words) {
        (Some(m), Some(w)) => Some(format!("{m} · {w}")),
        (m, w) => m.or(w),
    }
}

fn first<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn push_new(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

/// A link `[node id, output index]`: the node and the output.
fn linked<'n>(nodes: &'n Nodes, link: &Value) -> Option<(&'n Map<String, Value>, u64)> {
    let [id, output] = link.as_array()?.as_slice() else {
        return None;
    };
    let id = match id {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let inputs = nodes.get(&id)?.get("inputs")?.as_object()?;
    Some((inputs, output.as_u64().unwrap_or(0)))
}

/// The prompt text that conditioning arriving over `link` was encoded from.
fn texts(nodes: &Nodes, link: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some((inputs, output)) = linked(nodes, link) else {
        return;
    };
    let mut found = false;
    for name in TEXT_INPUTS {
        match inputs.get(name) {
            Some(Value::String(t)) => {
                found = true;
                if !t.trim().is_empty() {
                    push_new(out, t);
                }
            }
            Some(upstream @ Value::Array(_)) => {
                found = true;
                if let Some(t) = string(nodes, upstream, depth + 1) {
                    push_new(out, &t);
                }
            }
            _ => {}
        }
    }
    if found {
        return;
    }
    for name in CONDITIONING_INPUTS {
        if let Some(upstream) = inputs.get(name) {
            texts(nodes, upstream, depth + 1, out);
        }
    }
    // A node with both (a ControlNet, an inpaint conditioning) passes each through to the
    // output of the same side.
    let side = if output == 1 { "negative" } else { "positive" };
    if let Some(upstream) = inputs.get(side) {
        texts(nodes, upstream, depth + 1, out);
    }
}

/// The text a node outputs over `link`: a primitive's or a text node's literal value.
fn string(nodes: &Nodes, link: &Value, depth: usize) -> Option<String> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (inputs, _) = linked(nodes, link)?;
    for name in ["value", "string", "text", "prompt"] {
        match inputs.get(name) {
            Some(Value::String(t)) => return Some(t.clone()),
            Some(upstream @ Value::Array(_)) => return string(nodes, upstream, depth + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// ComfyUI's default text-to-image graph, with a LoRA and a ControlNet added.
    fn txt2img() -> Value {
        json!({
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
            "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "detail.safetensors", "strength_model": 0.8,
                   "strength_clip": 1.0, "model": ["4", 0], "clip": ["4", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 2}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["10", 1]},
                  "_meta": {"title": "Positive"}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["12", 0], "clip": ["10", 1]}},
            "12": {"class_type": "PrimitiveString", "inputs": {"value": "blurry, text"}},
            "11": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                   "control_net": ["13", 0], "image": ["14", 0], "strength": 0.6}},
            "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286_u64, "steps": 20, "cfg": 8.0,
                  "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "model": ["10", 0],
                  "positive": ["11", 0], "negative": ["11", 1], "latent_image": ["5", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}
        })
    }

    #[test]
    fn reads_what_a_text_to_image_job_was() {
        let s = summarize(&txt2img());
        assert_eq!(s.models, ["sd_xl_base_1.0.safetensors"]);
        assert_eq!(
            s.loras,
            [LoraUse {
                name: "detail.safetensors".into(),
                strength: Some(0.8)
            }]
        );
        assert_eq!(s.sampler.as_deref(), Some("euler"));
        assert_eq!(s.scheduler.as_deref(), Some("normal"));
        assert_eq!(
            (s.steps, s.cfg, s.denoise),
            (Some(20), Some(8.0), Some(1.0))
        );
        assert_eq!(s.seed.as_deref(), Some("156680208700286"));
        assert_eq!(
            (s.width, s.height, s.batch_size),
            (Some(1024), Some(768), Some(2))
        );
        // Through the ControlNet, each side to its own text; the negative from a primitive.
        assert_eq!(s.positive, ["a lighthouse at dusk"]);
        assert_eq!(s.negative, ["blurry, text"]);
        let ids: Vec<_> = s.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]);
        assert_eq!(s.nodes[3].title.as_deref(), Some("Positive"));
        assert_eq!(s.nodes[0].class_type, "KSampler");
    }

    #[test]
    fn a_custom_sampler_and_combined_conditioning_are_followed() {
        let s = summarize(&json!({
            "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "wearing a hat"}},
            "4": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["3", 0]}},
            "5": {"class_type": "CFGGuider", "inputs": {"positive": ["4", 0], "negative": ["6", 0], "cfg": 3.5}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}},
            "7": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
            "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
            "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}
        }));
        assert_eq!(s.models, ["flux1-dev.safetensors"]);
        assert_eq!(s.positive, ["a cat", "wearing a hat"]);
        assert!(s.negative.is_empty(), "an empty prompt says nothing");
        assert_eq!(
            (s.seed.as_deref(), s.sampler.as_deref()),
            (Some("42"), Some("dpmpp_2m"))
        );
        assert_eq!((s.width, s.height), (Some(512), Some(512)));
    }

    #[test]
    fn a_label_names_the_model_and_the_first_words() {
        assert_eq!(
            label(&summarize(&txt2img())).as_deref(),
            Some("sd_xl_base_1.0 · a lighthouse at dusk")
        );
        let long = WorkflowSummary {
            models: vec!["flux/flux1-dev.safetensors".into()],
            positive: vec![
                "a very long prompt about\na lighthouse, at dusk, with volumetric light".into(),
            ],
            ..WorkflowSummary::default()
        };
        assert_eq!(
            label(&long).as_deref(),
            Some("flux1-dev · a very long prompt about a lighthouse…")
        );
        assert_eq!(label(&WorkflowSummary::default()), None);
    }

    #[test]
    fn cycles_and_nonsense_cost_nothing() {
        let cycle = json!({
            "1": {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "negative": ["1", 1]}},
            "2": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["1", 0]}}
        });
        let s = summarize(&cycle);
        assert!(s.positive.is_empty() && s.negative.is_empty());
        assert_eq!(s.nodes.len(), 2);
        for value in [
            json!(null),
            json!([1, 2]),
            json!({"1": 5}),
            json!({"1": {"inputs": {"positive": "x"}}}),
        ] {
            let s = summarize(&value);
            assert!(s.positive.is_empty(), "{value}");
        }
    }
}

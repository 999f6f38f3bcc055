//! API-format workflows: validation on submit, execution order and cache signatures.
//!
//! Validation follows ComfyUI's `validate_prompt` closely enough to produce the same error
//! objects (`missing_node_type`, `prompt_no_outputs`, `required_input_missing`, a 200 with
//! `node_errors` when only some outputs are valid, ...). The execution order follows ComfyUI's
//! `ExecutionList`: output nodes are staged first, then ready nodes are picked preferring outputs
//! and nodes that unblock outputs, which is why a workflow `1 -> 2 -> 3` plus `1 -> 4 (preview)`
//! runs 1, 4, 2, 3. This module is pure: no I/O, no clock, no server state.

use std::collections::{HashMap, HashSet};

use crate::catalog;
use crate::json::J;
use crate::obj;
use crate::ServerVersion;

/// One node of a submitted graph.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub class_type: String,
    pub inputs: Vec<(String, J)>,
}

impl Node {
    pub fn input(&self, name: &str) -> Option<&J> {
        self.inputs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// A validated graph, nodes in the submitted key order.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

impl Graph {
    /// Reads a graph that already passed [`validate`]; nodes without a usable class are skipped.
    pub fn from_prompt(prompt: &J) -> Graph {
        let mut nodes = Vec::new();
        for (id, node) in prompt.as_object().map(Vec::as_slice).unwrap_or_default() {
            let Some(class_type) = node.get("class_type").and_then(J::as_str) else {
                continue;
            };
            let inputs = node
                .get("inputs")
                .and_then(J::as_object)
                .cloned()
                .unwrap_or_default();
            nodes.push(Node {
                id: id.clone(),
                class_type: class_type.to_string(),
                inputs,
            });
        }
        Graph { nodes }
    }

    pub fn get(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }
}

/// `[node_id, output_index]`.
pub fn as_link(value: &J) -> Option<(&str, usize)> {
    let items = value.as_array()?;
    if items.len() != 2 {
        return None;
    }
    let from = items[0].as_str()?;
    let index = items[1].as_i64()?;
    usize::try_from(index).ok().map(|i| (from, i))
}

/// The outcome of validating a submitted prompt.
#[derive(Debug)]
pub enum Validation {
    /// Queue the job with these outputs; `node_errors` may still list invalid outputs.
    Valid {
        outputs: Vec<String>,
        node_errors: J,
    },
    /// Reject with HTTP 400 `{"error": error, "node_errors": node_errors}`.
    Invalid { error: J, node_errors: J },
}

fn error(kind: &str, message: &str, details: &str, extra_info: J) -> J {
    obj! {
        "type" => kind,
        "message" => message,
        "details" => details,
        "extra_info" => extra_info,
    }
}

fn invalid(error: J) -> Validation {
    Validation::Invalid {
        error,
        node_errors: J::obj(),
    }
}

/// Validates `prompt` the way ComfyUI's `POST /prompt` does.
pub fn validate(
    prompt: &J,
    version: ServerVersion,
    partial_targets: Option<&[String]>,
) -> Validation {
    let Some(entries) = prompt.as_object() else {
        return invalid(error(
            "invalid_prompt",
            "Cannot execute because the prompt is not an object.",
            "",
            J::obj(),
        ));
    };
    let newer = version == ServerVersion::V0_26;
    for (id, node) in entries {
        let title = node
            .get("_meta")
            .and_then(|m| m.get("title"))
            .and_then(J::as_str)
            .map(str::to_string);
        let details = format!("Node ID '#{id}'");
        let Some(class_type) = node.get("class_type").and_then(J::as_str) else {
            return invalid(if newer {
                let shown = title.clone().unwrap_or_else(|| format!("ID #{id}"));
                error(
                    "missing_node_type",
                    &format!("Node '{shown}' has no class_type. The workflow may be corrupted or a custom node is missing."),
                    &details,
                    obj! { "node_id" => id.as_str(), "class_type" => J::Null, "node_title" => title },
                )
            } else {
                error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    &details,
                    J::obj(),
                )
            });
        };
        if !catalog::is_known(class_type) {
            return invalid(if newer {
                let shown = title.unwrap_or_else(|| class_type.to_string());
                error(
                    "missing_node_type",
                    &format!("Node '{shown}' not found. The custom node may not be installed."),
                    &details,
                    obj! { "node_id" => id.as_str(), "class_type" => class_type, "node_title" => shown },
                )
            } else {
                error(
                    "invalid_prompt",
                    &format!("Cannot execute because node {class_type} does not exist."),
                    &details,
                    J::obj(),
                )
            });
        }
    }

    let outputs: Vec<&String> = entries
        .iter()
        .filter(|(id, node)| {
            let class_type = node.get("class_type").and_then(J::as_str).unwrap_or("");
            catalog::is_output(class_type) && partial_targets.is_none_or(|t| t.contains(id))
        })
        .map(|(id, _)| id)
        .collect();
    if outputs.is_empty() {
        return invalid(error(
            "prompt_no_outputs",
            "Prompt has no outputs",
            "",
            J::obj(),
        ));
    }

    let mut validated: Vec<(String, bool, Vec<J>)> = Vec::new();
    let mut good = Vec::new();
    let mut failed_reasons: Vec<J> = Vec::new();
    let mut node_errors = J::obj();
    for output in outputs {
        let (valid, reasons) = match validate_node(prompt, output, &mut validated, &mut Vec::new())
        {
            Ok(valid) => (valid, own_errors(&validated, output)),
            Err(missing) => {
                let reasons = vec![missing_link_error(&missing)];
                set_validated(&mut validated, output, false, reasons.clone());
                (false, reasons)
            }
        };
        if valid {
            good.push(output.clone());
            continue;
        }
        failed_reasons.extend(reasons);
        for (node_id, ok, errors) in &validated {
            if *ok || errors.is_empty() {
                continue;
            }
            if node_errors.get(node_id).is_none() {
                let class_type = prompt
                    .get(node_id)
                    .and_then(|n| n.get("class_type"))
                    .cloned()
                    .unwrap_or_default();
                node_errors.set(
                    node_id,
                    obj! {
                        "errors" => J::Arr(errors.clone()),
                        "dependent_outputs" => J::Arr(Vec::new()),
                        "class_type" => class_type,
                    },
                );
            }
            if let Some(J::Obj(entry)) = match &mut node_errors {
                J::Obj(map) => map.iter_mut().find(|(k, _)| k == node_id).map(|(_, v)| v),
                _ => None,
            } {
                if let Some((_, J::Arr(deps))) =
                    entry.iter_mut().find(|(k, _)| k == "dependent_outputs")
                {
                    deps.push(J::from(output));
                }
            }
        }
    }
    if good.is_empty() {
        let details: Vec<String> = failed_reasons
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.get("message").and_then(J::as_str).unwrap_or(""),
                    e.get("details").and_then(J::as_str).unwrap_or("")
                )
            })
            .collect();
        return Validation::Invalid {
            error: error(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                &details.join("\n"),
                J::obj(),
            ),
            node_errors,
        };
    }
    Validation::Valid {
        outputs: good,
        node_errors,
    }
}

fn own_errors(validated: &[(String, bool, Vec<J>)], id: &str) -> Vec<J> {
    validated
        .iter()
        .find(|(k, _, _)| k == id)
        .map(|(_, _, e)| e.clone())
        .unwrap_or_default()
}

fn set_validated(validated: &mut Vec<(String, bool, Vec<J>)>, id: &str, ok: bool, errors: Vec<J>) {
    match validated.iter_mut().find(|(k, _, _)| k == id) {
        Some(slot) => {
            slot.1 = ok;
            slot.2 = errors;
        }
        None => validated.push((id.to_string(), ok, errors)),
    }
}

/// ComfyUI raises a `KeyError` deep inside validation for a link to a missing node; the error is
/// attributed to the output being validated.
fn missing_link_error(missing: &str) -> J {
    error(
        "exception_during_validation",
        "Exception when validating node",
        &format!("'{missing}'"),
        obj! {
            "exception_type" => "KeyError",
            "traceback" => J::Arr(vec![
                J::from("  File \"fake_comfyui/execution.py\", line 1172, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n"),
                J::from("  File \"fake_comfyui/execution.py\", line 921, in validate_inputs\n    o_class_type = prompt[o_id]['class_type']\n"),
            ]),
        },
    )
}

/// Returns whether the node (and everything it depends on) is valid; `Err(id)` for a link to a
/// node id that is not in the graph.
fn validate_node(
    prompt: &J,
    id: &str,
    validated: &mut Vec<(String, bool, Vec<J>)>,
    visiting: &mut Vec<String>,
) -> Result<bool, String> {
    if let Some((_, ok, _)) = validated.iter().find(|(k, _, _)| k == id) {
        return Ok(*ok);
    }
    let Some(node) = prompt.get(id) else {
        return Err(id.to_string());
    };
    if visiting.iter().any(|v| v == id) {
        let err = error(
            "dependency_cycle",
            "Dependency cycle detected",
            &format!("Node {id} depends on itself"),
            obj! { "node_id" => id, "cycle_nodes" => J::from(visiting.clone()) },
        );
        set_validated(validated, id, false, vec![err]);
        return Ok(false);
    }
    visiting.push(id.to_string());
    let class_type = node.get("class_type").and_then(J::as_str).unwrap_or("");
    let empty = J::obj();
    let inputs = node.get("inputs").unwrap_or(&empty);
    let mut errors = Vec::new();
    let mut valid = true;
    for spec in catalog::inputs(class_type) {
        let name = spec.name;
        let Some(value) = inputs.get(name) else {
            if spec.must_be_given(class_type) {
                errors.push(error(
                    "required_input_missing",
                    "Required input is missing",
                    name,
                    obj! { "input_name" => name },
                ));
            }
            continue;
        };
        if let Some(items) = value.as_array() {
            if spec.is_widget() && as_link(value).is_none() {
                // A list given to a widget: ComfyUI reports it as a bad link.
                errors.push(error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    obj! { "input_name" => name, "input_config" => spec.spec, "received_value" => value },
                ));
                continue;
            }
            let Some(from) = items.first().and_then(J::as_str) else {
                continue;
            };
            match validate_node(prompt, from, validated, visiting) {
                Ok(true) => {}
                Ok(false) => valid = false,
                Err(missing) => {
                    visiting.pop();
                    return Err(missing);
                }
            }
            continue;
        }
        check_widget(class_type, &spec, name, value, &mut errors);
    }
    visiting.pop();
    let ok = valid && errors.is_empty();
    set_validated(validated, id, ok, errors);
    Ok(ok)
}

fn check_widget(
    class_type: &str,
    spec: &catalog::InputSpec<'_>,
    name: &str,
    value: &J,
    errors: &mut Vec<J>,
) {
    let config = spec.config();
    match spec.type_name() {
        Some(kind @ ("INT" | "FLOAT")) => {
            let Some(number) = value
                .as_f64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
            else {
                errors.push(error(
                    "invalid_input_type",
                    &format!("Failed to convert an input value to a {kind} value"),
                    &format!("{name}, {}, invalid literal", value.python_str()),
                    obj! { "input_name" => name, "input_config" => spec.spec, "received_value" => value },
                ));
                return;
            };
            let shown = value.python_str();
            if let Some(min) = config.and_then(|c| c.get("min")) {
                if min.as_f64().is_some_and(|m| number < m) {
                    errors.push(error(
                        "value_smaller_than_min",
                        &format!("Value {shown} smaller than min of {}", min.python_str()),
                        name,
                        obj! { "input_name" => name, "input_config" => spec.spec, "received_value" => value },
                    ));
                }
            }
            if let Some(max) = config.and_then(|c| c.get("max")) {
                if max.as_f64().is_some_and(|m| number > m) {
                    errors.push(error(
                        "value_bigger_than_max",
                        &format!("Value {shown} bigger than max of {}", max.python_str()),
                        name,
                        obj! { "input_name" => name, "input_config" => spec.spec, "received_value" => value },
                    ));
                }
            }
        }
        _ => {
            // LoadImage validates its file itself, so its option list is not enforced.
            if class_type == "LoadImage" {
                return;
            }
            if let Some(options) = spec.options() {
                if !options.contains(value) {
                    let (list_info, input_config) = if options.len() > 20 {
                        (format!("(list of length {})", options.len()), J::Null)
                    } else {
                        (J::Arr(options.clone()).python_str(), spec.spec.clone())
                    };
                    errors.push(error(
                        "value_not_in_list",
                        "Value not in list",
                        &format!("{name}: '{}' not in {list_info}", value.python_str()),
                        obj! { "input_name" => name, "input_config" => input_config, "received_value" => value },
                    ));
                }
            }
        }
    }
}

/// Cache signatures: a node's class and inputs with links replaced by the upstream signature.
/// Equal signatures mean ComfyUI would reuse the cached output.
pub fn signatures(graph: &Graph) -> HashMap<String, String> {
    fn sig(
        graph: &Graph,
        id: &str,
        memo: &mut HashMap<String, String>,
        visiting: &mut HashSet<String>,
    ) -> String {
        if let Some(s) = memo.get(id) {
            return s.clone();
        }
        let Some(node) = graph.get(id) else {
            return format!("<missing {id}>");
        };
        if !visiting.insert(id.to_string()) {
            return format!("<cycle {id}>");
        }
        let mut inputs: Vec<&(String, J)> = node.inputs.iter().collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = format!("{}(", node.class_type);
        for (name, value) in inputs {
            out.push_str(name);
            out.push('=');
            match as_link(value) {
                Some((from, index)) => {
                    out.push_str(&format!("@[{}]#{index}", sig(graph, from, memo, visiting)));
                }
                None => out.push_str(&value.to_py_string()),
            }
            out.push(';');
        }
        out.push(')');
        visiting.remove(id);
        memo.insert(id.to_string(), out.clone());
        out
    }
    let mut memo = HashMap::new();
    for node in &graph.nodes {
        sig(graph, &node.id, &mut memo, &mut HashSet::new());
    }
    memo
}

/// ComfyUI's `ExecutionList`: which node runs next.
#[derive(Debug, Default)]
pub struct ExecutionList {
    pending: Vec<String>,
    block_count: HashMap<String, usize>,
    blocking: HashMap<String, Vec<String>>,
}

impl ExecutionList {
    /// Stages `id` and, transitively, every uncached node it needs.
    pub fn add_node(&mut self, graph: &Graph, id: &str, is_cached: &dyn Fn(&str) -> bool) {
        let mut stack = vec![id.to_string()];
        let mut links: Vec<(String, String)> = Vec::new();
        while let Some(unique_id) = stack.pop() {
            if self.pending.contains(&unique_id) {
                continue;
            }
            self.pending.push(unique_id.clone());
            self.block_count.insert(unique_id.clone(), 0);
            self.blocking.insert(unique_id.clone(), Vec::new());
            let Some(node) = graph.get(&unique_id) else {
                continue;
            };
            for (_, value) in &node.inputs {
                if let Some((from, _)) = as_link(value) {
                    if graph.get(from).is_none() {
                        continue;
                    }
                    if !is_cached(from) {
                        stack.push(from.to_string());
                    }
                    links.push((from.to_string(), unique_id.clone()));
                }
            }
        }
        for (from, to) in links {
            if !is_cached(&from) {
                self.add_node(graph, &from, is_cached);
                let blocked = self.blocking.entry(from).or_default();
                if !blocked.contains(&to) {
                    blocked.push(to.clone());
                    *self.block_count.entry(to).or_default() += 1;
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next node to run, or `None` when nothing is ready (empty, or a dependency cycle).
    pub fn next(&self, graph: &Graph) -> Option<String> {
        let ready: Vec<&String> = self
            .pending
            .iter()
            .filter(|id| self.block_count.get(*id).copied().unwrap_or(0) == 0)
            .collect();
        let is_output = |id: &str| {
            graph
                .get(id)
                .is_some_and(|n| catalog::is_output(&n.class_type))
        };
        let blocked_by = |id: &str| self.blocking.get(id).cloned().unwrap_or_default();
        if let Some(id) = ready.iter().find(|id| is_output(id)) {
            return Some((*id).clone());
        }
        if let Some(id) = ready
            .iter()
            .find(|id| blocked_by(id).iter().any(|b| is_output(b)))
        {
            return Some((*id).clone());
        }
        if let Some(id) = ready.iter().find(|id| {
            blocked_by(id)
                .iter()
                .any(|b| blocked_by(b).iter().any(|b1| is_output(b1)))
        }) {
            return Some((*id).clone());
        }
        ready.first().map(|id| (*id).clone())
    }

    /// Marks `id` done, unblocking what waited for it.
    pub fn complete(&mut self, id: &str) {
        self.pending.retain(|p| p != id);
        if let Some(blocked) = self.blocking.remove(id) {
            for to in blocked {
                if let Some(count) = self.block_count.get_mut(&to) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        self.block_count.remove(id);
    }

    pub fn pending(&self) -> &[String] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(prompt: &str, outputs: &[&str], cached: &[&str]) -> Vec<String> {
        let graph = Graph::from_prompt(&J::parse(prompt).unwrap());
        let cached: HashSet<String> = cached.iter().map(|s| s.to_string()).collect();
        let is_cached = |id: &str| cached.contains(id);
        let mut list = ExecutionList::default();
        for o in outputs {
            list.add_node(&graph, o, &is_cached);
        }
        let mut seen = Vec::new();
        while let Some(id) = list.next(&graph) {
            list.complete(&id);
            seen.push(id);
        }
        seen
    }

    const SUCCESS: &str = r#"{"1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 12}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "monitor_a"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}"#;

    #[test]
    fn preview_of_the_sampler_runs_before_the_blur_like_the_recorded_server() {
        assert_eq!(order(SUCCESS, &["3", "4"], &[]), ["1", "4", "2", "3"]);
    }

    #[test]
    fn builtin_chain_runs_in_dependency_order() {
        let prompt = r#"{"10": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
            "11": {"class_type": "GetImageSize", "inputs": {"image": ["10", 0]}},
            "12": {"class_type": "ImageScale", "inputs": {"image": ["10", 0], "upscale_method": "nearest-exact", "width": ["11", 0], "height": 32, "crop": "disabled"}},
            "13": {"class_type": "ImageBlur", "inputs": {"image": ["12", 0], "blur_radius": 2, "sigma": 1.5}},
            "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "builtin"}}}"#;
        assert_eq!(order(prompt, &["14"], &[]), ["10", "11", "12", "13", "14"]);
    }

    #[test]
    fn cached_inputs_are_not_staged() {
        assert_eq!(
            order(SUCCESS, &["3", "4"], &["1", "2", "3", "4"]),
            ["3", "4"]
        );
        assert_eq!(order(SUCCESS, &["3", "4"], &["1"]), ["4", "2", "3"]);
    }

    #[test]
    fn missing_required_steps_fails_every_dependent_output() {
        let prompt = J::parse(&SUCCESS.replace("\"steps\": 12", "\"seed\": 1")).unwrap();
        match validate(&prompt, ServerVersion::V0_26, None) {
            Validation::Invalid { error, node_errors } => {
                assert_eq!(
                    error.get("type").unwrap().as_str(),
                    Some("prompt_outputs_failed_validation")
                );
                let node = node_errors.get("1").unwrap();
                assert_eq!(
                    node.get("dependent_outputs").unwrap().to_py_string(),
                    r#"["3", "4"]"#
                );
                assert_eq!(
                    node.get("errors").unwrap().to_py_string(),
                    r#"[{"type": "required_input_missing", "message": "Required input is missing", "details": "steps", "extra_info": {"input_name": "steps"}}]"#
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn link_to_a_missing_node_invalidates_only_that_output() {
        let prompt = J::parse(&SUCCESS.replace(
            "[\"2\", 0], \"filename_prefix\"",
            "[\"99\", 0], \"filename_prefix\"",
        ))
        .unwrap();
        match validate(&prompt, ServerVersion::V0_26, None) {
            Validation::Valid {
                outputs,
                node_errors,
            } => {
                assert_eq!(outputs, ["4"]);
                let err = &node_errors
                    .get("3")
                    .unwrap()
                    .get("errors")
                    .unwrap()
                    .as_array()
                    .unwrap()[0];
                assert_eq!(
                    err.get("type").unwrap().as_str(),
                    Some("exception_during_validation")
                );
                assert_eq!(err.get("details").unwrap().as_str(), Some("'99'"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_class_has_the_generation_specific_error() {
        let prompt = J::parse(&SUCCESS.replace("ImageBlur", "NoSuchNodeType")).unwrap();
        let Validation::Invalid { error, .. } = validate(&prompt, ServerVersion::V0_26, None)
        else {
            panic!("accepted");
        };
        assert_eq!(
            error.to_py_string(),
            r#"{"type": "missing_node_type", "message": "Node 'NoSuchNodeType' not found. The custom node may not be installed.", "details": "Node ID '#2'", "extra_info": {"node_id": "2", "class_type": "NoSuchNodeType", "node_title": "NoSuchNodeType"}}"#
        );
        let Validation::Invalid { error, .. } = validate(&prompt, ServerVersion::V0_3_64, None)
        else {
            panic!("accepted");
        };
        assert_eq!(error.get("type").unwrap().as_str(), Some("invalid_prompt"));
    }

    #[test]
    fn value_below_min_reports_the_input_config() {
        let prompt = J::parse(&SUCCESS.replace("\"steps\": 12", "\"steps\": -4")).unwrap();
        let Validation::Invalid { node_errors, .. } = validate(&prompt, ServerVersion::V0_26, None)
        else {
            panic!("accepted");
        };
        let err = &node_errors
            .get("1")
            .unwrap()
            .get("errors")
            .unwrap()
            .as_array()
            .unwrap()[0];
        assert_eq!(
            err.get("message").unwrap().as_str(),
            Some("Value -4 smaller than min of 1")
        );
        assert_eq!(
            err.get("extra_info")
                .unwrap()
                .get("input_config")
                .unwrap()
                .to_py_string(),
            r#"["INT", {"default": 12, "min": 1, "max": 10000}]"#
        );
    }

    #[test]
    fn graph_without_outputs_is_rejected() {
        let prompt =
            J::parse(r#"{"1": {"class_type": "MonitorTestSampler", "inputs": {"steps": 5}}}"#)
                .unwrap();
        let Validation::Invalid { error, .. } = validate(&prompt, ServerVersion::V0_26, None)
        else {
            panic!("accepted");
        };
        assert_eq!(
            error.get("type").unwrap().as_str(),
            Some("prompt_no_outputs")
        );
    }

    #[test]
    fn equal_upstream_gives_equal_signatures() {
        let a = Graph::from_prompt(&J::parse(SUCCESS).unwrap());
        let b = Graph::from_prompt(
            &J::parse(&SUCCESS.replace("\"sigma\": 1.0", "\"sigma\": 2.0")).unwrap(),
        );
        let (sa, sb) = (signatures(&a), signatures(&b));
        assert_eq!(sa["1"], sb["1"]);
        assert_eq!(sa["4"], sb["4"]);
        assert_ne!(sa["2"], sb["2"]);
        assert_ne!(sa["3"], sb["3"]);
    }
}

//! The node classes the fake server knows, described once as `/object_info` entries.
//!
//! The same definitions answer `GET /object_info`, decide which nodes are outputs and drive input
//! validation, so the three can never disagree. The definitions of the core and test nodes were
//! taken from a recorded 0.26.0 server; `FakeBlocked`, `FakeCustomEvent` and `FakeLoadSampler`
//! exist only here. This module knows nothing about execution.

use std::sync::OnceLock;

use crate::json::J;
use crate::ServerVersion;

const OBJECT_INFO: &str = include_str!("object_info.json");

/// Keys that appeared in `/object_info` entries after 0.3.64.
const NEWER_KEYS: &[&str] = &[
    "is_input_list",
    "has_intermediate_output",
    "search_aliases",
    "essentials_category",
    "output_matchtypes",
    "price_badge",
    "dev_only",
    "deprecated",
    "experimental",
    "api_node",
];

/// Inputs the real node requires but the fake fills from its default when absent, so a workflow
/// can leave timing to `FakeConfig::step_delay`. `steps` stays required everywhere.
fn lenient(class_type: &str, input: &str) -> bool {
    let sampler = matches!(
        class_type,
        "MonitorTestSampler" | "MonitorTestPreviewMethodSampler" | "MonitorTestFail"
    );
    !(sampler && input == "steps")
}

fn catalog() -> &'static J {
    static CATALOG: OnceLock<J> = OnceLock::new();
    CATALOG.get_or_init(|| J::parse(OBJECT_INFO).unwrap_or_else(|_| J::obj()))
}

pub fn is_known(class_type: &str) -> bool {
    catalog().get(class_type).is_some()
}

pub fn is_output(class_type: &str) -> bool {
    catalog()
        .get(class_type)
        .and_then(|d| d.get("output_node"))
        .and_then(J::as_bool)
        .unwrap_or(false)
}

/// One declared input of a class.
pub struct InputSpec<'a> {
    pub name: &'a str,
    pub required: bool,
    /// `["INT", {...}]` or `[["A", "B"], {...}]` as declared.
    pub spec: &'a J,
}

impl InputSpec<'_> {
    /// The declared type name (`"INT"`, `"IMAGE"`, ...), or `None` for an option list.
    pub fn type_name(&self) -> Option<&str> {
        self.spec.as_array()?.first()?.as_str()
    }

    pub fn options(&self) -> Option<&Vec<J>> {
        self.spec.as_array()?.first()?.as_array()
    }

    pub fn config(&self) -> Option<&J> {
        self.spec.as_array()?.get(1)
    }

    pub fn default_value(&self) -> Option<&J> {
        self.config()?.get("default")
    }

    /// A widget value (number, string, option) rather than a socket fed by a link.
    pub fn is_widget(&self) -> bool {
        self.options().is_some()
            || matches!(
                self.type_name(),
                Some("INT" | "FLOAT" | "STRING" | "BOOLEAN")
            )
    }

    /// Whether a missing value is an error (`required_input_missing`) in the fake.
    pub fn must_be_given(&self, class_type: &str) -> bool {
        if !self.required {
            return false;
        }
        if self.is_widget() && self.default_value().is_some() {
            return !lenient(class_type, self.name);
        }
        true
    }
}

/// The declared inputs of a class (required first, then optional), in declaration order.
pub fn inputs(class_type: &str) -> Vec<InputSpec<'static>> {
    let mut out = Vec::new();
    let Some(input) = catalog().get(class_type).and_then(|d| d.get("input")) else {
        return out;
    };
    for (group, required) in [("required", true), ("optional", false)] {
        if let Some(entries) = input.get(group).and_then(J::as_object) {
            for (name, spec) in entries {
                out.push(InputSpec {
                    name,
                    required,
                    spec,
                });
            }
        }
    }
    out
}

#[cfg(test)]
pub fn input(class_type: &str, name: &str) -> Option<InputSpec<'static>> {
    inputs(class_type).into_iter().find(|i| i.name == name)
}

/// The `/object_info` answer for this server generation.
pub fn object_info(version: ServerVersion) -> J {
    let mut all = catalog().clone();
    if version != ServerVersion::V0_26 {
        if let J::Obj(entries) = &mut all {
            for (_, def) in entries.iter_mut() {
                for key in NEWER_KEYS {
                    def.remove(key);
                }
            }
        }
    }
    all
}

/// `/object_info/{class}`: `{class: def}` or `{}`.
pub fn object_info_one(version: ServerVersion, class_type: &str) -> J {
    match object_info(version).get(class_type) {
        Some(def) => J::Obj(vec![(class_type.to_string(), def.clone())]),
        None => J::obj(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_definitions_parse_and_flag_outputs() {
        assert!(is_known("MonitorTestSampler"));
        assert!(is_output("SaveImage"));
        assert!(is_output("MonitorTestMessages"));
        assert!(!is_output("ImageBlur"));
        assert!(!is_known("NoSuchNodeType"));
    }

    #[test]
    fn sampler_steps_are_required_but_timing_is_not() {
        let steps = input("MonitorTestSampler", "steps").unwrap();
        assert!(steps.must_be_given("MonitorTestSampler"));
        let delay = input("MonitorTestSampler", "step_delay_ms").unwrap();
        assert!(!delay.must_be_given("MonitorTestSampler"));
        let images = input("SaveImage", "images").unwrap();
        assert!(images.must_be_given("SaveImage"));
    }

    #[test]
    fn older_generations_lack_the_newer_object_info_keys() {
        let old = object_info(ServerVersion::V0_3_64);
        assert!(old
            .get("SaveImage")
            .unwrap()
            .get("search_aliases")
            .is_none());
        let new = object_info(ServerVersion::V0_26);
        assert!(new
            .get("SaveImage")
            .unwrap()
            .get("search_aliases")
            .is_some());
    }
}

//! Instances to provision at start from `COMFY_MONITOR_INSTANCES` (`name=url,name=url`), which
//! end-to-end tests and `scripts/run-app --fake` use to point the app at fake servers. Listed
//! instances that are not saved yet are saved (the store itself seeds "Local" on first run);
//! saved ones are left as the user configured them.

/// Extra instances, as `name=url` pairs separated by commas.
pub const INSTANCES_VAR: &str = "COMFY_MONITOR_INSTANCES";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEntry {
    pub name: String,
    pub url: String,
}

/// The instances listed in `extra` (the variable's value, if set), in order. Malformed pairs are
/// logged and skipped; a repeated name keeps its first URL.
pub fn instances(extra: Option<&str>) -> Vec<InstanceEntry> {
    let mut entries: Vec<InstanceEntry> = Vec::new();
    for pair in extra.unwrap_or_default().split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, url)) = pair.split_once('=') else {
            tracing::warn!(pair, "{INSTANCES_VAR}: expected name=url");
            continue;
        };
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() || url.is_empty() {
            tracing::warn!(pair, "{INSTANCES_VAR}: expected name=url");
            continue;
        }
        if entries.iter().any(|e| e.name.eq_ignore_ascii_case(name)) {
            tracing::warn!(name, "{INSTANCES_VAR}: listed twice; the first is used");
            continue;
        }
        entries.push(InstanceEntry {
            name: name.to_owned(),
            url: url.to_owned(),
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[InstanceEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn nothing_listed_means_nothing_to_provision() {
        assert!(instances(None).is_empty());
        assert!(instances(Some(" , ")).is_empty());
    }

    #[test]
    fn listed_instances_follow_in_order() {
        let entries = instances(Some("a=http://127.0.0.1:1, b = 127.0.0.1:2 ,"));
        assert_eq!(names(&entries), ["a", "b"]);
        assert_eq!(entries[1].url, "127.0.0.1:2");
    }

    #[test]
    fn malformed_pairs_are_skipped() {
        let entries = instances(Some("nourl,=http://x,y=,ok=http://h"));
        assert_eq!(names(&entries), ["ok"]);
    }

    #[test]
    fn a_repeated_name_keeps_its_first_url() {
        let entries = instances(Some("gpu=http://h:2,GPU=http://h:3"));
        assert_eq!(
            entries,
            [InstanceEntry {
                name: "gpu".into(),
                url: "http://h:2".into()
            }]
        );
    }
}

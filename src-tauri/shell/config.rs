//! Which instances the app monitors at start.
//!
//! For now: a local server, plus any listed in `COMFY_MONITOR_INSTANCES` (`name=url,name=url`),
//! which end-to-end tests use to point the app at fake servers. Saved settings come later.

/// Extra instances, as `name=url` pairs separated by commas.
pub const INSTANCES_VAR: &str = "COMFY_MONITOR_INSTANCES";

pub const LOCAL_NAME: &str = "Local";
pub const LOCAL_URL: &str = "http://127.0.0.1:8188";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEntry {
    pub name: String,
    pub url: String,
}

/// The local instance followed by those in `extra` (the variable's value, if set). Malformed
/// pairs are logged and skipped; a repeated name gets a numeric suffix, since events name
/// instances by name.
pub fn instances(extra: Option<&str>) -> Vec<InstanceEntry> {
    let mut entries = vec![InstanceEntry {
        name: LOCAL_NAME.to_owned(),
        url: LOCAL_URL.to_owned(),
    }];
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
        let name = unique_name(&entries, name);
        entries.push(InstanceEntry {
            name,
            url: url.to_owned(),
        });
    }
    entries
}

fn unique_name(entries: &[InstanceEntry], wanted: &str) -> String {
    let taken = |n: &str| entries.iter().any(|e| e.name == n);
    if !taken(wanted) {
        return wanted.to_owned();
    }
    (2..)
        .map(|i| format!("{wanted} ({i})"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| wanted.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[InstanceEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn local_instance_is_always_first() {
        let entries = instances(None);
        assert_eq!(
            entries,
            vec![InstanceEntry {
                name: "Local".into(),
                url: "http://127.0.0.1:8188".into()
            }]
        );
    }

    #[test]
    fn listed_instances_follow_in_order() {
        let entries = instances(Some("a=http://127.0.0.1:1, b = 127.0.0.1:2 ,"));
        assert_eq!(names(&entries), ["Local", "a", "b"]);
        assert_eq!(entries[2].url, "127.0.0.1:2");
    }

    #[test]
    fn malformed_pairs_are_skipped() {
        let entries = instances(Some("nourl,=http://x,y=,ok=http://h"));
        assert_eq!(names(&entries), ["Local", "ok"]);
    }

    #[test]
    fn repeated_names_get_a_suffix() {
        let entries = instances(Some("Local=http://h:1,gpu=http://h:2,gpu=http://h:3"));
        assert_eq!(names(&entries), ["Local", "Local (2)", "gpu", "gpu (2)"]);
    }
}

//! `-f/--filter` of the task lists (`service ps`, `node ps`, `stack ps`), checked and
//! applied as docker does: the CLI's flag parser (docker/cli opts.FilterOpt), the
//! daemon's checks (moby daemon/cluster/filters.go newListTasksFilters) and swarmkit's
//! matching (manager/controlapi/task.go ListTasks): values of one key are alternatives,
//! different keys must all match. The other lists' filters (`node ls`, `service ls`,
//! `network ls`...) are parsed here too and match with the same helpers
//! (swarmkit controlapi/common.go), each list with its own keys.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::api::ApiError;

/// The keys docker's daemon accepts for a task list (`_up-to-date` is its own, for
/// progress; `label` matches the labels of the task's service).
const ACCEPTED: &[&str] = &[
    "name",
    "id",
    "label",
    "service",
    "node",
    "desired-state",
    "_up-to-date",
    "runtime",
];

/// swarmkit's task states by their names (api/types.proto), which `desired-state`
/// takes in any case. `allocated` is not one of them.
const TASK_STATES: &[&str] = &[
    "new",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
];

/// The filters given with `-f`, by key, as docker's CLI collects them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TaskFilter {
    fields: BTreeMap<String, BTreeSet<String>>,
}

impl TaskFilter {
    /// Parse the `-f` values as docker's flag parser does: `key=value`, the key trimmed
    /// and lowercased, the value trimmed, an empty argument ignored
    /// (docker/cli opts.FilterOpt.Set).
    pub fn parse(args: &[String]) -> Result<TaskFilter, ApiError> {
        let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in args {
            if a.is_empty() {
                continue;
            }
            let Some((k, v)) = a.split_once('=') else {
                return Err(ApiError::plain(format!(
                    "invalid argument \"{a}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
                )));
            };
            fields
                .entry(k.trim().to_lowercase())
                .or_default()
                .insert(v.trim().to_string());
        }
        Ok(TaskFilter { fields })
    }

    /// Adds a value to a key, as docker's CLI adds the positional arguments of
    /// `node ps` and `service ps` (resolved to IDs) to the `node` and `service`
    /// keys: the tasks of either the arguments or the `-f` values.
    pub fn add(&mut self, key: &str, value: &str) {
        self.fields
            .entry(key.to_string())
            .or_default()
            .insert(value.to_string());
    }

    /// The daemon's first check: every key is one it knows.
    pub fn check_keys(&self) -> Result<(), ApiError> {
        self.check_accepted(ACCEPTED)
    }

    /// The daemon's first check of any list's filter (moby filters.Args.Validate): every
    /// key is one of `accepted`.
    pub fn check_accepted(&self, accepted: &[&str]) -> Result<(), ApiError> {
        match self.fields.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(ApiError::daemon(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// The number of values given for `key`.
    pub fn count(&self, key: &str) -> usize {
        self.fields.get(key).map_or(0, BTreeSet::len)
    }

    /// The values given for `key`.
    pub fn values(&self, key: &str) -> impl Iterator<Item = &str> {
        self.fields
            .get(key)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Every key with its values, for a list the daemon filters itself.
    pub fn to_map(&self) -> BTreeMap<String, Vec<String>> {
        self.fields
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    }

    pub fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// swarmkit's filterContainsPrefix: `value` starts with one of `key`'s values, or
    /// `key` is not given.
    pub fn any_prefix(&self, key: &str, value: &str) -> bool {
        !self.has(key) || self.values(key).any(|p| value.starts_with(p))
    }

    /// moby's filters.Args.ExactMatch (and swarmkit's filterContains): `value` is one of
    /// `key`'s values, or `key` is not given.
    pub fn exact(&self, key: &str, value: &str) -> bool {
        !self.has(key) || self.values(key).any(|v| v == value)
    }

    /// swarmkit's filterMatchLabels of `key`'s values (`name` or `name=value`, made a
    /// map as moby's convertKVStringsToMap does: a name given twice keeps one value):
    /// every name is a label the object has (`label` looks one up), with the value
    /// given, if one is.
    pub fn labels_match<'a>(&self, key: &str, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        let wanted: BTreeMap<&str, &str> = self
            .values(key)
            .map(|l| l.split_once('=').unwrap_or((l, "")))
            .collect();
        wanted
            .iter()
            .all(|(k, v)| label(k).is_some_and(|have| v.is_empty() || have == *v))
    }

    /// The daemon's check of `desired-state` (after it resolved nodes and services):
    /// a task state's name in any case; an empty value is ignored.
    pub fn check_desired_states(&self) -> Result<(), ApiError> {
        for v in self.values("desired-state") {
            if !v.is_empty() && !TASK_STATES.contains(&v.to_lowercase().as_str()) {
                return Err(ApiError::daemon(format!(
                    "Invalid desired-state filter: '{v}'"
                )));
            }
        }
        Ok(())
    }

    /// Whether task `t` (docker's JSON, with `ServiceName`) passes. `nodes` and
    /// `services` are the IDs the `node` and `service` values name; `labels` the labels
    /// of each service by ID (needed only with `label`).
    pub fn matches(
        &self,
        t: &Value,
        nodes: &BTreeSet<String>,
        services: &BTreeSet<String>,
        labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let field = |k: &str| t[k].as_str().unwrap_or("");
        // swarmkit's naming.Task: `<service>.<slot or node id>.<task id>`.
        let name = format!("{}.{}", super::tasks::task_name(t), field("ID"));
        let states: Vec<String> = self
            .values("desired-state")
            .filter(|v| !v.is_empty())
            .map(str::to_lowercase)
            .collect();
        self.any_prefix("name", &name)
            && self.any_prefix("id", field("ID"))
            && (!self.has("node") || nodes.contains(field("NodeID")))
            && (!self.has("service") || services.contains(field("ServiceID")))
            && (states.is_empty() || states.iter().any(|s| s == field("DesiredState")))
            // Every task here runs a container.
            && self.exact("runtime", "container")
            && self.labels_match("label", |k| {
                labels.get(field("ServiceID")).and_then(|m| m.get(k)).map(String::as_str)
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(args: &[&str]) -> Result<TaskFilter, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        TaskFilter::parse(&args).map_err(|e| e.to_string())
    }

    fn checked(args: &[&str]) -> Result<TaskFilter, String> {
        let f = parse(args)?;
        f.check_keys().map_err(|e| e.to_string())?;
        f.check_desired_states().map_err(|e| e.to_string())?;
        Ok(f)
    }

    /// docker's words for a bad flag value, an unknown key and an unknown desired
    /// state (the last two from the daemon); every task state swarmkit names is a
    /// desired state, in any case, and an empty one is no filter.
    #[test]
    fn bad_filters_are_refused_with_dockers_words() {
        assert_eq!(
            parse(&["desired-state"]).unwrap_err(),
            "invalid argument \"desired-state\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
        );
        assert_eq!(
            checked(&["x=1"]).unwrap_err(),
            "Error response from daemon: invalid filter 'x'"
        );
        assert_eq!(
            checked(&["desired-state=running", "Foo=1"]).unwrap_err(),
            "Error response from daemon: invalid filter 'foo'"
        );
        assert_eq!(
            checked(&["desired-state=x"]).unwrap_err(),
            "Error response from daemon: Invalid desired-state filter: 'x'"
        );
        // Not a swarmkit task state, although Shoal's tasks pass through it.
        assert_eq!(
            checked(&["desired-state=allocated"]).unwrap_err(),
            "Error response from daemon: Invalid desired-state filter: 'allocated'"
        );
        for s in TASK_STATES {
            assert!(checked(&[&format!("desired-state={s}")]).is_ok(), "{s}");
        }
        for ok in [
            "desired-state=RUNNING",
            " Desired-State = shutdown ",
            "desired-state=",
            "",
            "label=a",
            "service=web",
            "runtime=container",
            "_up-to-date=true",
            "node=vm1",
            "name=web",
            "id=abc",
        ] {
            assert!(checked(&[ok]).is_ok(), "{ok}");
        }
    }

    /// Values of one key are alternatives, keys must all match; `name` is a prefix of
    /// `<service>.<slot>.<task id>`, `id` of the ID.
    #[test]
    fn filters_match_as_swarmkit_lists_tasks() {
        let task = |id: &str, slot: u64, node: &str, desired: &str| {
            json!({"ID": id, "ServiceID": "s1", "ServiceName": "web", "Slot": slot,
                   "NodeID": node, "DesiredState": desired})
        };
        let tasks = [
            task("aaa1", 1, "n1", "running"),
            task("aaa2", 1, "n1", "shutdown"),
            task("bbb3", 2, "n2", "running"),
            task("ccc4", 3, "n2", "remove"),
        ];
        let no = BTreeSet::new();
        let labels = BTreeMap::from([(
            "s1".to_string(),
            BTreeMap::from([("tier".to_string(), "front".to_string())]),
        )]);
        let ids = |args: &[&str], nodes: &BTreeSet<String>| -> Vec<&str> {
            let f = checked(args).unwrap();
            tasks
                .iter()
                .filter(|t| f.matches(t, nodes, &no, &labels))
                .map(|t| t["ID"].as_str().unwrap())
                .collect()
        };
        assert_eq!(ids(&[], &no), ["aaa1", "aaa2", "bbb3", "ccc4"]);
        assert_eq!(ids(&["desired-state=Running"], &no), ["aaa1", "bbb3"]);
        assert_eq!(
            ids(&["desired-state=running", "desired-state=remove"], &no),
            ["aaa1", "bbb3", "ccc4"]
        );
        assert_eq!(
            ids(&["desired-state="], &no),
            ["aaa1", "aaa2", "bbb3", "ccc4"]
        );
        assert_eq!(ids(&["id=aaa"], &no), ["aaa1", "aaa2"]);
        assert_eq!(ids(&["id=aaa", "id=ccc"], &no), ["aaa1", "aaa2", "ccc4"]);
        assert_eq!(ids(&["name=web.1"], &no), ["aaa1", "aaa2"]);
        assert_eq!(ids(&["name=web.1.aaa2"], &no), ["aaa2"]);
        assert_eq!(ids(&["name=web.1", "desired-state=running"], &no), ["aaa1"]);
        let n2 = BTreeSet::from(["n2".to_string()]);
        assert_eq!(ids(&["node=vm2"], &n2), ["bbb3", "ccc4"]);
        assert_eq!(ids(&["node=vm2", "id=ccc"], &n2), ["ccc4"]);
        assert_eq!(ids(&["label=tier"], &no), ["aaa1", "aaa2", "bbb3", "ccc4"]);
        assert_eq!(
            ids(&["label=tier=front"], &no),
            ["aaa1", "aaa2", "bbb3", "ccc4"]
        );
        assert!(ids(&["label=tier=back"], &no).is_empty());
        assert!(ids(&["label=tier", "label=os"], &no).is_empty());
        assert!(ids(&["runtime=plugin"], &no).is_empty());
    }

    /// `service ps X -f service=Y` lists the tasks of X or Y: docker's CLI adds
    /// the services named to the filter's `service` values; without `-f
    /// service`, the named service alone.
    #[test]
    fn added_values_are_alternatives_to_the_given_ones() {
        let task = |id: &str, service: &str, desired: &str| {
            json!({"ID": id, "ServiceID": service, "ServiceName": service, "Slot": 1,
                   "NodeID": "n1", "DesiredState": desired})
        };
        let tasks = [
            task("a", "sx", "running"),
            task("b", "sy", "running"),
            task("c", "sz", "running"),
            task("d", "sy", "shutdown"),
        ];
        let no = BTreeSet::new();
        let ids = |args: &[&str], given: &[&str], named: &str| -> Vec<&str> {
            let mut f = checked(args).unwrap();
            f.add("service", named);
            let services: BTreeSet<String> = given
                .iter()
                .map(|s| s.to_string())
                .chain([named.to_string()])
                .collect();
            tasks
                .iter()
                .filter(|t| f.matches(t, &no, &services, &BTreeMap::new()))
                .map(|t| t["ID"].as_str().unwrap())
                .collect()
        };
        assert_eq!(ids(&[], &[], "sx"), ["a"]);
        assert_eq!(ids(&["service=y"], &["sy"], "sx"), ["a", "b", "d"]);
        assert_eq!(
            ids(&["service=y", "desired-state=running"], &["sy"], "sx"),
            ["a", "b"]
        );
        assert_eq!(ids(&["service=y"], &["sy"], "sy"), ["b", "d"]);
    }
}

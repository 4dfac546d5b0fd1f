//! Swarm secrets and configs: blobs stored in Raft, named uniquely, immutable but for their
//! labels, given to the tasks of the services that reference them. A secret's data never
//! leaves the managers but toward a node running a task that needs it: no API reply, no
//! log line and no `Debug` output carries it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::services::ServiceRecord;
use crate::state::ClusterState;
use crate::types::go_time;

/// Which of the two kinds of object: they differ only in their limits, their words, and
/// whether their data may be shown.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Config,
}

/// swarmkit's `validation.MaxSecretSize`: a secret is less than 500 KiB.
pub const MAX_SECRET_SIZE: usize = 500 * 1024;
/// swarmkit's `controlapi.MaxConfigSize`: a config is less than 1000 KiB.
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

impl Kind {
    /// `secret` or `config`, as docker's messages name them.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }
    pub fn max_size(self) -> usize {
        match self {
            Kind::Secret => MAX_SECRET_SIZE,
            Kind::Config => MAX_CONFIG_SIZE,
        }
    }
}

/// The payload of a secret or config. Its `Debug` shows only its length, so a command,
/// request or reply that carries it can be logged; on the wire it is base64.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Default)]
pub struct Data(#[serde(with = "crate::wire::base64_bytes")] pub Vec<u8>);

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// One secret or config as the cluster stores it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRecord {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub data: Data,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The log index of its last change (docker's Version.Index).
    #[serde(default)]
    pub version: u64,
}

impl SecretRecord {
    /// docker's JSON (moby api/types/swarm Secret and Config): a secret's data is never
    /// in it; a config's is, base64 as Go encodes a `[]byte`.
    pub fn docker_json(&self, kind: Kind) -> Value {
        let mut spec = json!({"Name": self.name, "Labels": self.labels});
        if kind == Kind::Config {
            use base64::Engine;
            spec["Data"] = json!(base64::engine::general_purpose::STANDARD.encode(&self.data.0));
        }
        json!({
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": go_time(&self.created_at),
            "UpdatedAt": go_time(&self.updated_at),
            "Spec": spec,
        })
    }
}

fn invalid(msg: impl std::fmt::Display) -> String {
    format!("rpc error: code = InvalidArgument desc = {msg}")
}

/// swarmkit's validateConfigOrSecretAnnotations: at most 64 of `[a-zA-Z0-9-_.]`,
/// starting and ending with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(invalid("name must be provided"));
    }
    let b = name.as_bytes();
    let ok = b.len() <= 64
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric);
    if !ok {
        return Err(invalid("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"));
    }
    Ok(())
}

/// swarmkit's payload check: more than 0 and less than the kind's limit.
pub fn check_data(kind: Kind, data: &[u8]) -> Result<(), String> {
    if data.is_empty() || data.len() >= kind.max_size() {
        return Err(invalid(format!(
            "{} data must be larger than 0 and less than {} bytes",
            kind.word(),
            kind.max_size()
        )));
    }
    Ok(())
}

/// The services that reference the object `id` of `kind`, by name.
pub fn users(state: &ClusterState, kind: Kind, id: &str) -> Vec<String> {
    let mut names: Vec<String> = state
        .services
        .values()
        .filter(|s| references(s, kind).any(|(rid, _)| rid == id))
        .map(|s| s.spec.name.clone())
        .collect();
    names.sort();
    names
}

/// (ID, name) of each secret or config a service references.
pub fn references(s: &ServiceRecord, kind: Kind) -> Box<dyn Iterator<Item = (&str, &str)> + '_> {
    let cs = &s.spec.task_template.container_spec;
    match kind {
        Kind::Secret => Box::new(
            cs.secrets
                .iter()
                .map(|r| (r.secret_id.as_str(), r.secret_name.as_str())),
        ),
        Kind::Config => Box::new(
            cs.configs
                .iter()
                .map(|r| (r.config_id.as_str(), r.config_name.as_str())),
        ),
    }
}

/// swarmkit's RemoveSecret/RemoveConfig refusal of an object services use.
pub fn in_use_error(kind: Kind, name: &str, users: &[String]) -> String {
    let noun = if users.len() == 1 {
        "service"
    } else {
        "services"
    };
    invalid(format!(
        "{} '{name}' is in use by the following {noun}: {}",
        kind.word(),
        users.join(", ")
    ))
}

/// The refusal of a change to anything but the labels (swarmkit's UpdateSecret).
pub const ONLY_LABELS: &str =
    "rpc error: code = InvalidArgument desc = only updates to Labels are allowed";

/// Resolve a reference as moby's getSecret/getConfig do: full ID, then name, then
/// unique ID prefix.
pub fn resolve<'a>(
    state: &'a ClusterState,
    kind: Kind,
    reference: &str,
) -> Result<&'a SecretRecord, String> {
    let word = kind.word();
    let objects = state.objects(kind);
    if reference.is_empty() {
        return Err(format!("{word} {reference} not found"));
    }
    if let Some(o) = objects.get(reference) {
        return Ok(o);
    }
    if let Some(o) = objects.values().find(|o| o.name == reference) {
        return Ok(o);
    }
    let by_prefix: Vec<&SecretRecord> = objects
        .values()
        .filter(|o| o.id.starts_with(reference))
        .collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0]),
        0 => Err(format!("{word} {reference} not found")),
        n => Err(format!(
            "{word} {reference} is ambiguous ({n} matches found)"
        )),
    }
}

/// Fill in the IDs of a spec's secret and config references from their names, as
/// docker-cli's ParseSecrets/ParseConfigs do (a reference that has an ID keeps it if
/// the object still exists), and refuse two references to one target. Errors are
/// docker-cli's (`secret not found: x`), printed without the daemon's prefix.
pub fn resolve_references(
    state: &ClusterState,
    spec: &mut shoal_spec::ServiceSpec,
) -> Result<(), String> {
    let cs = &mut spec.task_template.container_spec;
    let mut targets = std::collections::BTreeSet::new();
    for r in &mut cs.secrets {
        let target = r.file.as_ref().map(|f| f.name.clone()).unwrap_or_default();
        if !targets.insert(target) {
            return Err(format!(
                "duplicate secret target for {} not allowed",
                r.secret_name
            ));
        }
        r.secret_id = lookup(state, Kind::Secret, &r.secret_id, &r.secret_name)?;
    }
    targets.clear();
    for r in &mut cs.configs {
        let target = r.file.as_ref().map(|f| f.name.clone()).unwrap_or_default();
        if !targets.insert(target) {
            return Err(format!(
                "duplicate config target for {} not allowed",
                r.config_name
            ));
        }
        r.config_id = lookup(state, Kind::Config, &r.config_id, &r.config_name)?;
    }
    Ok(())
}

fn lookup(state: &ClusterState, kind: Kind, id: &str, name: &str) -> Result<String, String> {
    let objects = state.objects(kind);
    if !id.is_empty() && objects.contains_key(id) {
        return Ok(id.to_string());
    }
    objects
        .values()
        .find(|o| o.name == name)
        .map(|o| o.id.clone())
        .ok_or_else(|| format!("{} not found: {name}", kind.word()))
}

/// Every reference of the spec names an object the state has (the state machine's check,
/// so a reference cannot outlive a removal racing with it).
pub fn missing_reference(state: &ClusterState, spec: &shoal_spec::ServiceSpec) -> Option<String> {
    let cs = &spec.task_template.container_spec;
    let secret = cs
        .secrets
        .iter()
        .find(|r| !state.secrets.contains_key(&r.secret_id))
        .map(|r| format!("secret not found: {}", r.secret_name));
    secret.or_else(|| {
        cs.configs
            .iter()
            .find(|r| !state.configs.contains_key(&r.config_id))
            .map(|r| format!("config not found: {}", r.config_name))
    })
}

/// `secret ls -f` / `config ls -f` as swarmkit matches: the `names` (exact), `name` and
/// `id` (prefixes) values are alternatives; every `label` (`k` or `k=v`) must match.
pub fn matches(o: &SecretRecord, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let get = |k: &str| filters.get(k).map(Vec::as_slice).unwrap_or_default();
    let (names, prefixes, ids) = (get("names"), get("name"), get("id"));
    let any = names.is_empty() && prefixes.is_empty() && ids.is_empty()
        || names.contains(&o.name)
        || prefixes.iter().any(|p| o.name.starts_with(p.as_str()))
        || ids.iter().any(|p| o.id.starts_with(p.as_str()));
    any && get("label").iter().all(|l| {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        o.labels
            .get(k)
            .is_some_and(|have| v.is_empty() || have == v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str, labels: &[(&str, &str)]) -> SecretRecord {
        SecretRecord {
            id: id.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            data: Data(b"s3cr3t".to_vec()),
            created_at: DateTime::from_timestamp(1_800_000_000, 5_000).unwrap(),
            updated_at: DateTime::from_timestamp(1_800_000_000, 5_000).unwrap(),
            version: 11,
        }
    }

    /// A secret's JSON has no data; a config's has it in base64, as docker's.
    #[test]
    fn docker_json_hides_only_a_secret_s_data() {
        let r = record("abc", "db_pass", &[("env", "dev")]);
        let secret = r.docker_json(Kind::Secret);
        assert_eq!(
            secret,
            json!({"ID": "abc", "Version": {"Index": 11},
                   "CreatedAt": "2027-01-15T08:00:00.000005Z", "UpdatedAt": "2027-01-15T08:00:00.000005Z",
                   "Spec": {"Name": "db_pass", "Labels": {"env": "dev"}}})
        );
        assert!(!secret.to_string().contains("czNjcjN0"));
        assert_eq!(r.docker_json(Kind::Config)["Spec"]["Data"], "czNjcjN0");
        assert_eq!(format!("{:?}", r.data), "<6 bytes>");
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn names_and_sizes_as_swarmkit_checks_them() {
        assert!(check_name("db_pass.v1-2").is_ok());
        for bad in ["", "-a", "a-", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_name("a/b").unwrap_err(),
            "rpc error: code = InvalidArgument desc = invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"
        );
        assert!(check_data(Kind::Secret, &vec![0; MAX_SECRET_SIZE - 1]).is_ok());
        assert_eq!(
            check_data(Kind::Secret, &vec![0; MAX_SECRET_SIZE]).unwrap_err(),
            "rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes"
        );
        assert!(check_data(Kind::Config, &vec![0; MAX_SECRET_SIZE]).is_ok());
        assert!(check_data(Kind::Config, b"").is_err());
    }

    /// In the state machine: names are unique, only labels change, an object in use
    /// stays, and a service cannot name an object that is gone.
    #[test]
    fn state_machine_keeps_objects_immutable_and_in_use_ones() {
        use crate::state::Command;
        let mut st = ClusterState::default();
        let put = |st: &mut ClusterState, r: &SecretRecord, i: u64| {
            st.apply(
                &Command::PutSecret {
                    kind: Kind::Secret,
                    record: r.clone(),
                },
                i,
            )
            .error
        };
        let a = record("a1", "db", &[]);
        assert_eq!(put(&mut st, &a, 3), None);
        assert_eq!(st.secrets["a1"].version, 3);
        assert_eq!(
            put(&mut st, &record("b1", "db", &[]), 4).unwrap(),
            "rpc error: code = AlreadyExists desc = secret db already exists"
        );
        let mut relabelled = record("a1", "db", &[("k", "v")]);
        assert_eq!(put(&mut st, &relabelled, 5), None);
        relabelled.data = Data(b"other".to_vec());
        assert_eq!(put(&mut st, &relabelled, 6).unwrap(), ONLY_LABELS);
        assert_eq!(st.secrets["a1"].data, Data(b"s3cr3t".to_vec()));

        let mut spec = shoal_spec::ServiceSpec {
            name: "web".into(),
            ..Default::default()
        };
        spec.task_template.container_spec.secrets = vec![shoal_spec::SecretReference {
            file: Some(shoal_spec::FileTarget::new("db")),
            secret_id: String::new(),
            secret_name: "db".into(),
        }];
        let mut missing = spec.clone();
        missing.task_template.container_spec.secrets[0].secret_name = "nope".into();
        assert_eq!(
            resolve_references(&st, &mut missing).unwrap_err(),
            "secret not found: nope"
        );
        resolve_references(&st, &mut spec).unwrap();
        assert_eq!(spec.task_template.container_spec.secrets[0].secret_id, "a1");
        let svc = ServiceRecord::new("s1".into(), spec);
        let r = st.apply(
            &Command::PutService {
                service: Box::new(svc),
                expected_version: None,
            },
            7,
        );
        assert_eq!(r.error, None);
        let rm = Command::RemoveSecret {
            kind: Kind::Secret,
            id: "a1".into(),
        };
        assert_eq!(
            st.apply(&rm, 8).error.unwrap(),
            "rpc error: code = InvalidArgument desc = secret 'db' is in use by the following service: web"
        );
        st.services.clear();
        assert_eq!(st.apply(&rm, 9).error, None);
        assert!(st.secrets.is_empty());
    }

    #[test]
    fn in_use_message_is_swarmkit_s() {
        assert_eq!(
            in_use_error(Kind::Secret, "x", &["web".into()]),
            "rpc error: code = InvalidArgument desc = secret 'x' is in use by the following service: web"
        );
        assert_eq!(
            in_use_error(Kind::Config, "c", &["a".into(), "b".into()]),
            "rpc error: code = InvalidArgument desc = config 'c' is in use by the following services: a, b"
        );
    }

    #[test]
    fn ls_filters_match_as_swarmkit() {
        let o = record("abc123", "webapp_db", &[("tier", "db"), ("x", "")]);
        let f = |pairs: &[(&str, &str)]| {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in pairs {
                m.entry(k.to_string()).or_default().push(v.to_string());
            }
            matches(&o, &m)
        };
        assert!(f(&[]));
        assert!(f(&[("name", "webapp")]));
        assert!(!f(&[("name", "db")]));
        assert!(f(&[("name", "zzz"), ("id", "abc")]));
        assert!(!f(&[("names", "webapp")]));
        assert!(f(&[("names", "webapp_db")]));
        assert!(f(&[
            ("label", "tier"),
            ("label", "tier=db"),
            ("label", "x")
        ]));
        assert!(!f(&[("label", "tier=web")]));
        assert!(!f(&[("name", "webapp"), ("label", "nope")]));
    }
}

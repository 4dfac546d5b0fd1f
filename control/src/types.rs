//! The cluster's objects as stored in Raft, and their docker-shaped JSON views.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use shoal_ca::Role;
pub use shoal_spec::Availability;

/// Liveness of a node as the leader's dispatcher sees it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Down => "down",
            NodeState::Ready => "ready",
            NodeState::Disconnected => "disconnected",
        }
    }
}

/// What an operator sets on a node (`node update`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub role: Role,
    #[serde(default)]
    pub availability: Availability,
}

/// What a node reports about itself when it joins or reconnects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeDescription {
    pub hostname: String,
    pub os: String,
    pub architecture: String,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub engine_version: String,
    /// The node's ephemeral port range (`net.ipv4.ip_local_port_range`), first and last:
    /// where a host-mode port without a published port is picked for a task on this
    /// node, as docker's engine does. Absent from nodes that did not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_ports: Option<(u16, u16)>,
    /// The root this node trusts and the issuer of its certificate, as it reports them
    /// (docker's `Description.TLSInfo`): what tells the leader a root rotation reached it.
    /// Absent from nodes that did not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<NodeTlsInfo>,
}

/// docker's `TLSInfo` of a node: the root CA it trusts (PEM) and, base64 as Go marshals
/// `[]byte`, the DER subject and SubjectPublicKeyInfo of its certificate's issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeTlsInfo {
    pub trust_root: String,
    pub cert_issuer_subject: String,
    pub cert_issuer_public_key: String,
}

impl NodeTlsInfo {
    /// docker's JSON: `TrustRoot`, `CertIssuerSubject`, `CertIssuerPublicKey`.
    pub fn docker_json(&self) -> Value {
        json!({
            "TrustRoot": self.trust_root,
            "CertIssuerSubject": self.cert_issuer_subject,
            "CertIssuerPublicKey": self.cert_issuer_public_key,
        })
    }

    /// Whether the certificate it reports was issued by `issuer`.
    pub fn issued_by(&self, issuer: &shoal_ca::IssuerInfo) -> bool {
        self.cert_issuer_subject == b64(&issuer.subject)
            && self.cert_issuer_public_key == b64(&issuer.public_key)
    }

    /// What a node holding `chain_pem` (its certificate, then any intermediates) and
    /// trusting `trust_pem` reports: the first root it trusts, and its certificate's issuer.
    pub fn of_node(chain_pem: &str, trust_pem: &str) -> Self {
        let issuer = shoal_ca::issuer_of_cert(chain_pem, trust_pem);
        NodeTlsInfo {
            trust_root: first_pem_cert(trust_pem),
            cert_issuer_subject: issuer.as_ref().map(|i| b64(&i.subject)).unwrap_or_default(),
            cert_issuer_public_key: issuer
                .as_ref()
                .map(|i| b64(&i.public_key))
                .unwrap_or_default(),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The first PEM certificate block of `pem` (with its trailing newline), or "".
pub fn first_pem_cert(pem: &str) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    match (pem.find("-----BEGIN CERTIFICATE-----"), pem.find(END)) {
        (Some(start), Some(end)) if start < end => format!("{}\n", &pem[start..end + END.len()]),
        _ => String::new(),
    }
}

impl NodeDescription {
    /// Describe the machine this process runs on.
    pub fn of_this_host(hostname: &str) -> Self {
        let nano_cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i64 * 1_000_000_000)
            .unwrap_or(0);
        NodeDescription {
            hostname: hostname.to_string(),
            os: std::env::consts::OS.to_string(),
            architecture: std::env::consts::ARCH.to_string(),
            nano_cpus,
            memory_bytes: total_memory_bytes().unwrap_or(0),
            engine_version: crate::VERSION.to_string(),
            ephemeral_ports: ephemeral_ports(),
            tls: None,
        }
    }
}

/// This network namespace's ephemeral port range, if readable and sane.
fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    crate::host_ports::parse_port_range(&text)
}

fn total_memory_bytes() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One member of the swarm, as replicated in Raft.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: String,
    /// This node's member ID in Raft (meaningful while it is a manager).
    pub raft_id: u64,
    /// Raft index of the last change to this record (docker's Version.Index).
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub spec: NodeSpec,
    pub description: NodeDescription,
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Address other nodes reach this node at (IP only, as docker's Status.Addr).
    pub addr: String,
    /// `IP:port` of the swarm listener (Raft and dispatcher), as ManagerStatus.Addr.
    pub listen_addr: String,
}

/// Derived manager facts that are not stored: who leads, who is reachable.
#[derive(Clone, Debug, Default)]
pub struct ManagerView {
    pub leader_node_id: Option<String>,
    /// Raft IDs currently voting.
    pub voters: Vec<u64>,
    /// Raft IDs of members catching up before they vote.
    pub learners: Vec<u64>,
}

/// RFC 3339 with nanoseconds and trailing zeros trimmed, as Go prints time.Time.
pub fn go_time(t: &DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // "2025-03-01T10:00:00.123456000Z" -> "2025-03-01T10:00:00.123456Z"
    match s.split_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => s,
    }
}

/// docker's `Version`: `{"Index": N}`, or `{}` for 0.
pub(crate) fn version_json(index: u64) -> Value {
    if index == 0 {
        json!({})
    } else {
        json!({ "Index": index })
    }
}

impl NodeRecord {
    pub fn is_manager(&self) -> bool {
        self.spec.role == Role::Manager
    }

    /// The port of its swarm listener (from `listen_addr`), if it has a readable one.
    pub fn listen_port(&self) -> Option<u16> {
        self.listen_addr.rsplit_once(':')?.1.parse().ok()
    }

    /// The name shown in tables: Spec.Name, else hostname.
    pub fn display_name(&self) -> &str {
        self.spec
            .name
            .as_deref()
            .unwrap_or(&self.description.hostname)
    }

    /// Whether it is a member of the Raft group (voting or catching up): what gives a
    /// node ManagerStatus in swarmkit, whatever its role says.
    pub fn raft_member(&self, view: &ManagerView) -> bool {
        view.voters.contains(&self.raft_id) || view.learners.contains(&self.raft_id)
    }

    /// ManagerStatus.Reachability for a manager node.
    pub fn reachability(&self, view: &ManagerView) -> &'static str {
        if view.leader_node_id.as_deref() == Some(self.id.as_str()) {
            return "reachable";
        }
        match self.state {
            NodeState::Ready if view.voters.contains(&self.raft_id) => "reachable",
            NodeState::Ready => "unknown",
            NodeState::Unknown => "unknown",
            _ => "unreachable",
        }
    }

    /// `docker node inspect` JSON, keys in docker's order.
    pub fn docker_json(&self, view: &ManagerView, ca_pem: &str) -> Value {
        let mut spec = Map::new();
        if let Some(name) = &self.spec.name {
            spec.insert("Name".into(), json!(name));
        }
        spec.insert("Labels".into(), json!(self.spec.labels));
        spec.insert("Role".into(), json!(self.spec.role.to_string()));
        spec.insert(
            "Availability".into(),
            json!(self.spec.availability.as_str()),
        );
        let mut status = Map::new();
        status.insert("State".into(), json!(self.state.as_str()));
        if let Some(m) = &self.message {
            status.insert("Message".into(), json!(m));
        }
        status.insert("Addr".into(), json!(self.addr));
        let mut node = Map::new();
        node.insert("ID".into(), json!(self.id));
        node.insert("Version".into(), version_json(self.version));
        node.insert("CreatedAt".into(), json!(go_time(&self.created_at)));
        node.insert("UpdatedAt".into(), json!(go_time(&self.updated_at)));
        node.insert("Spec".into(), Value::Object(spec));
        node.insert(
            "Description".into(),
            json!({
                "Hostname": self.description.hostname,
                "Platform": {
                    "Architecture": self.description.architecture,
                    "OS": self.description.os,
                },
                "Resources": {
                    "NanoCPUs": self.description.nano_cpus,
                    "MemoryBytes": self.description.memory_bytes,
                },
                "Engine": {
                    "EngineVersion": self.description.engine_version,
                    "Plugins": [
                        {"Type": "Network", "Name": "overlay"},
                        {"Type": "Volume", "Name": "local"},
                    ],
                },
                "TLSInfo": match &self.description.tls {
                    Some(t) => t.docker_json(),
                    None => tls_info(ca_pem),
                },
            }),
        );
        node.insert("Status".into(), Value::Object(status));
        if self.raft_member(view) {
            let mut ms = Map::new();
            if view.leader_node_id.as_deref() == Some(self.id.as_str()) {
                ms.insert("Leader".into(), json!(true));
            }
            ms.insert("Reachability".into(), json!(self.reachability(view)));
            ms.insert("Addr".into(), json!(self.listen_addr));
            node.insert("ManagerStatus".into(), Value::Object(ms));
        }
        Value::Object(node)
    }
}

/// A node's TLSInfo: the CA certificate, and (base64, as Go marshals []byte) the DER of
/// its subject and of its SubjectPublicKeyInfo, as docker reports the issuer.
pub fn tls_info(ca_pem: &str) -> Value {
    use base64::Engine;
    let mut m = Map::new();
    m.insert("TrustRoot".into(), json!(ca_pem));
    let der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .ok()
        .map(|(_, pem)| pem.contents);
    if let Some(der) = der {
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) {
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
            let tbs = &cert.tbs_certificate;
            m.insert("CertIssuerSubject".into(), json!(b64(tbs.subject.as_raw())));
            m.insert(
                "CertIssuerPublicKey".into(),
                json!(b64(tbs.subject_pki.raw)),
            );
        }
    }
    Value::Object(m)
}

/// Swarm-wide settings and secrets, made at `swarm init`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub worker_secret: String,
    pub manager_secret: String,
    /// Dispatcher heartbeat period.
    pub heartbeat_ms: u64,
    /// Finished tasks kept per slot (`swarm init --task-history-limit`).
    #[serde(default = "default_history")]
    pub task_history: u64,
    /// Where overlay subnets come from (`--default-addr-pool`, `--default-addr-pool-mask-length`).
    #[serde(default = "default_pool")]
    pub addr_pool: String,
    #[serde(default = "default_subnet_bits")]
    pub subnet_bits: u8,
    /// VXLAN UDP port (`--data-path-port`).
    #[serde(default = "default_data_port")]
    pub data_path_port: u16,
    /// The unlock key (`SWMKEY-1-...`) while autolock is on (swarmkit's
    /// `Spec.EncryptionConfig.AutoLockManagers` and `UnlockKeys`): every manager seals its
    /// keys on disk with it. It lives only here, in the Raft store those keys seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_key: Option<String>,
    /// Lifetime of the node certificates the CA signs (`--cert-expiry`), in seconds.
    #[serde(default = "default_cert_expiry")]
    pub cert_expiry_s: u64,
    /// A root CA rotation under way (swarmkit's `RootCA.RootRotation`): the root the swarm
    /// moves to, its key, and the same certificate signed by the current root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_rotation: Option<RootRotation>,
}

/// A root CA rotation: until every node holds a certificate issued by `ca_cert_pem`'s key,
/// that key signs node certificates, presented with `cross_signed_pem` (the new root
/// signed by the current one) so that nodes trusting only the current root accept them.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct RootRotation {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cross_signed_pem: String,
}

impl std::fmt::Debug for RootRotation {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootRotation")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .finish_non_exhaustive()
    }
}

fn default_cert_expiry() -> u64 {
    shoal_ca::NODE_CERT_VALIDITY.as_secs()
}

fn default_pool() -> String {
    crate::networks::DEFAULT_POOL.to_string()
}

fn default_subnet_bits() -> u8 {
    crate::networks::DEFAULT_SUBNET_BITS
}

fn default_data_port() -> u16 {
    4789
}

fn default_history() -> u64 {
    5
}

impl ClusterInfo {
    /// How long the node certificates the CA signs now are valid.
    pub fn cert_expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cert_expiry_s)
    }

    /// The roots nodes trust: the swarm's root, and during a rotation the new one after it
    /// (the first is the one a node presents and reports as its trust root).
    pub fn trust_pem(&self) -> String {
        match &self.root_rotation {
            Some(r) => {
                format!(
                    "{}\n{}",
                    self.ca_cert_pem.trim_end(),
                    r.ca_cert_pem.trim_end()
                ) + "\n"
            }
            None => self.ca_cert_pem.clone(),
        }
    }

    /// The CA that signs node certificates now, and what is sent after each certificate it
    /// signs: the new root's key and the cross-signed intermediate during a rotation.
    pub fn signer(&self) -> Result<(shoal_ca::ClusterCa, String), shoal_ca::CaError> {
        match &self.root_rotation {
            Some(r) => Ok((
                shoal_ca::ClusterCa::from_pem(&r.ca_cert_pem, &r.ca_key_pem)?,
                r.cross_signed_pem.clone(),
            )),
            None => Ok((
                shoal_ca::ClusterCa::from_pem(&self.ca_cert_pem, &self.ca_key_pem)?,
                String::new(),
            )),
        }
    }

    /// The issuer every node's certificate must have: the new root's during a rotation.
    pub fn desired_issuer(&self) -> Result<shoal_ca::IssuerInfo, shoal_ca::CaError> {
        let pem = self
            .root_rotation
            .as_ref()
            .map_or(&self.ca_cert_pem, |r| &r.ca_cert_pem);
        shoal_ca::issuer_info_of_ca(pem)
    }

    /// docker's `ClusterInfo.TLSInfo`: the swarm's root as TrustRoot, and the issuer of
    /// the certificates it wants (the new root's during a rotation).
    pub fn tls_info_json(&self) -> Value {
        let mut info = tls_info(&self.ca_cert_pem);
        if let (Some(m), Ok(issuer)) = (info.as_object_mut(), self.desired_issuer()) {
            m.insert("CertIssuerSubject".into(), json!(b64(&issuer.subject)));
            m.insert("CertIssuerPublicKey".into(), json!(b64(&issuer.public_key)));
        }
        info
    }

    pub fn secret(&self, role: Role) -> &str {
        match role {
            Role::Worker => &self.worker_secret,
            Role::Manager => &self.manager_secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLSInfo names the CA's subject and public key as DER in base64, as docker does:
    /// the subject is the SEQUENCE of the CN "swarm-ca" RDN, the key a P-256 SPKI.
    #[test]
    fn tls_info_names_the_issuer() {
        use base64::Engine;
        let ca = shoal_ca::ClusterCa::generate().unwrap();
        let info = tls_info(ca.cert_pem());
        let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["TrustRoot", "CertIssuerSubject", "CertIssuerPublicKey"]
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let subject = b64
            .decode(info["CertIssuerSubject"].as_str().unwrap())
            .unwrap();
        // SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, UTF8String "swarm-ca" } } }
        let mut want = vec![
            0x30, 0x13, 0x31, 0x11, 0x30, 0x0f, 0x06, 0x03, 0x55, 0x04, 0x03,
        ];
        want.extend([0x0c, 0x08]);
        want.extend(b"swarm-ca");
        assert_eq!(subject, want);
        let spki = b64
            .decode(info["CertIssuerPublicKey"].as_str().unwrap())
            .unwrap();
        assert_eq!(spki.len(), 91, "a P-256 SubjectPublicKeyInfo");
        assert_eq!(&spki[..2], &[0x30, 0x59]);
    }

    #[test]
    fn go_time_trims_trailing_zeros() {
        let t = DateTime::parse_from_rfc3339("2025-03-01T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(go_time(&t), "2025-03-01T10:00:00.123456Z");
        let t = DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(go_time(&t), "2025-03-01T10:00:00Z");
    }

    /// As swarmkit's controlapi: a node has ManagerStatus exactly while it is a member of
    /// the Raft group, whatever its role: not a manager left out by `--force-new-cluster`
    /// (nor one promoted but not yet joined), but a demoted one until it has left.
    #[test]
    fn manager_status_follows_raft_membership() {
        use crate::state::new_node_record;
        let node = |id: &str, raft_id: u64, role: Role| {
            new_node_record(
                id.into(),
                raft_id,
                role,
                NodeDescription::default(),
                "10.0.0.1".into(),
                "10.0.0.1:2377".into(),
                Utc::now(),
            )
        };
        let view = ManagerView {
            leader_node_id: Some("leader".into()),
            voters: vec![1, 3],
            ..Default::default()
        };
        let status = |n: &NodeRecord| n.docker_json(&view, "").get("ManagerStatus").cloned();
        assert_eq!(
            status(&node("leader", 1, Role::Manager)),
            Some(json!({"Leader": true, "Reachability": "reachable", "Addr": "10.0.0.1:2377"}))
        );
        assert_eq!(status(&node("old", 2, Role::Manager)), None);
        assert_eq!(
            status(&node("demoted", 3, Role::Worker)),
            Some(json!({"Reachability": "reachable", "Addr": "10.0.0.1:2377"}))
        );
        assert_eq!(status(&node("worker", 4, Role::Worker)), None);
        // Joined, still catching up.
        let view = ManagerView {
            learners: vec![5],
            ..view
        };
        assert_eq!(
            node("joining", 5, Role::Manager).docker_json(&view, "")["ManagerStatus"],
            json!({"Reachability": "unknown", "Addr": "10.0.0.1:2377"})
        );
    }
}

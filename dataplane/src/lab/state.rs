//! Lab state: names, addresses and lab.json, shared by every lab command.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{BRIDGE, CLIENT, NETNS_PREFIX, STATE_ROOT, SWITCH};
use crate::procs;

/// One host on the underlay: a node or the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Host {
    pub(super) name: String,
    pub(super) netns: String,
    pub(super) address: Ipv4Addr,
}

/// lab.json: everything `ls`, `exec`, `stop`, `start` and `down` need later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LabState {
    pub(super) name: String,
    pub(super) underlay: String,
    pub(super) prefix_len: u8,
    pub(super) mtu: u32,
    pub(super) switch_netns: String,
    pub(super) nodes: Vec<Host>,
    pub(super) client: Host,
    pub(super) shoald: Option<PathBuf>,
    pub(super) daemon_args: Vec<String>,
    /// Per node, after `daemon_args` (absent in labs made before it existed).
    #[serde(default)]
    pub(super) node_args: std::collections::BTreeMap<String, Vec<String>>,
}

pub(super) fn lab_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

pub(super) fn netns_prefix(lab: &str) -> String {
    format!("{NETNS_PREFIX}{lab}-")
}

pub(super) fn lab_cgroup(lab: &str) -> Option<PathBuf> {
    procs::cgroup2_root().map(|root| root.join("shoal-lab").join(lab))
}

impl LabState {
    pub(super) fn dir(&self) -> PathBuf {
        lab_dir(&self.name)
    }

    pub(super) fn node(&self, name: &str) -> Result<&Host> {
        self.nodes.iter().find(|h| h.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.nodes.iter().map(|h| h.name.as_str()).collect();
            anyhow!(
                "lab {} has no node {name:?} (nodes: {})",
                self.name,
                known.join(", ")
            )
        })
    }

    pub(super) fn host(&self, name: &str) -> Result<&Host> {
        if name == CLIENT {
            Ok(&self.client)
        } else {
            self.node(name)
        }
    }

    pub(super) fn node_dir(&self, node: &str) -> PathBuf {
        self.dir().join(node)
    }

    pub(super) fn socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("shoal.sock")
    }

    /// Scratch mount point for the per-child sysfs (see nsenter).
    pub(super) fn scratch(&self) -> PathBuf {
        self.dir().join(".sysfs")
    }

    pub(super) fn save(&self) -> Result<()> {
        let path = self.dir().join("lab.json");
        let tmp = self.dir().join(".lab.json.tmp");
        let json = serde_json::to_string_pretty(self)?;
        fs::write(&tmp, json + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

pub(super) fn load(name: &str) -> Result<LabState> {
    validate_lab_name(name)?;
    let path = lab_dir(name).join("lab.json");
    let json = match fs::read_to_string(&path) {
        Ok(json) => json,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let known = known_labs();
            bail!(
                "no lab named {name:?} ({} not found); known labs: {}",
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&json).with_context(|| format!("parsing {}", path.display()))
}

pub(super) fn known_labs() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(STATE_ROOT)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub(super) fn validate_lab_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 32
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("invalid lab name {name:?}: use 1 to 32 letters, digits or '_'");
    }
    Ok(())
}

pub(super) fn validate_node_name(name: &str) -> Result<()> {
    // The switch port is named after the node, so interface-name rules apply.
    if name.is_empty()
        || name.len() > 15
        || name.starts_with('-')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bail!("invalid node name {name:?}: use 1 to 15 letters, digits, '_' or '-'");
    }
    if [CLIENT, SWITCH, BRIDGE, "lo"].contains(&name) {
        bail!("node name {name:?} is reserved by the lab");
    }
    Ok(())
}

/// An IPv4 subnet "a.b.c.d/len".
#[derive(Debug, Clone, Copy)]
pub(super) struct Subnet {
    pub(super) network: u32,
    pub(super) prefix_len: u8,
}

impl Subnet {
    pub(super) fn parse(cidr: &str) -> Result<Subnet> {
        let (addr, len) = cidr
            .split_once('/')
            .ok_or_else(|| anyhow!("underlay {cidr:?} is not a CIDR like 10.77.0.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("underlay {cidr:?}: bad address"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|l| (8..=30).contains(l))
            .ok_or_else(|| anyhow!("underlay {cidr:?}: prefix length must be 8..=30"))?;
        let mask = u32::MAX << (32 - prefix_len);
        Ok(Subnet {
            network: u32::from(addr) & mask,
            prefix_len,
        })
    }

    /// Host number `n` of the subnet, if it is neither the network nor the broadcast address.
    pub(super) fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix_len);
        (n >= 1 && u64::from(n) < size - 1).then(|| Ipv4Addr::from(self.network + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_underlay() {
        let s = Subnet::parse("10.77.0.0/24").unwrap();
        assert_eq!(s.host(11), Some(Ipv4Addr::new(10, 77, 0, 11)));
        assert_eq!(s.host(255), None);
        assert!(Subnet::parse("10.77.0.0").is_err());
        assert!(Subnet::parse("10.77.0.0/31").is_err());
        let small = Subnet::parse("192.168.5.7/28").unwrap();
        assert_eq!(small.host(2), Some(Ipv4Addr::new(192, 168, 5, 2)));
        assert_eq!(small.host(15), None);
    }

    #[test]
    fn node_names_are_checked() {
        assert!(validate_node_name("vm1").is_ok());
        assert!(validate_node_name("manager-1").is_ok());
        assert!(validate_node_name("client").is_err());
        assert!(validate_node_name("sw").is_err());
        assert!(validate_node_name("a-very-long-node-name").is_err());
        assert!(validate_lab_name("has-dash").is_err());
    }
}

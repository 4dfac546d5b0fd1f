//! What a node keeps under its data root: identity, keys, certificates, and the Raft store.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::Role;

/// This node's membership in a swarm (absent while not in one).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Membership {
    pub node_id: String,
    pub raft_id: u64,
    pub cluster_id: String,
    /// The role this node's certificate carries.
    pub role: Role,
    /// The IP other nodes reach this node at.
    pub addr: String,
    pub listen_port: u16,
    /// Managers' `IP:port`, refreshed by every heartbeat, to find the leader after a restart.
    pub managers: Vec<String>,
    pub heartbeat_ms: u64,
}

impl Membership {
    pub fn listen_addr(&self) -> String {
        format!("{}:{}", self.addr, self.listen_port)
    }
}

/// Paths under the data root.
#[derive(Clone, Debug)]
pub struct DataRoot(pub PathBuf);

impl DataRoot {
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn membership_file(&self) -> PathBuf {
        self.path("node.json")
    }
    /// The node's key and certificate, as one file so that they change together.
    pub fn identity_file(&self) -> PathBuf {
        self.path("node-identity.pem")
    }
    /// The key alone: the layout before node-identity.pem, still read if it is all there is.
    pub fn key_file(&self) -> PathBuf {
        self.path("node-key.pem")
    }
    /// The certificate alone (the old layout, as `key_file`).
    pub fn cert_file(&self) -> PathBuf {
        self.path("node-cert.pem")
    }

    /// Store a key and its certificate in one atomic write: a crash leaves the old pair or
    /// the new one, never a key with another key's certificate (which shoald would refuse
    /// to start with). The old layout's two files are removed once the pair is in place.
    pub fn save_identity(&self, key_pem: &str, cert_pem: &str) -> std::io::Result<()> {
        let mut pem = key_pem.trim_end().to_string();
        pem.push('\n');
        pem.push_str(cert_pem);
        write_atomic(&self.identity_file(), pem.as_bytes(), 0o600)?;
        for old in [self.key_file(), self.cert_file()] {
            match fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The node's (key, certificate): from node-identity.pem, or the old layout's two files.
    pub fn load_identity(&self) -> std::io::Result<(String, String)> {
        match fs::read_to_string(self.identity_file()) {
            Ok(pem) => split_identity(&pem).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: expected a private key followed by a certificate",
                        self.identity_file().display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let read = |p: PathBuf| {
                    fs::read_to_string(&p)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
                };
                Ok((read(self.key_file())?, read(self.cert_file())?))
            }
            Err(e) => Err(e),
        }
    }
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }
    pub fn raft_file(&self) -> PathBuf {
        self.path("raft.redb")
    }
    /// Where a new Raft store is built before it is renamed to `raft_file` (see
    /// `store::create`); one found at start is what a crash left.
    pub fn raft_creating_file(&self) -> PathBuf {
        crate::raft::store::creating_path(&self.raft_file())
    }
    /// The previous Raft store while `swarm init --force-new-cluster` builds the new one.
    pub fn force_backup_file(&self) -> PathBuf {
        self.raft_file()
            .with_extension("redb.before-force-new-cluster")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.path("shoald.lock")
    }

    pub fn load_membership(&self) -> std::io::Result<Option<Membership>> {
        match fs::read(self.membership_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn save_membership(&self, m: &Membership) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?;
        write_atomic(&self.membership_file(), &bytes, 0o600)
    }

    /// Forget the swarm: the Raft store, keys, certificates and identity.
    ///
    /// node.json goes last: it is what says "this node is in a swarm", so a crash midway
    /// leaves a node that still knows it is a member (and `swarm leave` finishes the job),
    /// never a node outside any swarm with a stale Raft store. (Start-up finishes the job
    /// too: files of a swarm without node.json are what an interrupted wipe, `swarm init` or
    /// `swarm join` left, see `has_swarm_files`.)
    pub fn wipe_swarm(&self) -> std::io::Result<()> {
        for f in self.swarm_files() {
            match fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_dir(&self.0)
    }

    /// Whether any file of a swarm is here (with or without node.json).
    pub fn has_swarm_files(&self) -> bool {
        self.swarm_files().iter().any(|f| f.exists())
    }

    /// Everything `wipe_swarm` removes, node.json last.
    fn swarm_files(&self) -> [PathBuf; 8] {
        [
            self.raft_creating_file(),
            self.force_backup_file(),
            self.raft_file(),
            self.identity_file(),
            self.key_file(),
            self.cert_file(),
            self.ca_file(),
            self.membership_file(),
        ]
    }
}

/// node-identity.pem's two parts: everything before the first certificate is the key.
fn split_identity(pem: &str) -> Option<(String, String)> {
    let at = pem.find("-----BEGIN CERTIFICATE-----")?;
    let (key, cert) = pem.split_at(at);
    if !key.contains("PRIVATE KEY-----") {
        return None;
    }
    Some((key.to_string(), cert.to_string()))
}

/// Write a file so that a crash leaves either the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> DataRoot {
        let dir = std::env::temp_dir().join(format!("shoal-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        DataRoot(dir)
    }

    /// Key and certificate are replaced as one file; the old layout (two files) is still
    /// read, and goes away at the next save.
    #[test]
    fn identity_is_saved_as_a_pair_and_old_layout_is_read() {
        let root = scratch("identity");
        let key = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        fs::write(root.key_file(), key).unwrap();
        fs::write(root.cert_file(), cert).unwrap();
        assert_eq!(
            root.load_identity().unwrap(),
            (key.to_string(), cert.to_string())
        );
        let key2 = key.replace("AAA", "CCC");
        let cert2 = cert.replace("BBB", "DDD");
        root.save_identity(&key2, &cert2).unwrap();
        assert!(!root.key_file().exists() && !root.cert_file().exists());
        assert_eq!(root.load_identity().unwrap(), (key2, cert2));
        // A crash before the old files were removed: the pair still wins.
        fs::write(root.key_file(), key).unwrap();
        fs::write(root.cert_file(), cert).unwrap();
        assert!(root.load_identity().unwrap().0.contains("CCC"));
        fs::write(root.identity_file(), cert).unwrap();
        assert!(root.load_identity().is_err());
        fs::remove_dir_all(&root.0).unwrap();
    }

    /// A wipe that stops midway (here: the Raft store cannot be removed) leaves node.json,
    /// so the node still knows it is in a swarm and no stale Raft store outlives it.
    #[test]
    fn wipe_swarm_removes_node_json_last() {
        let root = scratch("wipe");
        fs::write(root.membership_file(), b"{}").unwrap();
        fs::write(root.key_file(), b"key").unwrap();
        // A non-empty directory where raft.redb belongs: remove_file fails on it.
        fs::create_dir_all(root.raft_file().join("x")).unwrap();
        assert!(root.wipe_swarm().is_err());
        assert!(
            root.membership_file().exists(),
            "node.json was removed first"
        );
        fs::remove_dir_all(root.raft_file()).unwrap();
        root.wipe_swarm().unwrap();
        assert!(!root.membership_file().exists());
        assert!(!root.key_file().exists());
        fs::remove_dir_all(&root.0).unwrap();
    }
}

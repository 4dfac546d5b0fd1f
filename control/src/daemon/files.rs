//! What a node keeps under its data root: identity, keys, certificates, and the Raft store.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use shoal_ca::seal::SealKey;

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

    /// Store the node's identity in one atomic write: a crash leaves the old one or the
    /// new one, never a key with another key's certificate (which shoald would refuse to
    /// start with). With `kek` (the swarm's unlock key, under autolock) the private key and
    /// the Raft store's key are sealed by it. The old layout's two files are removed once
    /// the identity is in place.
    pub fn save_identity(&self, id: &Identity, kek: Option<&SealKey>) -> std::io::Result<()> {
        let mut pem = match kek {
            Some(kek) => shoal_ca::pem_encode(SEALED_KEY, &kek.seal(id.key_pem.as_bytes())),
            None => format!("{}\n", id.key_pem.trim_end()),
        };
        for (dek, plain, sealed) in [
            (&id.dek, PLAIN_DEK, SEALED_DEK),
            (&id.pending_dek, PLAIN_PENDING_DEK, SEALED_PENDING_DEK),
        ] {
            match (dek, kek) {
                (Some(dek), Some(kek)) => {
                    pem.push_str(&shoal_ca::pem_encode(sealed, &kek.seal(dek.as_bytes())))
                }
                (Some(dek), None) => pem.push_str(&shoal_ca::pem_encode(plain, dek.as_bytes())),
                (None, _) => {}
            }
        }
        if id.renew_cert {
            pem.push_str(&shoal_ca::pem_encode(RENEW_CERT, RENEW_CERT_BODY));
        }
        pem.push_str(&id.cert_pem);
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

    /// The node's identity: from node-identity.pem (opening what is sealed with `kek`), or
    /// the old layout's two files.
    pub fn load_identity(&self, kek: Option<&SealKey>) -> Result<Identity, IdentityError> {
        let invalid = || {
            IdentityError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: expected a private key followed by a certificate",
                    self.identity_file().display()
                ),
            ))
        };
        match fs::read_to_string(self.identity_file()) {
            Ok(pem) => parse_identity(&pem, kek)?.ok_or_else(invalid),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let read = |p: PathBuf| {
                    fs::read_to_string(&p)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
                };
                Ok(Identity {
                    key_pem: read(self.key_file())?,
                    cert_pem: read(self.cert_file())?,
                    dek: None,
                    pending_dek: None,
                    renew_cert: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the node's identity is sealed by an unlock key (autolock): shoald then
    /// starts locked, until `swarm unlock`.
    pub fn identity_is_sealed(&self) -> std::io::Result<bool> {
        match fs::read_to_string(self.identity_file()) {
            Ok(pem) => Ok(pem.contains(&format!("-----BEGIN {SEALED_KEY}-----"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
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
    fn swarm_files(&self) -> [PathBuf; 10] {
        [
            // What a write of the identity cut short left (`write_atomic`'s temporary).
            self.identity_file().with_extension("tmp"),
            self.raft_creating_file(),
            crate::raft::store::rekeying_path(&self.raft_file()),
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

/// What a node keeps of itself: its TLS key and certificate, and (on a manager) the
/// key its Raft store is sealed with.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub key_pem: String,
    pub cert_pem: String,
    pub dek: Option<SealKey>,
    /// The key the Raft store is being re-sealed with (swarmkit's pending DEK): from when
    /// autolock was turned on until the store is re-sealed and `dek` becomes this. The
    /// store is sealed with one of the two.
    pub pending_dek: Option<SealKey>,
    /// The TLS key was on disk in the clear before this file was sealed (autolock turned
    /// on): the node is to get a new key and certificate, as swarmkit renews then. Kept
    /// with the sealing, so that a crash before the renewal does not forget it; a new
    /// certificate's identity is saved without it.
    pub renew_cert: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &self.cert_pem)
            .field("dek", &self.dek.as_ref().map(|_| ".."))
            .field("pending_dek", &self.pending_dek.as_ref().map(|_| ".."))
            .field("renew_cert", &self.renew_cert)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Sealed, and no unlock key given.
    #[error("this node's keys are sealed by the swarm's unlock key")]
    Locked,
    /// Sealed by another key than the one given.
    #[error("swarm could not be unlocked: invalid key provided")]
    WrongKey,
}

/// The private key, sealed by the unlock key (the plain one is PEM's `PRIVATE KEY`).
const SEALED_KEY: &str = "SHOAL SEALED PRIVATE KEY";
/// The Raft store's data encryption key, in the clear (no autolock) or sealed.
const PLAIN_DEK: &str = "SHOAL RAFT DEK";
const SEALED_DEK: &str = "SHOAL SEALED RAFT DEK";
/// The key a rotation is re-sealing the Raft store with, in the clear or sealed.
const PLAIN_PENDING_DEK: &str = "SHOAL PENDING RAFT DEK";
const SEALED_PENDING_DEK: &str = "SHOAL SEALED PENDING RAFT DEK";
/// Present when the node's certificate is to be renewed with a new key (`renew_cert`).
const RENEW_CERT: &str = "SHOAL RENEW CERTIFICATE";
const RENEW_CERT_BODY: &[u8] = b"the TLS key was in the clear";

/// The PEM blocks of `pem` before its first certificate, as (label, whole block text).
fn blocks_before_cert(pem: &str) -> Option<(Vec<(&str, &str)>, &str)> {
    let cert_at = pem.find("-----BEGIN CERTIFICATE-----")?;
    let (mut head, cert) = pem.split_at(cert_at);
    let mut blocks = Vec::new();
    while let Some(at) = head.find("-----BEGIN ") {
        let rest = &head[at + "-----BEGIN ".len()..];
        let label = &rest[..rest.find("-----")?];
        let end_marker = format!("-----END {label}-----");
        let end = head.find(&end_marker)? + end_marker.len();
        blocks.push((label, &head[at..end]));
        head = &head[end..];
    }
    Some((blocks, cert))
}

fn block_bytes(block: &str) -> Option<Vec<u8>> {
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

/// node-identity.pem: a private key (plain or sealed), a Raft key if any (plain or sealed)
/// and a pending one if a rotation is under way, then the certificate. `Ok(None)`: not
/// such a file.
fn parse_identity(pem: &str, kek: Option<&SealKey>) -> Result<Option<Identity>, IdentityError> {
    let Some((blocks, cert)) = blocks_before_cert(pem) else {
        return Ok(None);
    };
    let open = |block: &str| -> Result<Option<Vec<u8>>, IdentityError> {
        let Some(sealed) = block_bytes(block) else {
            return Ok(None);
        };
        let kek = kek.ok_or(IdentityError::Locked)?;
        kek.open(&sealed)
            .map(Some)
            .map_err(|_| IdentityError::WrongKey)
    };
    let mut key_pem = None;
    let mut dek = None;
    let mut pending = None;
    let mut renew_cert = false;
    for (label, block) in blocks {
        match label {
            SEALED_KEY => {
                key_pem = open(block)?.and_then(|b| String::from_utf8(b).ok());
                if key_pem.is_none() {
                    return Ok(None);
                }
            }
            l if l.ends_with("PRIVATE KEY") => key_pem = Some(format!("{block}\n")),
            PLAIN_DEK => {
                dek = Some(block_bytes(block).and_then(|b| SealKey::from_bytes(&b)));
            }
            SEALED_DEK => dek = Some(open(block)?.and_then(|b| SealKey::from_bytes(&b))),
            PLAIN_PENDING_DEK => {
                pending = Some(block_bytes(block).and_then(|b| SealKey::from_bytes(&b)));
            }
            SEALED_PENDING_DEK => {
                pending = Some(open(block)?.and_then(|b| SealKey::from_bytes(&b)))
            }
            RENEW_CERT => renew_cert = true,
            _ => return Ok(None),
        }
    }
    // A block that is there must hold a key.
    let present = |k: Option<Option<SealKey>>| k.map_or(Some(None), |d| d.map(Some));
    let (Some(key_pem), Some(dek), Some(pending_dek)) = (key_pem, present(dek), present(pending))
    else {
        return Ok(None);
    };
    if pending_dek.is_some() && dek.is_none() {
        // swarmkit's "there is a pending DEK, but no current DEK".
        return Ok(None);
    }
    Ok(Some(Identity {
        key_pem,
        cert_pem: cert.to_string(),
        dek,
        pending_dek,
        renew_cert,
    }))
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

    fn ident(key: &str, cert: &str, dek: Option<SealKey>) -> Identity {
        Identity {
            key_pem: key.to_string(),
            cert_pem: cert.to_string(),
            dek,
            pending_dek: None,
            renew_cert: false,
        }
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
        assert_eq!(root.load_identity(None).unwrap(), ident(key, cert, None));
        let key2 = key.replace("AAA", "CCC");
        let cert2 = cert.replace("BBB", "DDD");
        root.save_identity(&ident(&key2, &cert2, None), None)
            .unwrap();
        assert!(!root.key_file().exists() && !root.cert_file().exists());
        assert_eq!(
            root.load_identity(None).unwrap(),
            ident(&key2, &cert2, None)
        );
        // A crash before the old files were removed: the pair still wins.
        fs::write(root.key_file(), key).unwrap();
        fs::write(root.cert_file(), cert).unwrap();
        assert!(root.load_identity(None).unwrap().key_pem.contains("CCC"));
        fs::write(root.identity_file(), cert).unwrap();
        assert!(root.load_identity(None).is_err());
        fs::remove_dir_all(&root.0).unwrap();
    }

    /// Under autolock the private key and the Raft key are in the file only sealed: the
    /// file opens with the unlock key alone, and says "locked" without one and "invalid
    /// key" with another. Without autolock both are in the clear.
    #[test]
    fn identity_is_sealed_by_the_unlock_key() {
        let root = scratch("sealed");
        let key = "-----BEGIN PRIVATE KEY-----\nSECRETKEYBODY\n-----END PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let dek = SealKey::generate();
        let id = ident(key, cert, Some(dek.clone()));
        root.save_identity(&id, None).unwrap();
        assert!(!root.identity_is_sealed().unwrap());
        assert_eq!(root.load_identity(None).unwrap(), id);
        let kek = SealKey::generate();
        root.save_identity(&id, Some(&kek)).unwrap();
        let raw = fs::read_to_string(root.identity_file()).unwrap();
        assert!(!raw.contains("SECRETKEYBODY"), "{raw}");
        let dek_b64 = base64::engine::general_purpose::STANDARD.encode(dek.as_bytes());
        assert!(!raw.contains(&dek_b64), "{raw}");
        assert!(raw.ends_with(cert), "the certificate stays readable: {raw}");
        assert!(root.identity_is_sealed().unwrap());
        assert!(matches!(
            root.load_identity(None),
            Err(IdentityError::Locked)
        ));
        assert!(matches!(
            root.load_identity(Some(&SealKey::generate())),
            Err(IdentityError::WrongKey)
        ));
        assert_eq!(root.load_identity(Some(&kek)).unwrap(), id);
        // Autolock off again: back in the clear.
        root.save_identity(&id, None).unwrap();
        assert!(!root.identity_is_sealed().unwrap());
        assert_eq!(root.load_identity(Some(&kek)).unwrap(), id);
        fs::remove_dir_all(&root.0).unwrap();
    }

    /// A renewal asked for is kept in the file, sealed or not, and read back.
    #[test]
    fn a_renewal_asked_for_is_kept_in_the_identity() {
        let root = scratch("renew");
        let key = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let mut id = ident(key, cert, Some(SealKey::generate()));
        id.renew_cert = true;
        let kek = SealKey::generate();
        for k in [None, Some(&kek)] {
            root.save_identity(&id, k).unwrap();
            assert_eq!(root.load_identity(k).unwrap(), id);
        }
        id.renew_cert = false;
        root.save_identity(&id, Some(&kek)).unwrap();
        assert_eq!(root.load_identity(Some(&kek)).unwrap(), id);
        fs::remove_dir_all(&root.0).unwrap();
    }

    /// A rotation of the Raft key under way: the pending key is kept beside the current
    /// one, in the clear or sealed as the current one is, and read back with it. A pending
    /// key without a current one is not an identity (swarmkit refuses it too).
    #[test]
    fn a_pending_raft_key_is_kept_beside_the_current_one() {
        let root = scratch("pending");
        let key = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let (old, new) = (SealKey::generate(), SealKey::generate());
        let mut id = ident(key, cert, Some(old.clone()));
        id.pending_dek = Some(new.clone());
        root.save_identity(&id, None).unwrap();
        assert_eq!(root.load_identity(None).unwrap(), id);
        let kek = SealKey::generate();
        root.save_identity(&id, Some(&kek)).unwrap();
        let raw = fs::read_to_string(root.identity_file()).unwrap();
        assert!(raw.contains("BEGIN SHOAL SEALED PENDING RAFT DEK"), "{raw}");
        for k in [&old, &new] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(k.as_bytes());
            assert!(!raw.contains(&b64), "{raw}");
        }
        assert_eq!(root.load_identity(Some(&kek)).unwrap(), id);
        // The rotation done: the pending key is the key, and its block is gone.
        id.dek = id.pending_dek.take();
        root.save_identity(&id, Some(&kek)).unwrap();
        let raw = fs::read_to_string(root.identity_file()).unwrap();
        assert!(!raw.contains("PENDING"), "{raw}");
        assert_eq!(root.load_identity(Some(&kek)).unwrap().dek, Some(new));
        // A pending key alone.
        let b64 = |k: &SealKey| base64::engine::general_purpose::STANDARD.encode(k.as_bytes());
        fs::write(
            root.identity_file(),
            format!(
                "{key}-----BEGIN SHOAL PENDING RAFT DEK-----\n{}\n-----END SHOAL PENDING RAFT DEK-----\n{cert}",
                b64(&old)
            ),
        )
        .unwrap();
        assert!(root.load_identity(None).is_err());
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

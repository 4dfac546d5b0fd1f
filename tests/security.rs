//! The swarm port's access rules, checked from inside a lab node with real certificates:
//! a worker's certificate cannot call manager APIs or take part in Raft, and a certificate
//! from another swarm's CA is refused at the handshake.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shoal_ca::seal::SealKey;
use shoal_control::api::ApiRequest;
use shoal_control::peer::{self, PeerRequest, PeerResponse};
use shoal_control::wire;

fn call(
    lab: &Lab,
    node: &str,
    addr: String,
    config: Arc<rustls::ClientConfig>,
    req: PeerRequest,
) -> Result<PeerResponse, String> {
    in_ns(lab, node, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut conn = peer::connect(&addr, config)
                .await
                .map_err(|e| e.to_string())?;
            wire::call(&mut conn, &req).await.map_err(|e| e.to_string())
        })
    })
}

#[test]
fn worker_certificate_cannot_call_manager_apis() {
    let s = Swarm::lab("sec", 2);
    s.form(&[("vm2", "worker")]);
    let data = s.lab.data_root("vm2");
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let id = shoal_control::daemon::files::DataRoot(data.clone())
        .load_identity(None)
        .unwrap();
    let (key, cert) = (id.key_pem, id.cert_pem);
    let worker = shoal_ca::identity_of_pem(&cert).unwrap();
    assert_eq!(worker.role, shoal_ca::Role::Worker);
    let config = shoal_ca::tls::client_config(&ca, &cert, &key).unwrap();
    let leader = format!("{}:2377", s.addr("vm1"));

    // A manager API call with the worker's certificate.
    let resp = call(
        &s.lab,
        "vm2",
        leader.clone(),
        config.clone(),
        PeerRequest::Api {
            request: ApiRequest::NodeList,
            asked_on: worker.node_id.clone(),
        },
    )
    .unwrap();
    match resp {
        PeerResponse::Api(Err(e)) => assert_eq!(e.message, WORKER_REFUSED),
        other => panic!("worker got {other:?}"),
    }
    // A Raft vote with the worker's certificate.
    let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(99, 1), None);
    let resp = call(
        &s.lab,
        "vm2",
        leader.clone(),
        config,
        PeerRequest::Vote { to: 1, rpc: vote },
    )
    .unwrap();
    assert!(
        !matches!(resp, PeerResponse::Vote(_)),
        "a worker's vote request reached raft: {resp:?}"
    );

    // A manager certificate from another swarm's CA: refused at the handshake.
    let other = shoal_ca::ClusterCa::generate().unwrap();
    let (okey, ocert) = other
        .issue_node(
            "intruder000000000000000000",
            shoal_ca::Role::Manager,
            "othercluster",
        )
        .unwrap();
    let oconfig = shoal_ca::tls::client_config(other.cert_pem(), &ocert, &okey).unwrap();
    let resp = call(
        &s.lab,
        "vm2",
        leader,
        oconfig,
        PeerRequest::Api {
            request: ApiRequest::NodeList,
            asked_on: String::new(),
        },
    );
    assert!(
        resp.is_err(),
        "another swarm's certificate was accepted: {resp:?}"
    );
    // The cluster is unaffected.
    assert_eq!(s.nodes("vm1").unwrap().len(), 2);
}

/// Raft messages name the member they are for. One for another member (the sender's
/// membership still names a member that answered at this address before a demotion and
/// promotion) is refused, even from a member this one knows, so its vote is never counted
/// for a member that is gone; one for this member is taken.
#[test]
fn a_raft_message_for_another_member_is_refused() {
    let s = Swarm::lab("raftto", 1);
    s.form(&[]);
    let data = s.lab.data_root("vm1");
    let root = shoal_control::daemon::files::DataRoot(data.clone());
    let me = root.load_membership().unwrap().expect("vm1 is in a swarm");
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let id = root.load_identity(None).unwrap();
    let (key, cert) = (id.key_pem, id.cert_pem);
    let config = shoal_ca::tls::client_config(&ca, &cert, &key).unwrap();
    let leader = format!("{}:2377", s.addr("vm1"));
    // A vote request of an old term from a member vm1 knows (itself): only the address
    // is wrong.
    let vote = || openraft::raft::VoteRequest::new(openraft::Vote::new(0, me.raft_id), None);
    let other = me.raft_id.wrapping_add(1);
    let resp = call(
        &s.lab,
        "vm1",
        leader.clone(),
        config.clone(),
        PeerRequest::Vote {
            to: other,
            rpc: vote(),
        },
    )
    .unwrap();
    match resp {
        PeerResponse::Error(e) => assert!(
            e.contains(&format!("raft message for member {other:x}")),
            "{e}"
        ),
        other => panic!("a vote for another member reached raft: {other:?}"),
    }
    // Addressed to vm1's member, the same request reaches Raft (which turns down the old
    // term).
    let resp = call(
        &s.lab,
        "vm1",
        leader,
        config,
        PeerRequest::Vote {
            to: me.raft_id,
            rpc: vote(),
        },
    )
    .unwrap();
    match resp {
        PeerResponse::Vote(Ok(v)) => assert!(!v.vote_granted, "{v:?}"),
        other => panic!("a vote for this member was refused: {other:?}"),
    }
    assert_eq!(s.nodes("vm1").unwrap().len(), 1);
}

/// A demoted manager keeps its manager certificate until it expires; what it may do is
/// decided by the cluster: the leader refuses its manager API calls, and nodes refuse its
/// exec and log requests, worker nodes included. Promoting it again works.
#[test]
fn a_demoted_managers_certificate_is_refused() {
    let s = Swarm::lab("demo", 3);
    s.form(&[("vm2", "manager"), ("vm3", "worker")]);
    let read = |node: &str| {
        let data = s.lab.data_root(node);
        let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
        let id = shoal_control::daemon::files::DataRoot(data)
            .load_identity(None)
            .unwrap();
        let (key, cert) = (id.key_pem, id.cert_pem);
        (shoal_ca::identity_of_pem(&cert).unwrap(), ca, cert, key)
    };
    let (old, ca, cert, key) = read("vm2");
    assert_eq!(old.role, shoal_ca::Role::Manager);
    let old_config = shoal_ca::tls::client_config(&ca, &cert, &key).unwrap();
    let (leader_id, ca1, cert1, key1) = read("vm1");
    let leader_config = shoal_ca::tls::client_config(&ca1, &cert1, &key1).unwrap();
    let vm3_id = s
        .ok("vm1", &["node", "inspect", "--format", "{{.ID}}", "vm3"])
        .trim()
        .to_string();
    let leader = format!("{}:2377", s.addr("vm1"));
    let vm3 = format!("{}:2377", s.addr("vm3"));

    s.ok("vm1", &["node", "demote", "vm2"]);
    s.wait_node("vm1", "vm2", "Ready", "", Duration::from_secs(20));

    let join_token = || PeerRequest::Api {
        request: ApiRequest::JoinToken {
            role: shoal_control::types::Role::Manager,
            rotate: false,
        },
        asked_on: old.node_id.clone(),
    };
    match call(
        &s.lab,
        "vm2",
        leader.clone(),
        old_config.clone(),
        join_token(),
    )
    .unwrap()
    {
        PeerResponse::Api(Err(e)) => assert_eq!(e.message, WORKER_REFUSED),
        other => panic!("a demoted manager's certificate got {other:?}"),
    }
    // A worker node (no cluster state of its own) refuses it too; the leader's
    // certificate is still served there.
    let logs = || PeerRequest::TaskLogs {
        task_id: "nosuchtask".into(),
        tail: None,
        from: None,
        max: None,
    };
    let on_vm3 = |config: Arc<rustls::ClientConfig>| {
        let vm3 = vm3.clone();
        let vm3_id = vm3_id.clone();
        in_ns(&s.lab, "vm2", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = peer::connect_named(&vm3, &vm3_id, config).await.unwrap();
                wire::call::<_, _, PeerResponse>(&mut conn, &logs())
                    .await
                    .unwrap()
            })
        })
    };
    match on_vm3(old_config.clone()) {
        PeerResponse::Error(e) => assert_eq!(e, WORKER_REFUSED),
        other => panic!("a worker served a demoted manager: {other:?}"),
    }
    match on_vm3(leader_config) {
        PeerResponse::LogChunk(Err(e)) => assert!(e.contains("nosuchtask"), "{e}"),
        other => panic!("the leader's log request got {other:?}\n{}", s.log_tails()),
    }
    match call(&s.lab, "vm2", leader.clone(), old_config, logs()).unwrap() {
        PeerResponse::Error(e) => assert_eq!(e, WORKER_REFUSED),
        other => panic!("the leader served a demoted manager's log request: {other:?}"),
    }
    assert_eq!(leader_id.role, shoal_ca::Role::Manager);

    // vm2's own CLI is refused too (by the leader, or by vm2 once it took the demotion).
    let err = s.fails("vm2", &["node", "ls"]);
    assert!(err.contains(WORKER_REFUSED), "{err}");
    // Once vm2 itself has taken the demotion, promote it again: it gets a new
    // certificate, joins Raft and serves manager APIs.
    let vm2_root = shoal_control::daemon::files::DataRoot(s.lab.data_root("vm2"));
    wait_until("vm2 took its demotion", Duration::from_secs(20), || {
        let m = vm2_root.load_membership().ok()??;
        (m.role == shoal_control::types::Role::Worker).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
    s.ok("vm1", &["node", "promote", "vm2"]);
    wait_until("vm2 reachable again", Duration::from_secs(30), || {
        let rows = s.nodes("vm1")?;
        rows.iter()
            .any(|r| r.0 == "vm2" && r.1 == "Ready" && r.3 == "Reachable")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{:?}\n{}", s.nodes("vm1"), s.log_tails()));
    wait_until("vm2 answers node ls", Duration::from_secs(20), || {
        (s.nodes("vm2")?.len() == 3).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
}

/// `shoal swarm unlock` on `node` with `key` on its stdin (as `echo KEY | docker swarm
/// unlock`): (success, stderr).
fn unlock(s: &Swarm, node: &str, key: &str) -> (bool, String) {
    use std::io::Write;
    let mut cmd = s
        .lab
        .command(node, &[SHOAL, "swarm", "unlock"])
        .expect("command");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn shoal swarm unlock");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn file(s: &Swarm, node: &str, name: &str) -> Vec<u8> {
    std::fs::read(s.lab.data_root(node).join(name)).unwrap_or_default()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// `shoal secret create NAME -` on `node`, the value on its stdin (never in argv).
fn create_secret(s: &Swarm, node: &str, name: &str, value: &str) {
    let mut create = s
        .lab
        .command(node, &[SHOAL, "secret", "create", name, "-"])
        .unwrap();
    create
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = create.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), value.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// The key in the unlock message docker prints (init --autolock, update, unlock-key).
fn key_in(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key in: {out}"))
        .to_string()
}

/// Autolock and encryption at rest, as a user of `docker swarm` checks them. The Raft
/// store holds neither a secret's bytes nor the CA's key in the clear; managers' keys on
/// disk are sealed by the unlock key (workers' are not); a manager killed and started
/// again is locked until `swarm unlock` with the key, refusing wrong ones; a rotated key
/// replaces the old one on every manager's disk; turning autolock off unseals them.
#[test]
fn autolock_keeps_a_restarted_manager_locked_until_unlocked() {
    const T: Duration = Duration::from_secs(20);
    let s = Swarm::lab("alock", 3);
    let addr = s.addr("vm1");
    let out = s.ok(
        "vm1",
        &[
            "swarm",
            "init",
            "--autolock",
            "--advertise-addr",
            &addr,
            "--dispatcher-heartbeat",
            "1s",
        ],
    );
    assert!(
        out.contains("follow the instructions.\nTo unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    SWMKEY-1-"),
        "{out}"
    );
    let key = key_in(&out);
    s.join("vm2", "vm1", "manager");
    s.join("vm3", "vm1", "worker");
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);
    let marker = "autolock-secret-marker-91c2";
    const MARKER_B64: &str = "YXV0b2xvY2stc2VjcmV0LW1hcmtlci05MWMy";
    create_secret(&s, "vm1", "db_pass", marker);
    assert_eq!(s.ok("vm1", &["swarm", "unlock-key", "-q"]).trim(), key);
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "info",
                "--format",
                "{{.Swarm.Cluster.Spec.EncryptionConfig.AutoLockManagers}}"
            ]
        )
        .trim(),
        "true"
    );
    wait_until("vm2 has the secret and the key", T, || {
        let out = s.shoal("vm2", &["swarm", "unlock-key", "-q"]);
        let ls = s.shoal("vm2", &["secret", "ls", "-q"]);
        (String::from_utf8_lossy(&out.stdout).trim() == key && !ls.stdout.is_empty()).then_some(())
    })
    .unwrap();
    for n in ["vm1", "vm2"] {
        let raft = file(&s, n, "raft.redb");
        assert!(!raft.is_empty(), "{n}: no raft store");
        // The secret's data is base64 in the store's JSON; its name is there too.
        for clear in [marker, MARKER_B64, "db_pass"] {
            assert!(
                !contains(&raft, clear),
                "{n}: {clear} is in raft.redb in the clear"
            );
        }
        assert!(
            !contains(&raft, "PRIVATE KEY"),
            "{n}: a private key is in raft.redb"
        );
        wait_until(&format!("{n}'s keys sealed"), T, || {
            let id = file(&s, n, "node-identity.pem");
            (contains(&id, "BEGIN SHOAL SEALED PRIVATE KEY") && !contains(&id, "BEGIN PRIVATE KEY"))
                .then_some(())
        })
        .unwrap();
    }
    let worker = file(&s, "vm3", "node-identity.pem");
    assert!(
        contains(&worker, "BEGIN PRIVATE KEY"),
        "a worker's key was sealed"
    );

    // A manager that restarts is locked.
    s.lab.stop("vm2").unwrap();
    s.lab.start("vm2").unwrap();
    assert_eq!(
        s.ok("vm2", &["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "locked"
    );
    let err = s.fails("vm2", &["node", "ls"]);
    assert!(
        err.contains("Error response from daemon: Swarm is encrypted and needs to be unlocked before it can be used. Please use \"shoal swarm unlock\" to unlock it."),
        "{err}"
    );
    let (ok, err) = unlock(&s, "vm2", "SWMKEY-1-nonsense");
    assert!(!ok && err.contains("invalid key string"), "{err}");
    let other = key.replace(&key[10..14], "AAAA");
    let (ok, err) = unlock(&s, "vm2", &other);
    assert!(
        !ok && err.contains("swarm could not be unlocked: invalid key provided"),
        "{err}"
    );
    for n in ["vm1", "vm3"] {
        let (ok, err) = unlock(&s, n, &key);
        assert!(
            !ok && err.contains("error: swarm is not locked"),
            "{n}: {err}"
        );
    }
    let (ok, err) = unlock(&s, "vm2", &key);
    assert!(ok, "unlock with the right key: {err}\n{}", s.log_tails());
    wait_until("vm2 serves the swarm again", T, || {
        let ls = s.shoal("vm2", &["secret", "ls", "--format", "{{.Name}}"]);
        (String::from_utf8_lossy(&ls.stdout).trim() == "db_pass").then_some(())
    })
    .unwrap();
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);

    // Rotation: every manager's keys are sealed again, by the new key only.
    let before = file(&s, "vm2", "node-identity.pem");
    let out = s.ok("vm1", &["swarm", "unlock-key", "--rotate"]);
    assert!(
        out.starts_with("Successfully rotated manager unlock key.\nTo unlock a swarm manager"),
        "{out}"
    );
    let new_key = key_in(&out);
    assert_ne!(new_key, key);
    wait_until("vm2 sealed with the rotated key", T, || {
        (file(&s, "vm2", "node-identity.pem") != before).then_some(())
    })
    .unwrap();
    s.lab.stop("vm2").unwrap();
    s.lab.start("vm2").unwrap();
    let (ok, err) = unlock(&s, "vm2", &key);
    assert!(
        !ok && err.contains("invalid key provided"),
        "the old key still unlocks: {err}"
    );
    let (ok, err) = unlock(&s, "vm2", &new_key);
    assert!(ok, "unlock with the rotated key: {err}");
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);

    // A demoted manager's keys go back in the clear (workers are never locked) and it
    // forgets its store's key; promoted again, it is sealed by the key in force.
    s.ok("vm1", &["node", "demote", "vm2"]);
    wait_until("vm2 unsealed as a worker", T, || {
        let id = file(&s, "vm2", "node-identity.pem");
        (contains(&id, "BEGIN PRIVATE KEY") && !contains(&id, "RAFT DEK")).then_some(())
    })
    .unwrap();
    s.ok("vm1", &["node", "promote", "vm2"]);
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);
    wait_until("vm2 sealed again as a manager", T, || {
        let id = file(&s, "vm2", "node-identity.pem");
        (contains(&id, "BEGIN SHOAL SEALED PRIVATE KEY")
            && contains(&id, "BEGIN SHOAL SEALED RAFT DEK"))
        .then_some(())
    })
    .unwrap();
    s.lab.stop("vm2").unwrap();
    s.lab.start("vm2").unwrap();
    let (ok, err) = unlock(&s, "vm2", &new_key);
    assert!(ok, "unlock after a new promotion: {err}");
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);

    // Off: the keys go back in the clear, and a restart is not locked.
    assert_eq!(
        s.ok("vm1", &["swarm", "update", "--autolock=false"]),
        "Swarm updated.\n"
    );
    for n in ["vm1", "vm2"] {
        wait_until(&format!("{n}'s keys in the clear"), T, || {
            contains(&file(&s, n, "node-identity.pem"), "BEGIN PRIVATE KEY").then_some(())
        })
        .unwrap();
    }
    let err = s.fails("vm1", &["swarm", "unlock-key"]);
    assert!(err.contains("no unlock key is set"), "{err}");
    let err = s.fails("vm1", &["swarm", "unlock-key", "--rotate"]);
    assert!(
        err.contains("cannot rotate because autolock is not turned on"),
        "{err}"
    );
    s.lab.stop("vm2").unwrap();
    s.lab.start("vm2").unwrap();
    assert_eq!(
        s.ok("vm2", &["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "active"
    );
    let out = s.ok("vm1", &["swarm", "update", "--autolock"]);
    assert!(
        out.starts_with("Swarm updated.\nTo unlock a swarm manager"),
        "{out}"
    );
    assert_ne!(key_in(&out), new_key);
}

/// The Raft store's key (the DEK in node-identity.pem) of a node's `data_root`, as a copy
/// of its identity file holds it: `pem` read with `kek` (None: in the clear).
fn raft_key_in(pem: &[u8], kek: Option<&SealKey>) -> Option<SealKey> {
    let dir = std::env::temp_dir().join(format!(
        "shoal-dek-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let root = shoal_control::daemon::files::DataRoot(dir.clone());
    std::fs::write(root.identity_file(), pem).unwrap();
    let id = root.load_identity(kek);
    std::fs::remove_dir_all(&dir).unwrap();
    id.ok()?.dek
}

/// Turning autolock on rotates every manager's Raft store key, as swarmkit rotates its
/// raft DEK: a copy of node-identity.pem taken before (the key was in the clear then)
/// does not open the store afterwards, so a secret created since is out of its reach.
/// Checked as an auditor holding that copy would: its key against the store on disk
/// (refused as another key's, with no secret in the clear in the file), and shoald itself
/// started on the copy (it says the store was encrypted with another key). The node's
/// own sealed identity then unlocks and serves the secret as before. The TLS keys, in the
/// clear before too, are replaced: each manager's certificate is renewed with a new key.
#[test]
fn turning_autolock_on_rotates_the_raft_store_key() {
    const T: Duration = Duration::from_secs(20);
    let s = Swarm::lab("dekrot", 2);
    s.init("vm1");
    s.join("vm2", "vm1", "manager");
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);
    let copies: Vec<Vec<u8>> = ["vm1", "vm2"]
        .iter()
        .map(|n| file(&s, n, "node-identity.pem"))
        .collect();
    let old: Vec<SealKey> = copies
        .iter()
        .map(|c| raft_key_in(c, None).expect("a raft key in the clear"))
        .collect();

    let out = s.ok("vm1", &["swarm", "update", "--autolock"]);
    let kek = SealKey::parse_unlock_key(&key_in(&out)).unwrap();
    for (i, n) in ["vm1", "vm2"].iter().enumerate() {
        wait_until(&format!("{n}'s raft key rotated"), T, || {
            let id = file(&s, n, "node-identity.pem");
            let new = raft_key_in(&id, Some(&kek))?;
            (!contains(&id, "PENDING") && new != old[i]).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
    }
    // The TLS keys were in the clear too: each manager renews its certificate with a new
    // key, as swarmkit does.
    let tls_key = |pem: &[u8]| {
        let text = String::from_utf8_lossy(pem);
        let at = text.find("-----BEGIN CERTIFICATE-----")?;
        Some(spki_b64(&text[at..]))
    };
    for (i, n) in ["vm1", "vm2"].iter().enumerate() {
        let before = tls_key(&copies[i]).expect("a certificate");
        wait_until(
            &format!("{n}'s certificate renewed with a new key"),
            T,
            || {
                let id = file(&s, n, "node-identity.pem");
                (!contains(&id, "RENEW") && tls_key(&id)? != before).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
    }
    let marker = "dek-rotation-secret-marker-5e1b";
    create_secret(&s, "vm1", "db_pass", marker);
    let secret_on_vm2 = || {
        let ls = s.shoal("vm2", &["secret", "ls", "--format", "{{.Name}}"]);
        (String::from_utf8_lossy(&ls.stdout).trim() == "db_pass").then_some(())
    };
    wait_until("vm2 has the secret", T, secret_on_vm2).unwrap();

    // The old key against vm2's store, vm2 stopped (killed).
    s.lab.stop("vm2").unwrap();
    let raft = s.lab.data_root("vm2").join("raft.redb");
    // The killed daemon's lock on the file can outlive it by moments (the kernel closes
    // its files after the process is seen gone); shoald itself retries such an open.
    use shoal_control::raft::store::OpenError;
    let opened = wait_until("vm2's store free of the killed daemon's lock", T, || {
        match shoal_control::raft::store::open(&raft, &old[1]) {
            Err(e) if !e.is_unusable() => None,
            other => Some(other),
        }
    })
    .unwrap();
    match opened {
        Err(OpenError::WrongKey) => {}
        Err(e) => panic!("the store did not open for another reason: {e}"),
        Ok(_) => panic!("the key from before autolock still opens vm2's raft store"),
    }
    assert!(!contains(&file(&s, "vm2", "raft.redb"), marker));
    // shoald on the old copy: the store is another key's.
    let sealed = file(&s, "vm2", "node-identity.pem");
    let identity = s.lab.data_root("vm2").join("node-identity.pem");
    std::fs::write(&identity, &copies[1]).unwrap();
    s.lab.start("vm2").unwrap();
    assert_eq!(
        s.ok("vm2", &["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "error"
    );
    let err = s.fails("vm2", &["secret", "ls"]);
    assert!(
        err.contains("it was encrypted with another key than this node's"),
        "{err}"
    );
    // Its own identity back: locked, unlocked, the secret is there.
    s.lab.stop("vm2").unwrap();
    std::fs::write(&identity, &sealed).unwrap();
    s.lab.start("vm2").unwrap();
    let (ok, err) = unlock(&s, "vm2", &kek.to_unlock_key());
    assert!(ok, "unlock: {err}\n{}", s.log_tails());
    wait_until("vm2 serves the secret again", T, secret_on_vm2).unwrap();
}

/// Node certificates are renewed before they expire, as swarmkit renews them (between
/// 50% and 80% of their lifetime), each with the swarm's `--cert-expiry`: with 20 s
/// certificates, a swarm of two managers and a worker keeps working for well over two
/// lifetimes, every node having had several certificates. Without renewal, mTLS between
/// the nodes stops at the first expiry. Below the manager's minimum, `--cert-expiry` is
/// refused in swarmkit's words.
#[test]
fn node_certificates_are_renewed_before_they_expire() {
    const T: Duration = Duration::from_secs(20);
    let s = Swarm::lab_with_daemon_args("certs", 3, &["--min-cert-expiry", "5s"]);
    let addr = s.addr("vm1");
    s.ok(
        "vm1",
        &[
            "swarm",
            "init",
            "--cert-expiry",
            "20s",
            "--advertise-addr",
            &addr,
            "--dispatcher-heartbeat",
            "1s",
        ],
    );
    s.join("vm2", "vm1", "manager");
    s.join("vm3", "vm1", "worker");
    s.wait_node("vm1", "vm3", "Ready", "", T);
    let err = s.fails("vm1", &["swarm", "update", "--cert-expiry", "4s"]);
    assert!(
        err.contains("minimum certificate expiry time is: 5s"),
        "{err}"
    );
    // `swarm ca` prints the root every node trusts; a worker is refused.
    let root = s.ok("vm2", &["swarm", "ca"]);
    let ca_pem = std::fs::read_to_string(s.lab.data_root("vm3").join("ca.pem")).unwrap();
    assert_eq!(root.trim(), ca_pem.trim());
    assert!(s.fails("vm3", &["swarm", "ca"]).contains(WORKER_REFUSED));
    let expiry = s.ok(
        "vm1",
        &[
            "info",
            "--format",
            "{{.Swarm.Cluster.Spec.CAConfig.NodeCertExpiry}}",
        ],
    );
    assert_eq!(expiry.trim(), "20000000000");
    let not_after = |node: &str| {
        let id = shoal_control::daemon::files::DataRoot(s.lab.data_root(node))
            .load_identity(None)
            .ok()?;
        let (from, until) = shoal_ca::validity_of_pem(&id.cert_pem).ok()?;
        let life = until.duration_since(from).ok()?.as_secs();
        // Issued for 20 s, backdated by an hour.
        assert_eq!(life, 3620, "{node}: a certificate for {life} s");
        Some(until)
    };
    let nodes = ["vm1", "vm2", "vm3"];
    // Three certificates each (the first and two renewals) take at least 10 + 10 s of
    // 20 s ones, beyond the first one's expiry.
    let mut seen: Vec<std::collections::BTreeSet<std::time::SystemTime>> =
        vec![Default::default(); 3];
    let waited = wait_until(
        "three certificates on every node",
        Duration::from_secs(60),
        || {
            for (i, n) in nodes.iter().enumerate() {
                if let Some(t) = not_after(n) {
                    seen[i].insert(t);
                }
            }
            seen.iter().all(|s| s.len() >= 3).then_some(())
        },
    );
    assert!(
        waited.is_ok(),
        "certificates seen per node: {:?}\n{}",
        seen.iter().map(|s| s.len()).collect::<Vec<_>>(),
        s.log_tails()
    );
    // Still one swarm: Raft between the managers, the worker's heartbeats, a write.
    for n in ["vm2", "vm3"] {
        s.wait_node(
            "vm1",
            n,
            "Ready",
            if n == "vm2" { "Reachable" } else { "" },
            T,
        );
    }
    s.ok(
        "vm2",
        &["node", "update", "--label-add", "renewed=yes", "vm3"],
    );
    assert_eq!(
        s.labels("vm1", "vm3").as_deref(),
        Some(r#"{"renewed":"yes"}"#)
    );
}

/// What `node inspect` says of a node's certificate issuer and trust root, and what
/// `info` says the swarm wants: `(issuer public key, trust root)`.
fn node_tls(s: &Swarm, on: &str, node: &str) -> Option<(String, String)> {
    let out = s.shoal(
        on,
        &[
            "node",
            "inspect",
            "--format",
            "{{.Description.TLSInfo.CertIssuerPublicKey}}|{{json .Description.TLSInfo.TrustRoot}}",
            node,
        ],
    );
    let out = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (key, root) = out.split_once('|')?;
    Some((key.to_string(), serde_json::from_str(root).ok()?))
}

/// Waits until `node` is Ready as `vm2` lists it, and (a manager) Reachable or Leader.
fn wait_ready(s: &Swarm, node: &str, manager: bool) {
    wait_until(&format!("{node} ready"), Duration::from_secs(40), || {
        let rows = s.nodes("vm2")?;
        let row = rows.iter().find(|r| r.0 == node)?;
        let status_ok = if manager {
            row.3 == "Reachable" || row.3 == "Leader"
        } else {
            row.3.is_empty()
        };
        (row.1 == "Ready" && status_ok).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", s.nodes("vm2"), s.log_tails()));
}

/// The issuer public key (base64 DER SubjectPublicKeyInfo) of a root, as TLSInfo has it.
fn spki_b64(root_pem: &str) -> String {
    use base64::Engine;
    let info = shoal_ca::issuer_info_of_ca(root_pem).unwrap();
    base64::engine::general_purpose::STANDARD.encode(info.public_key)
}

/// Root CA rotation, as swarm's: `swarm ca --rotate -d` makes a new root; nodes get
/// certificates from it (a node that is down holds the rotation until it is back), also
/// under a new leader after the first one is killed; then the new root is the only one:
/// every node trusts it alone and holds a certificate it issued, the swarm still takes
/// writes and runs its service, the old join token is refused and the new one admits a
/// node, and a node restarted afterwards comes back. A second `--rotate` shows docker's
/// progress and prints the root it ends with.
#[test]
fn root_ca_rotation() {
    const T: Duration = Duration::from_secs(40);
    let s = Swarm::lab("carot", 5);
    s.form(&[("vm2", "manager"), ("vm3", "manager"), ("vm4", "worker")]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "web",
            "--replicas",
            "2",
            "--constraint",
            "node.role==manager",
            "demo",
            "shoal-whoami",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    s.wait_running("web", 2);
    let old_root = s.ok("vm1", &["swarm", "ca"]);
    let old_worker = s.token("vm1", "worker");
    let ca_file = |n: &str| std::fs::read_to_string(s.lab.data_root(n).join("ca.pem")).unwrap();
    assert_eq!(ca_file("vm4").trim(), old_root.trim());

    // The worker is down: the rotation cannot finish without it.
    s.lab.stop("vm4").unwrap();
    let out = s.ok("vm1", &["swarm", "ca", "--rotate", "-d"]);
    assert_eq!(out, "", "a detached rotation prints nothing");
    let rotating = || {
        s.ok(
            "vm2",
            &[
                "info",
                "--format",
                "{{.Swarm.Cluster.RootRotationInProgress}}",
            ],
        )
        .trim()
        .to_string()
    };
    assert_eq!(rotating(), "true");
    let wanted = s
        .ok(
            "vm1",
            &[
                "info",
                "--format",
                "{{.Swarm.Cluster.TLSInfo.CertIssuerPublicKey}}",
            ],
        )
        .trim()
        .to_string();
    assert_ne!(
        wanted,
        spki_b64(&old_root),
        "the swarm wants the new root's certificates"
    );
    // The managers rotate, trusting both roots meanwhile; the swarm's root is still the old.
    wait_until("the managers' certificates from the new root", T, || {
        ["vm1", "vm2", "vm3"]
            .iter()
            .all(|n| node_tls(&s, "vm2", n).is_some_and(|(k, _)| k == wanted))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
    assert!(ca_file("vm2").starts_with(old_root.trim()));
    assert_eq!(ca_file("vm2").matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(s.ok("vm2", &["swarm", "ca"]).trim(), old_root.trim());
    assert_eq!(rotating(), "true", "finished without the down worker");

    // kill -9 of the leader mid-rotation: the next leader carries on from the Raft state.
    s.lab.stop("vm1").unwrap();
    s.wait_leader("vm2", T);
    assert_eq!(rotating(), "true");
    s.lab.start("vm4").unwrap();
    wait_until("the rotation to finish", Duration::from_secs(60), || {
        (rotating() == "false").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
    let new_root = s.ok("vm2", &["swarm", "ca"]);
    assert_ne!(new_root.trim(), old_root.trim());
    assert_eq!(spki_b64(&new_root), wanted);
    s.lab.start("vm1").unwrap();

    // Every node, the restarted leader too, trusts the new root alone and holds a
    // certificate from its key.
    for n in ["vm1", "vm2", "vm3", "vm4"] {
        wait_until(&format!("{n} on the new root"), T, || {
            (ca_file(n).trim() == new_root.trim()).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", ca_file(n), s.log_tails()));
        let id = shoal_control::daemon::files::DataRoot(s.lab.data_root(n))
            .load_identity(None)
            .unwrap();
        let issuer = shoal_ca::issuer_of_cert(&id.cert_pem, &new_root).expect("chains");
        assert_eq!(
            issuer.public_key,
            shoal_ca::issuer_info_of_ca(&new_root).unwrap().public_key,
            "{n}"
        );
        let config = shoal_ca::tls::client_config(&new_root, &id.cert_pem, &id.key_pem);
        assert!(config.is_ok(), "{n}");
    }
    for (n, m) in [("vm1", true), ("vm3", true), ("vm4", false)] {
        wait_ready(&s, n, m);
        wait_until(&format!("{n} reports the new root"), T, || {
            node_tls(&s, "vm2", n)
                .is_some_and(|(k, r)| k == wanted && r.trim() == new_root.trim())
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", node_tls(&s, "vm2", n)));
    }
    // The swarm takes writes and its service runs.
    s.ok(
        "vm3",
        &["node", "update", "--label-add", "rotated=yes", "vm4"],
    );
    assert_eq!(
        s.labels("vm2", "vm4").as_deref(),
        Some(r#"{"rotated":"yes"}"#)
    );
    s.wait_running("web", 2);

    // Join tokens changed: the old one is refused, the new one names the new root.
    let new_worker = s.token("vm2", "worker");
    assert_ne!(new_worker, old_worker);
    assert!(new_worker.contains(&shoal_ca::ca_digest(&new_root).unwrap()));
    let remote = format!("{}:2377", s.addr("vm2"));
    let err = s.fails("vm5", &["swarm", "join", "--token", &old_worker, &remote]);
    assert!(
        err.contains("remote CA does not match fingerprint. Expected: "),
        "{err}"
    );
    let out = s.ok("vm5", &["swarm", "join", "--token", &new_worker, &remote]);
    assert!(out.contains("joined a swarm as a worker"), "{out}");
    s.wait_node("vm2", "vm5", "Ready", "", T);

    // A node restarted after the rotation comes back.
    s.lab.stop("vm3").unwrap();
    s.lab.start("vm3").unwrap();
    wait_ready(&s, "vm3", true);

    // A rotation waited for: docker's progress on a pipe, then the root it ended with.
    let out = s.ok("vm2", &["swarm", "ca", "--rotate"]);
    assert!(
        out.starts_with(
            "desired root digest: \n  rotated TLS certificates: \n  rotated CA certificates:  \ndesired root digest: sha256:"
        ),
        "{out}"
    );
    let last = s.ok("vm2", &["swarm", "ca"]);
    assert!(out.ends_with(&last), "{out}");
    assert_ne!(last.trim(), new_root.trim());
    assert_eq!(rotating(), "false");
}

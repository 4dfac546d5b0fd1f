//! Root CA rotation decisions, as swarmkit makes them (`manager/controlapi/ca_rotation.go`
//! and `ca/reconciler.go`): what a `swarm ca --rotate` changes, which nodes have yet to
//! rotate, and when the rotation is over.

use shoal_ca::ClusterCa;

use crate::state::ClusterState;
use crate::types::{ClusterInfo, NodeTlsInfo, RootRotation};

/// What `swarm ca --rotate` asks for.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CaRotate {
    /// `--ca-cert`: the new root (PEM); without it a new root is made.
    pub ca_cert_pem: Option<String>,
    /// `--ca-key`: its key (PEM).
    pub ca_key_pem: Option<String>,
    /// `--cert-expiry`, in seconds.
    pub cert_expiry_s: Option<u64>,
}

/// What becomes of the cluster's rotation.
#[derive(Debug)]
pub enum Decision {
    /// Start a rotation to this root (replacing one under way: it starts over).
    Start(RootRotation),
    /// End the rotation under way, if any: the root given is the swarm's own.
    Abort,
    /// The root given is the one a rotation under way already moves to.
    Unchanged,
}

fn invalid(msg: impl std::fmt::Display) -> String {
    format!("rpc error: code = InvalidArgument desc = {msg}")
}

/// swarmkit's `validateCAConfig` for a `--rotate` (which always changes `ForceRotate`):
/// without `--ca-cert` a new root; with it, the root given, checked, unless it is the
/// swarm's own (the rotation under way ends) or the one already rotated to.
pub fn decide(cluster: &ClusterInfo, req: &CaRotate) -> Result<Decision, String> {
    let current = ClusterCa::from_pem(&cluster.ca_cert_pem, &cluster.ca_key_pem)
        .map_err(|e| format!("rpc error: code = Internal desc = {e}"))?;
    let (cert, key) =
        match (&req.ca_cert_pem, &req.ca_key_pem) {
            (None, Some(_)) => {
                return Err(invalid(
                    "if a signing CA key is provided, the signing CA cert must also be provided",
                ))
            }
            (Some(_), None) => return Err(invalid(
                "rotating to a root CA without its key (an external CA) is not supported by shoal",
            )),
            (None, None) => {
                let new = ClusterCa::generate()
                    .map_err(|e| format!("rpc error: code = Internal desc = {e}"))?;
                return start(&current, &new);
            }
            (Some(c), Some(k)) => (c, k),
        };
    // The root is kept, compared, printed and sent to every node as canonical PEM, as
    // swarmkit normalizes it: text around the block, CRLF line endings or a missing
    // final newline would otherwise make the same root two texts.
    let cert = &normalize(cert);
    if same_cert(cert, &cluster.ca_cert_pem) {
        ClusterCa::from_pem(cert, key).map_err(|e| invalid(key_error(e)))?;
        return Ok(Decision::Abort);
    }
    let new = current.check_new_root(cert, key).map_err(invalid)?;
    if let Some(r) = &cluster.root_rotation {
        if same_cert(cert, &r.ca_cert_pem) {
            return Ok(Decision::Unchanged);
        }
    }
    start(&current, &new)
}

fn key_error(e: shoal_ca::CaError) -> String {
    match e {
        shoal_ca::CaError::KeyMismatch => "certificate key mismatch".to_string(),
        other => other.to_string(),
    }
}

/// `pem` in canonical form; as given if it holds no certificate (the checks say so).
fn normalize(pem: &str) -> String {
    shoal_ca::normalize_certs(pem).unwrap_or_else(|_| pem.to_string())
}

/// Whether two PEM texts hold the same certificates (swarmkit compares them normalized).
fn same_cert(a: &str, b: &str) -> bool {
    matches!(
        (shoal_ca::normalize_certs(a), shoal_ca::normalize_certs(b)),
        (Ok(x), Ok(y)) if x == y
    )
}

/// A rotation to `new`, cross-signed by the swarm's current root: never by the root of a
/// rotation under way, which nodes do not trust yet.
fn start(current: &ClusterCa, new: &ClusterCa) -> Result<Decision, String> {
    let cross_signed_pem = current.cross_sign(new.cert_pem()).map_err(|e| {
        format!(
            "rpc error: code = Internal desc = unable to generate a cross-signed certificate for root rotation: {e}"
        )
    })?;
    Ok(Decision::Start(RootRotation {
        ca_cert_pem: new.cert_pem().to_string(),
        ca_key_pem: new.key_pem().to_string(),
        cross_signed_pem,
    }))
}

/// Whether a node reporting `tls` must get a new certificate: a rotation is under way and
/// its certificate is not from the new root's key (swarmkit's `IssuanceStateRotate`).
pub fn must_rotate(cluster: &ClusterInfo, tls: Option<&NodeTlsInfo>) -> bool {
    if cluster.root_rotation.is_none() {
        return false;
    }
    match cluster.desired_issuer() {
        Ok(issuer) => !tls.is_some_and(|t| t.issued_by(&issuer)),
        Err(_) => false,
    }
}

/// The nodes whose certificate is not yet from the new root, during a rotation. Every
/// node listed counts, down ones too, as in swarmkit: a node that is gone for good holds
/// the rotation until it is removed (`node rm`).
pub fn unconverged(state: &ClusterState) -> Vec<String> {
    let Some(cluster) = state.cluster.as_ref() else {
        return Vec::new();
    };
    state
        .nodes
        .values()
        .filter(|n| must_rotate(cluster, n.description.tls.as_ref()))
        .map(|n| n.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;
    use crate::types::{NodeState, Role};

    fn cluster_with_ca() -> (ClusterInfo, ClusterCa) {
        let ca = ClusterCa::generate().unwrap();
        let mut c = crate::state::tests::cluster();
        c.ca_cert_pem = ca.cert_pem().to_string();
        c.ca_key_pem = ca.key_pem().to_string();
        (c, ca)
    }

    fn node(id: &str, tls: Option<NodeTlsInfo>, state: NodeState) -> crate::types::NodeRecord {
        let mut n = crate::state::new_node_record(
            id.into(),
            1,
            Role::Worker,
            Default::default(),
            "10.0.0.1".into(),
            "10.0.0.1:2377".into(),
            chrono::Utc::now(),
        );
        n.description.tls = tls;
        n.state = state;
        n
    }

    /// What a node holding a certificate signed by `signer` (with `chain` after it) and
    /// trusting `trust` reports.
    fn report(signer: &ClusterCa, chain: &str, trust: &str) -> NodeTlsInfo {
        let (_, csr) = shoal_ca::new_node_key().unwrap();
        let cert = signer.sign_csr(&csr, "n1", Role::Worker, "c").unwrap();
        NodeTlsInfo::of_node(&format!("{cert}{chain}"), trust)
    }

    /// A rotation starts, nodes converge one by one (a down node counts), and it
    /// finishes: the new root is the only one, with new join tokens.
    #[test]
    fn a_rotation_waits_for_every_node_then_finishes() {
        let (cluster, old) = cluster_with_ca();
        let mut state = ClusterState {
            cluster: Some(cluster.clone()),
            ..Default::default()
        };
        let before = report(&old, "", old.cert_pem());
        for (id, st) in [("a", NodeState::Ready), ("b", NodeState::Down)] {
            state
                .nodes
                .insert(id.into(), node(id, Some(before.clone()), st));
        }
        assert!(unconverged(&state).is_empty(), "no rotation, nothing to do");
        let Decision::Start(rotation) = decide(&cluster, &CaRotate::default()).unwrap() else {
            panic!("no rotation started");
        };
        let based_on = old.digest();
        let r = state.apply(
            &Command::SetRootRotation {
                rotation: Some(rotation.clone()),
                based_on: based_on.clone(),
                cert_expiry_s: Some(7200),
            },
            1,
        );
        assert_eq!(r.error, None);
        let c = state.cluster.clone().unwrap();
        assert_eq!(c.cert_expiry_s, 7200);
        assert_eq!(unconverged(&state), ["a", "b"]);
        assert!(c.trust_pem().starts_with(old.cert_pem().trim_end()));
        assert!(c.trust_pem().contains(rotation.ca_cert_pem.trim_end()));
        // A node that rotated reports the new root's key as its issuer.
        let (signer, chain) = c.signer().unwrap();
        assert_eq!(chain, rotation.cross_signed_pem);
        let after = report(&signer, &chain, &c.trust_pem());
        assert!(!must_rotate(&c, Some(&after)));
        assert!(must_rotate(&c, Some(&before)));
        assert!(
            must_rotate(&c, None),
            "a node that reports nothing has not rotated"
        );
        state.nodes.get_mut("a").unwrap().description.tls = Some(after.clone());
        assert_eq!(unconverged(&state), ["b"], "a down node still counts");
        state.nodes.get_mut("b").unwrap().description.tls = Some(after);
        assert!(unconverged(&state).is_empty());
        let new_digest = shoal_ca::ca_digest(&rotation.ca_cert_pem).unwrap();
        let finish = |digest: &str| Command::FinishRootRotation {
            rotation_digest: digest.into(),
            worker_secret: "w2".into(),
            manager_secret: "m2".into(),
        };
        assert_eq!(
            state.apply(&finish(&based_on), 2).error.as_deref(),
            Some("target root rotation has changed")
        );
        assert_eq!(state.apply(&finish(&new_digest), 3).error, None);
        let c = state.cluster.clone().unwrap();
        assert_eq!(c.ca_cert_pem, rotation.ca_cert_pem);
        assert_eq!(c.ca_key_pem, rotation.ca_key_pem);
        assert!(c.root_rotation.is_none());
        assert_eq!(c.trust_pem(), rotation.ca_cert_pem);
        assert_eq!(
            (c.worker_secret.as_str(), c.manager_secret.as_str()),
            ("w2", "m2")
        );
        // A decision made before the rotation finished is refused.
        let stale = state.apply(
            &Command::SetRootRotation {
                rotation: None,
                based_on,
                cert_expiry_s: None,
            },
            4,
        );
        assert!(stale.error.unwrap().contains("out of sequence"));
    }

    /// A second rotation starts over, cross-signed by the swarm's root, not the one of
    /// the rotation it replaces; nodes that rotated to that one must rotate again.
    #[test]
    fn a_second_rotation_starts_over() {
        let (mut cluster, old) = cluster_with_ca();
        let Decision::Start(first) = decide(&cluster, &CaRotate::default()).unwrap() else {
            panic!()
        };
        cluster.root_rotation = Some(first.clone());
        let (signer, chain) = cluster.signer().unwrap();
        let rotated_once = report(&signer, &chain, &cluster.trust_pem());
        assert!(!must_rotate(&cluster, Some(&rotated_once)));
        let Decision::Start(second) = decide(&cluster, &CaRotate::default()).unwrap() else {
            panic!()
        };
        assert_ne!(second.ca_cert_pem, first.ca_cert_pem);
        let cross = ClusterCa::from_pem(&second.cross_signed_pem, &second.ca_key_pem);
        assert!(cross.is_ok(), "cross-signed certificate is for the new key");
        assert_eq!(
            shoal_ca::issuer_of_cert(&second.cross_signed_pem, old.cert_pem())
                .map(|i| i.public_key),
            Some(
                shoal_ca::issuer_info_of_ca(old.cert_pem())
                    .unwrap()
                    .public_key
            )
        );
        cluster.root_rotation = Some(second);
        assert!(must_rotate(&cluster, Some(&rotated_once)));
    }

    /// A root given in another PEM form than the canonical one (CRLF, no final newline,
    /// text around the block) is kept canonical: nodes report it as they trust it, so the
    /// rotation's progress sees every node trusting it. Any form of it is still the same
    /// root; a bundle that starts with the swarm's root is not that root.
    #[test]
    fn a_given_root_is_kept_in_canonical_pem() {
        let (mut cluster, old) = cluster_with_ca();
        let new = ClusterCa::generate().unwrap();
        let messy = |pem: &str| {
            format!(
                "subject=CN = swarm-ca\r\n{}",
                pem.trim_end().replace('\n', "\r\n")
            )
        };
        let given = |cert: String, key: &str| CaRotate {
            ca_cert_pem: Some(cert),
            ca_key_pem: Some(key.into()),
            cert_expiry_s: None,
        };
        let Decision::Start(r) =
            decide(&cluster, &given(messy(new.cert_pem()), new.key_pem())).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.ca_cert_pem, new.cert_pem());
        assert_eq!(crate::types::first_pem_cert(&r.ca_cert_pem), r.ca_cert_pem);
        cluster.root_rotation = Some(r);
        assert!(matches!(
            decide(&cluster, &given(messy(new.cert_pem()), new.key_pem())).unwrap(),
            Decision::Unchanged
        ));
        assert!(matches!(
            decide(&cluster, &given(messy(old.cert_pem()), old.key_pem())).unwrap(),
            Decision::Abort
        ));
        let bundle = format!("{}{}", old.cert_pem(), new.cert_pem());
        assert_eq!(
            decide(&cluster, &given(bundle, old.key_pem())).unwrap_err(),
            "rpc error: code = InvalidArgument desc = the desired CA certificate cannot contain multiple certificates"
        );
    }

    /// `--ca-cert`/`--ca-key` as swarmkit takes them.
    #[test]
    fn a_given_root_is_taken_as_swarmkit_takes_it() {
        let (mut cluster, old) = cluster_with_ca();
        let new = ClusterCa::generate().unwrap();
        let given = |c: &ClusterCa| CaRotate {
            ca_cert_pem: Some(c.cert_pem().into()),
            ca_key_pem: Some(c.key_pem().into()),
            cert_expiry_s: None,
        };
        let Decision::Start(r) = decide(&cluster, &given(&new)).unwrap() else {
            panic!()
        };
        assert_eq!(r.ca_cert_pem, new.cert_pem());
        cluster.root_rotation = Some(r);
        assert!(matches!(
            decide(&cluster, &given(&new)).unwrap(),
            Decision::Unchanged
        ));
        assert!(matches!(
            decide(&cluster, &given(&old)).unwrap(),
            Decision::Abort
        ));
        let key_only = CaRotate {
            ca_key_pem: Some(new.key_pem().into()),
            ..Default::default()
        };
        assert_eq!(
            decide(&cluster, &key_only).unwrap_err(),
            "rpc error: code = InvalidArgument desc = if a signing CA key is provided, the signing CA cert must also be provided"
        );
        let mismatched = CaRotate {
            ca_cert_pem: Some(new.cert_pem().into()),
            ca_key_pem: Some(old.key_pem().into()),
            cert_expiry_s: None,
        };
        assert_eq!(
            decide(&cluster, &mismatched).unwrap_err(),
            "rpc error: code = InvalidArgument desc = certificate key mismatch"
        );
    }
}

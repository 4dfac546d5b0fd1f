//! The swarm port's access rules, checked from inside a lab node with real certificates:
//! a worker's certificate cannot call manager APIs or take part in Raft, and a certificate
//! from another swarm's CA is refused at the handshake.

mod common;

use std::fs::File;
use std::sync::Arc;

use common::*;
use shoal_control::api::ApiRequest;
use shoal_control::peer::{self, PeerRequest, PeerResponse};
use shoal_control::wire;

/// Run `f` on a thread that has entered the lab node's network namespace.
fn in_node<T: Send + 'static>(lab: &Lab, node: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/shoal-{}-{node}", lab.name());
    std::thread::spawn(move || {
        let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace")
}

fn call(
    lab: &Lab,
    node: &str,
    addr: String,
    config: Arc<rustls::ClientConfig>,
    req: PeerRequest,
) -> Result<PeerResponse, String> {
    in_node(lab, node, move || {
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
    let (key, cert) = shoal_control::daemon::files::DataRoot(data.clone())
        .load_identity()
        .unwrap();
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
        PeerRequest::Vote(vote),
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

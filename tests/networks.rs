//! Overlay network objects in a real lab: the ingress network from init, create/ls/inspect/rm
//! with VNIs and subnets allocated in Raft, overlap and in-use errors, stacks' networks, and
//! allocations that survive a leader change.

mod common;

use std::time::Duration;

use common::*;

fn ipam(s: &Swarm, on: &str, net: &str) -> String {
    s.ok(
        on,
        &[
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Subnet}} {{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
            net,
        ],
    )
    .trim()
    .to_string()
}

#[test]
fn networks_are_allocated_in_raft() {
    let s = Swarm::lab("nets", 3);
    s.form(&[("vm2", "manager"), ("vm3", "manager")]);
    assert_eq!(ipam(&s, "vm1", "ingress"), "10.0.0.0/24 4096");
    let table = s.ok("vm1", &["network", "ls"]);
    assert!(
        table.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{table}"
    );
    assert!(table.contains("   ingress   overlay   swarm\n"), "{table}");

    s.ok(
        "vm1",
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.20.0.0/16",
            "--attachable",
            "mine",
        ],
    );
    s.ok("vm1", &["network", "create", "auto"]);
    assert_eq!(ipam(&s, "vm2", "mine"), "10.20.0.0/16 4097");
    assert_eq!(ipam(&s, "vm2", "auto"), "10.0.1.0/24 4098");

    // Overlapping subnets and duplicate names are refused and change nothing.
    let err = s.fails(
        "vm1",
        &["network", "create", "--subnet", "10.20.5.0/24", "clash"],
    );
    assert!(
        err.contains("Pool overlaps with other one on this address space"),
        "{err}"
    );
    let err = s.fails("vm1", &["network", "create", "auto"]);
    assert!(err.contains("already exists"), "{err}");
    let err = s.fails("vm1", &["network", "create", "-d", "bridge", "local"]);
    assert!(err.contains("only the overlay driver"), "{err}");
    assert_eq!(s.ok("vm1", &["network", "ls", "-q"]).lines().count(), 3);

    // In use by a service: refused; free again after the service goes.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "user",
            "--network",
            "mine",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let err = s.fails("vm1", &["network", "rm", "mine"]);
    assert!(err.contains("is in use by service"), "{err}");
    let err = s.fails(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "lost",
            "--network",
            "nope",
            "busybox",
            "sleep",
            "1",
        ],
    );
    assert!(err.contains("network nope not found"), "{err}");

    // A stack's default network takes the next free subnet and VNI.
    let compose = format!("{}/examples/docker-compose.yml", env!("CARGO_MANIFEST_DIR"));
    let out = s.ok("vm1", &["stack", "deploy", "-c", &compose, "webapp"]);
    assert!(
        out.starts_with("Creating network webapp_default\n"),
        "{out}"
    );
    assert_eq!(ipam(&s, "vm1", "webapp_default"), "10.0.2.0/24 4099");

    // Allocations survive a leader change, and a freed VNI/subnet is reused.
    s.lab.stop("vm1").unwrap();
    s.wait_leader("vm2", Duration::from_secs(20));
    assert_eq!(ipam(&s, "vm2", "webapp_default"), "10.0.2.0/24 4099");
    s.ok("vm2", &["network", "rm", "auto"]);
    s.ok("vm2", &["network", "create", "again"]);
    assert_eq!(ipam(&s, "vm3", "again"), "10.0.1.0/24 4098");
    s.ok("vm2", &["stack", "rm", "webapp"]);
    let err = s.fails("vm2", &["network", "inspect", "webapp_default"]);
    assert!(err.contains("No such network: webapp_default"), "{err}");
}

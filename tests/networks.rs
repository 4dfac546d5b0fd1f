//! Overlay network objects in a real lab: the ingress network from init, create/ls/inspect/rm
//! with VNIs and subnets allocated in Raft, overlap and in-use errors, stacks' networks, and
//! allocations that survive a leader change.

mod common;

use std::time::Duration;

use common::*;

/// The first network address of `svc`'s running task, once it runs.
fn running_addr(s: &Swarm, svc: &str) -> String {
    wait_until(
        &format!("{svc} running with an address"),
        Duration::from_secs(30),
        || {
            let tasks = s.inspect_running_tasks(
                svc,
                "{{.Status.State}} {{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}",
            );
            let (_, out) = tasks.first()?;
            let (state, cidr) = out.split_once(' ')?;
            (state == "running").then(|| cidr.split('/').next().unwrap_or("").to_string())
        },
    )
    .unwrap()
}

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
    assert_eq!(
        err,
        "Error response from daemon: network with name auto already exists\n"
    );
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
    // network ls filters, as docker's: a name matches whole or as a regular expression;
    // a dangling network is one no service uses; every Shoal network is custom.
    let names = |filters: &[&str]| {
        let mut args = vec!["network", "ls", "--format", "{{.Name}}"];
        for f in filters {
            args.extend(["-f", f]);
        }
        s.ok("vm1", &args)
    };
    assert_eq!(names(&["name=^(mine|auto)$"]), "auto\nmine\n");
    assert_eq!(names(&["dangling=true"]), "auto\ningress\n");
    assert_eq!(
        names(&["driver=overlay", "scope=swarm", "type=custom"])
            .lines()
            .count(),
        3
    );
    assert_eq!(names(&["type=builtin"]), "");
    assert_eq!(
        s.fails("vm1", &["network", "ls", "-f", "type=other"]),
        "Error response from daemon: invalid filter: 'type'='other'\n"
    );
    // Removing ingress asks first; no answer (stdin at its end) keeps it.
    let out = s.shoal("vm1", &["network", "rm", "ingress"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("Are you sure you want to continue? [y/N] "),
        "{out:?}"
    );
    assert_eq!(ipam(&s, "vm1", "ingress"), "10.0.0.0/24 4096");
    // --force: a network that does not exist is no error.
    assert_eq!(s.ok("vm1", &["network", "rm", "-f", "nope"]), "");
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
    // docker's other network ls placeholders.
    let ls = s.ok(
        "vm1",
        &[
            "network",
            "ls",
            "--format",
            r#"{{.Name}} {{.IPv4}} {{.IPv6}} {{.Label "com.docker.stack.namespace"}}"#,
        ],
    );
    assert!(ls.contains("\nwebapp_default true false webapp\n"), "{ls}");

    // Allocations survive a leader change, and a freed VNI/subnet is reused.
    s.lab.stop("vm1").unwrap();
    s.wait_leader("vm2", Duration::from_secs(20));
    assert_eq!(ipam(&s, "vm2", "webapp_default"), "10.0.2.0/24 4099");
    s.ok("vm2", &["network", "rm", "auto"]);
    s.ok("vm2", &["network", "create", "again"]);
    assert_eq!(ipam(&s, "vm3", "again"), "10.0.1.0/24 4098");
    // docker removes a stack's services sorted by name, then its networks.
    assert_eq!(
        s.ok("vm2", &["stack", "rm", "webapp"]),
        "Removing service webapp_db\nRemoving service webapp_web\nRemoving network webapp_default\n"
    );
    let err = s.fails("vm2", &["network", "inspect", "webapp_default"]);
    assert_eq!(
        err,
        "Error response from daemon: network webapp_default not found\n"
    );

    // `network prune` asks first, and no answer (stdin at its end) keeps everything.
    let ls = || s.ok("vm2", &["network", "ls", "--format", "{{.Name}}"]);
    let out = s.shoal("vm2", &["network", "prune"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(ls(), "again\ningress\nmine\n");
    // With -f: only the custom networks no service uses go (not ingress, not `mine`,
    // which `user` uses), as the label filters choose, listed by name.
    s.ok("vm2", &["network", "create", "--label", "keep=1", "kept"]);
    assert_eq!(
        s.ok(
            "vm2",
            &["network", "prune", "-f", "--filter", "label!=keep"]
        ),
        "Deleted Networks:\nagain\n\n"
    );
    assert_eq!(ls(), "ingress\nkept\nmine\n");
    assert_eq!(
        s.fails("vm2", &["network", "prune", "-f", "--filter", "name=kept"]),
        "Error response from daemon: invalid filter 'name'\n"
    );
    assert_eq!(
        s.ok(
            "vm2",
            &["network", "prune", "--force", "--filter", "label=keep=1"]
        ),
        "Deleted Networks:\nkept\n\n"
    );
    assert_eq!(s.ok("vm2", &["network", "prune", "-f"]), "");
    assert_eq!(ls(), "ingress\nmine\n");
}

/// Two tasks on different nodes reach each other over their overlay; a task on another
/// overlay cannot; after a drain moves a task, its peer reaches it at its new place; task
/// MTU is the underlay's minus 50.
/// Creates in flight at once, on two managers, each allocating from the state it
/// read: every one succeeds, and no two networks share a VNI or a subnet (the Raft
/// state machine refuses a taken one, and the create picks again), nor a name
/// (the second create of a name is refused).
#[test]
fn concurrent_network_creates_never_share_an_allocation() {
    let s = Swarm::lab("netrace", 2);
    s.form(&[("vm2", "manager")]);
    let names: Vec<String> = (0..6).map(|i| format!("race{i}")).collect();
    let outs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let on = if i % 2 == 0 { "vm1" } else { "vm2" };
                let s = &s;
                scope.spawn(move || s.shoal(on, &["network", "create", name]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (name, out) in names.iter().zip(&outs) {
        assert!(
            out.status.success(),
            "network create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut subnets = std::collections::BTreeSet::new();
    let mut vnis = std::collections::BTreeSet::new();
    for name in names.iter().map(String::as_str).chain(["ingress"]) {
        let got = ipam(&s, "vm1", name);
        let (subnet, vni) = got.split_once(' ').expect("subnet and VNI");
        assert!(
            subnets.insert(subnet.to_string()),
            "{name}: subnet {subnet} twice"
        );
        assert!(vnis.insert(vni.to_string()), "{name}: VNI {vni} twice");
    }
    // The same name at once from both managers: one create wins.
    let outs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["vm1", "vm2"]
            .into_iter()
            .map(|on| {
                let s = &s;
                scope.spawn(move || s.shoal(on, &["network", "create", "twin"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "exactly one create of `twin`: {outs:?}");
    let lost = outs.iter().find(|o| !o.status.success()).unwrap();
    assert!(
        String::from_utf8_lossy(&lost.stderr).contains("network with name twin already exists"),
        "{lost:?}"
    );
    // One published port asked for by four services at once, from both managers:
    // one service gets it, the others are refused and not created.
    let outs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let s = &s;
                let on = if i % 2 == 0 { "vm1" } else { "vm2" };
                scope.spawn(move || {
                    let name = format!("pub{i}");
                    s.shoal(
                        on,
                        &[
                            "service",
                            "create",
                            "-d",
                            "--name",
                            &name,
                            "--publish",
                            "8090:80",
                            "demo",
                            "sleep",
                            "600",
                        ],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "exactly one service publishes 8090: {outs:?}");
    for lost in outs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&lost.stderr);
        assert!(
            err.contains("port '8090' is already in use by service 'pub"),
            "{err}"
        );
    }
    let listed = s.ok(
        "vm1",
        &["service", "ls", "--format", "{{.Name}} {{.Ports}}"],
    );
    assert_eq!(
        listed.lines().filter(|l| l.contains("8090")).count(),
        1,
        "{listed}"
    );
}

#[test]
fn tasks_talk_over_the_overlay() {
    let s = Swarm::lab("ovl", 3);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);
    s.ok("vm1", &["network", "create", "front"]);
    s.ok("vm1", &["network", "create", "back"]);
    let web = |name: &str, net: &str, node: &str| {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                "-d",
                "--name",
                name,
                "--network",
                net,
                "--constraint",
                &format!("node.hostname == {node}"),
                "demo",
                "shoal-whoami",
                "--listen",
                "0.0.0.0:80",
            ],
        );
    };
    web("a", "front", "vm1");
    web("b", "front", "vm3");
    web("c", "back", "vm3");
    let addr = |svc: &str| running_addr(&s, svc);
    let (a, b, c) = (addr("a"), addr("b"), addr("c"));
    let curl = |from: &str, ip: &str| {
        s.shoal(
            "vm1",
            &[
                "exec",
                from,
                "curl",
                "-s",
                "-m",
                "2",
                &format!("http://{ip}/"),
            ],
        )
    };
    let reach = |from: &str, ip: &str, host_line: &str| {
        wait_until(
            &format!("{from} reaching {ip}"),
            Duration::from_secs(10),
            || {
                String::from_utf8_lossy(&curl(from, ip).stdout)
                    .contains(host_line)
                    .then_some(())
            },
        )
        .unwrap()
    };
    reach("a.1", &b, "Task: b.1");
    reach("b.1", &a, "Task: a.1");
    verbose_inspect_shows_tasks(&s, &[("a", &a, "vm1"), ("b", &b, "vm3")]);
    // Both ways through the overlay's eBPF fast path, not the kernel VXLAN device.
    for node in ["vm1", "vm3"] {
        let counted = s.ok(
            "vm1",
            &[
                "debug",
                "lb",
                node,
                "--format",
                "{{.Overlay.Encapsulated}} {{.Overlay.Decapsulated}}",
            ],
        );
        let n: Vec<u64> = counted
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        assert!(n.len() == 2 && n[0] > 0 && n[1] > 0, "{node}: {counted}");
    }
    // Different overlays are isolated.
    let out = curl("a.1", &c);
    assert!(!out.status.success(), "a reached c across networks");
    // MTU: lab underlay 1500.
    let link = s.ok(
        "vm1",
        &["exec", "a.1", "ip", "-o", "link", "show", "dev", "eth0"],
    );
    assert!(link.contains(" mtu 1450 "), "{link}");
    // Move b from vm3 to vm2: a reaches it at its new place.
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--constraint-rm",
            "node.hostname == vm3",
            "--constraint-add",
            "node.hostname == vm2",
            "b",
        ],
    );
    let moved = wait_until("b on vm2", Duration::from_secs(30), || {
        let nodes = s.running_ps("b", "{{.Node}} {{.CurrentState}}");
        nodes.starts_with("vm2 Running").then_some(())
    });
    moved.unwrap();
    let b2 = addr("b");
    reach("a.1", &b2, "Node: vm2");
}

/// `network inspect -v front` (a and b run there, c on back): docker's Services with
/// each service's VIP as `service inspect` has it and its running task with its address
/// and its node's; the nodes as Peers. Without -v there is neither.
fn verbose_inspect_shows_tasks(s: &Swarm, tasks: &[(&str, &str, &str)]) {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = s.ok("vm1", args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed {out:?}: {e}"))
    };
    let plain = json(&["network", "inspect", "front"]);
    assert!(plain[0].get("Services").is_none(), "{plain}");
    assert!(plain[0].get("Peers").is_none(), "{plain}");
    let front = plain[0]["Id"].as_str().unwrap().to_string();
    let v = json(&["network", "inspect", "-v", "front"]);
    let services = v[0]["Services"].as_object().expect("Services");
    let names: Vec<&String> = services.keys().collect();
    assert_eq!(names, ["a", "b"], "{v}");
    let mut peers: Vec<(String, String)> = Vec::new();
    for (svc, ip, node) in tasks {
        let vips = json(&["service", "inspect", svc]);
        let vip = vips[0]["Endpoint"]["VirtualIPs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["NetworkID"] == front.as_str())
            .and_then(|v| v["Addr"].as_str())
            .unwrap_or_else(|| panic!("{svc} has no VIP on front: {vips}"));
        let info = &services[*svc];
        assert_eq!(info["VIP"], vip.split('/').next().unwrap(), "{svc}: {info}");
        assert_eq!(info["Ports"], serde_json::json!([]), "{svc}: {info}");
        let id = s.ok(
            "vm1",
            &[
                "service",
                "ps",
                "-q",
                "--no-trunc",
                "-f",
                "desired-state=running",
                svc,
            ],
        );
        let id = id.trim();
        let task = &info["Tasks"][0];
        assert_eq!(info["Tasks"].as_array().unwrap().len(), 1, "{svc}: {info}");
        assert_eq!(task["Name"], format!("{svc}.1.{id}"), "{svc}: {info}");
        assert_eq!(task["EndpointIP"], *ip, "{svc}: {info}");
        assert_eq!(task["Info"]["Host IP"], s.addr(node), "{svc}: {info}");
        assert_eq!(task["EndpointID"].as_str().unwrap().len(), 64, "{info}");
        peers.push((node.to_string(), s.addr(node)));
    }
    let shown: Vec<(String, String)> = v[0]["Peers"]
        .as_array()
        .expect("Peers")
        .iter()
        .map(|p| {
            (
                p["Name"].as_str().unwrap().into(),
                p["IP"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(shown, peers, "{v}");
}

/// The running tasks of `svc`, by slot: (task id, address on its first network).
fn running_slots(s: &Swarm, svc: &str) -> std::collections::BTreeMap<String, (String, String)> {
    let mut slots = std::collections::BTreeMap::new();
    let format = "{{.Slot}} {{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}";
    for (id, out) in s.inspect_running_tasks(svc, format) {
        let (slot, cidr) = out.split_once(' ').unwrap();
        let addr = cidr.split('/').next().unwrap().to_string();
        slots.insert(slot.to_string(), (id, addr));
    }
    slots
}

/// The embedded DNS at 127.0.0.11 in every task: service names answer the VIP (or, with
/// dnsrr, the running tasks), `tasks.<service>` the running tasks, stack aliases too, and
/// names of services on other networks are NXDOMAIN; reverse lookups name every task on
/// the asker's networks, on either node, whatever its endpoint mode, and those names
/// (without or with the network), short task IDs and hostnames resolve back, as docker
/// resolves a task's container; tasks on other networks are NXDOMAIN; a service on two
/// shared networks answers from the first in docker's order only. Checked with dig
/// inside a task.
#[test]
fn embedded_dns_answers_service_names() {
    let s = Swarm::lab("dns", 2);
    s.form(&[("vm2", "worker")]);
    s.ok("vm1", &["network", "create", "app"]);
    s.ok("vm1", &["network", "create", "other"]);
    let create = |args: &[&str]| {
        let mut argv = vec!["service", "create", "-d"];
        argv.extend_from_slice(args);
        s.ok("vm1", &argv);
    };
    create(&[
        "--name",
        "db",
        "--replicas",
        "2",
        "--network",
        "app",
        "demo",
        "shoal-whoami",
        "--listen",
        "0.0.0.0:80",
    ]);
    // Two replicas, one on each node: one is on another node than the client,
    // which no load balancer state names (no VIP, no published port).
    create(&[
        "--name",
        "rr",
        "--replicas",
        "2",
        "--endpoint-mode",
        "dnsrr",
        "--hostname",
        "rrhost",
        "--network",
        "app",
        "demo",
        "shoal-whoami",
        "--listen",
        "0.0.0.0:80",
    ]);
    create(&[
        "--name",
        "g",
        "--mode",
        "global",
        "--network",
        "app",
        "demo",
        "sleep",
        "600",
    ]);
    create(&[
        "--name",
        "far",
        "--network",
        "other",
        "demo",
        "sleep",
        "600",
    ]);
    create(&[
        "--name",
        "client",
        "--network",
        "app",
        "demo",
        "sleep",
        "600",
    ]);
    let dig = |name: &str| -> String {
        let out = s.shoal(
            "vm1",
            &["exec", "client.1", "dig", "@127.0.0.11", name, "+short"],
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join(" ")
    };
    let vip = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{(index .Endpoint.VirtualIPs 0).Addr}}",
            "db",
        ],
    );
    let vip = vip.trim().split('/').next().unwrap().to_string();
    wait_until("db resolves to its VIP", Duration::from_secs(20), || {
        (dig("db") == vip).then_some(())
    })
    .unwrap();
    wait_until(
        "tasks.db resolves to both tasks",
        Duration::from_secs(20),
        || (dig("tasks.db").split(' ').count() == 2).then_some(()),
    )
    .unwrap();
    assert!(!dig("tasks.db").contains(&vip));
    s.wait_running_on("rr", &["vm1", "vm2"]);
    // A short TTL (shoald --dns-ttl, default 5 s), not swarm's 600 s.
    let answer = s.ok(
        "vm1",
        &[
            "exec",
            "client.1",
            "dig",
            "@127.0.0.11",
            "db",
            "+noall",
            "+answer",
        ],
    );
    let ttl: Vec<&str> = answer.split_whitespace().collect();
    assert_eq!(ttl.get(1), Some(&"5"), "{answer}");
    // dnsrr: the name is the task itself, so a client reaches it by name.
    let out = s.ok(
        "vm1",
        &["exec", "client.1", "curl", "-s", "-m", "2", "http://rr/"],
    );
    assert!(out.contains("Task: rr."), "{out}");
    // A service on another network is not visible.
    let status = s.ok(
        "vm1",
        &[
            "exec",
            "client.1",
            "dig",
            "@127.0.0.11",
            "far",
            "+noall",
            "+comments",
        ],
    );
    assert!(status.contains("status: NXDOMAIN"), "{status}");
    // Reverse lookups are answered here, as docker does: a task's address gives
    // `<service>.<slot>.<task id>.<network>.`, the VIP `<service>.<network>.`,
    // another address of the network NXDOMAIN (none reaches the node's resolvers).
    let dig_x = |addr: &str, out: &str| -> String {
        s.ok(
            "vm1",
            &["exec", "client.1", "dig", "@127.0.0.11", "-x", addr, out],
        )
        .trim()
        .to_string()
    };
    for svc in ["db", "rr"] {
        let running = running_slots(&s, svc);
        assert_eq!(running.len(), 2, "{running:?}");
        let mut addrs = Vec::new();
        for (slot, (id, addr)) in running {
            let want = format!("{svc}.{slot}.{id}.app.");
            wait_until(
                &format!("dig -x {addr} gives {want}"),
                Duration::from_secs(20),
                || (dig_x(&addr, "+short") == want).then_some(()),
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
            addrs.push(addr);
        }
        addrs.sort();
        // Forward lookups are unchanged: tasks.<service> (and a dnsrr name) give the
        // running tasks.
        let tasks = addrs.join(" ");
        let names = if svc == "rr" {
            vec!["tasks.rr", "rr"]
        } else {
            vec!["tasks.db"]
        };
        for name in names {
            wait_until(
                &format!("{name} gives {tasks}"),
                Duration::from_secs(20),
                || (dig(name) == tasks).then_some(()),
            )
            .unwrap();
        }
    }
    assert_eq!(dig_x(&vip, "+short"), "db.app.");
    let unused = format!("{}.250", vip.rsplit_once('.').unwrap().0);
    let status = dig_x(&unused, "+comments");
    assert!(status.contains("status: NXDOMAIN"), "{status}");
    // Forward lookups of task names, as docker answers them for a task's container:
    // the name a reverse lookup gives, without or with its network, the short ID, and
    // the hostname (which both rr tasks have).
    let mut rr_addrs = Vec::new();
    for svc in ["db", "rr"] {
        for (slot, (id, addr)) in running_slots(&s, svc) {
            let name = format!("{svc}.{slot}.{id}");
            for n in [name.clone(), format!("{name}.app."), id[..12].to_string()] {
                assert_eq!(dig(&n), addr, "{n}");
            }
            if svc == "rr" {
                rr_addrs.push(addr);
            }
        }
    }
    rr_addrs.sort();
    assert_eq!(dig("rrhost"), rr_addrs.join(" "));
    // A global task is `<service>.<node id>.<task id>`, both ways.
    s.wait_running_on("g", &["vm1", "vm2"]);
    let format = "{{.NodeID}} {{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}";
    for (id, out) in s.inspect_running_tasks("g", format) {
        let (node, cidr) = out.split_once(' ').unwrap();
        let addr = cidr.split('/').next().unwrap();
        let name = format!("g.{node}.{id}");
        wait_until(
            &format!("{name} gives {addr}"),
            Duration::from_secs(20),
            || (dig(&name) == addr).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}: {}", dig(&name)));
        assert_eq!(dig_x(addr, "+short"), format!("{name}.app."));
    }
    // A task on a network the asker is not on has no name here: NXDOMAIN (answered
    // here, as such a name means nothing to the node's resolvers).
    let (far_id, _) = running_slots(&s, "far")["1"].clone();
    for name in [
        format!("far.1.{far_id}"),
        format!("far.1.{far_id}.app"),
        far_id[..12].to_string(),
    ] {
        let status = s.ok(
            "vm1",
            &["exec", "client.1", "dig", "@127.0.0.11", &name, "+comments"],
        );
        assert!(status.contains("status: NXDOMAIN"), "{name}: {status}");
    }
    // A service on two networks the asker shares with it: docker's resolver answers
    // from the first network in its order (by name: "app" before "other", whatever
    // the order they were attached in), that network's VIP and tasks alone.
    create(&[
        "--name",
        "both",
        "--network",
        "other",
        "--network",
        "app",
        "demo",
        "sleep",
        "600",
    ]);
    create(&[
        "--name",
        "client2",
        "--network",
        "other",
        "--network",
        "app",
        "demo",
        "sleep",
        "600",
    ]);
    let on_app = |format: &str, of: &str| -> String {
        let out = s.ok("vm1", &["inspect", "--format", format, of]);
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix("app="))
            .unwrap_or_else(|| panic!("no app address in {out:?}"))
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let app_id = s.ok("vm1", &["network", "inspect", "--format", "{{.Id}}", "app"]);
    let both_vip = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            &format!(
                "{{{{range .Endpoint.VirtualIPs}}}}{{{{if eq .NetworkID \"{}\"}}}}app={{{{.Addr}}}}{{{{end}}}} {{{{end}}}}",
                app_id.trim()
            ),
            "both",
        ],
    );
    let both_vip = both_vip
        .trim()
        .strip_prefix("app=")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let both_task = wait_until("both running", Duration::from_secs(30), || {
        running_slots(&s, "both").get("1").map(|(id, _)| id.clone())
    })
    .unwrap();
    let both_task = on_app(
        "{{range .NetworksAttachments}}{{.Network.Spec.Name}}={{index .Addresses 0}} {{end}}",
        &both_task,
    );
    let dig2 = |name: &str| -> String {
        let out = s.shoal(
            "vm1",
            &["exec", "client2.1", "dig", "@127.0.0.11", name, "+short"],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .replace('\n', " ")
    };
    wait_until(
        &format!("both gives {both_vip} alone"),
        Duration::from_secs(20),
        || (dig2("both") == both_vip).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", dig2("both")));
    wait_until(
        &format!("tasks.both gives {both_task} alone"),
        Duration::from_secs(20),
        || (dig2("tasks.both") == both_task).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", dig2("tasks.both")));
    let resolv = s.ok("vm1", &["exec", "client.1", "cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 127.0.0.11\n"), "{resolv}");
    // A stack's services answer their short names (aliases) on the stack network.
    let compose = format!("{}/examples/docker-compose.yml", env!("CARGO_MANIFEST_DIR"));
    s.ok("vm1", &["node", "update", "--label-add", "os=linux", "vm2"]);
    s.ok("vm1", &["stack", "deploy", "-c", &compose, "webapp"]);
    wait_until("webapp_web running", Duration::from_secs(30), || {
        let out = s.running_ps("webapp_web", "{{.CurrentState}}");
        out.starts_with("Running").then_some(())
    })
    .unwrap();
    let db_vip = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{(index .Endpoint.VirtualIPs 0).Addr}}",
            "webapp_db",
        ],
    );
    let db_vip = db_vip.trim().split('/').next().unwrap().to_string();
    // The db task's hostname is `db` too (the compose file's `hostname: db`), and a
    // hostname is one of a task's names, as docker's: `db` gives the VIP and the task.
    let (_, db_task) = running_slots(&s, "webapp_db")["1"].clone();
    let mut want = [db_vip, db_task];
    want.sort();
    let want = want.join(" ");
    wait_until(
        &format!("the web task resolving db to {want}"),
        Duration::from_secs(20),
        || {
            let out = s.shoal(
                "vm1",
                &["exec", "webapp_web.1", "dig", "@127.0.0.11", "db", "+short"],
            );
            let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            (lines.join(" ") == want).then_some(())
        },
    )
    .unwrap();
}

/// A task asked to stop leaves the embedded DNS at once, as docker disables a task's
/// service binding before it stops the container: right after a scale-down, while the
/// removed task still runs through its stop grace period, `tasks.<svc>`, the dnsrr name,
/// its container name and a reverse lookup of its address no longer give it, from a task on its own node
/// and from one on the other node.
#[test]
fn a_stopping_task_leaves_dns_at_once() {
    let s = Swarm::lab("dnsstop", 2);
    s.form(&[("vm2", "worker")]);
    s.ok("vm1", &["network", "create", "app"]);
    let create = |args: &[&str]| {
        let mut argv = vec!["service", "create", "-d"];
        argv.extend_from_slice(args);
        s.ok("vm1", &argv);
    };
    // The shell and its sleep ignore SIGTERM: a removed task runs its whole grace (60 s).
    create(&[
        "--name",
        "slow",
        "--replicas",
        "2",
        "--endpoint-mode",
        "dnsrr",
        "--network",
        "app",
        "--stop-grace-period",
        "60s",
        "demo",
        "sh",
        "-c",
        "trap '' TERM; sleep 600",
    ]);
    for (name, node) in [("c1", "vm1"), ("c2", "vm2")] {
        create(&[
            "--name",
            name,
            "--network",
            "app",
            "--constraint",
            &format!("node.hostname=={node}"),
            "demo",
            "sleep",
            "600",
        ]);
    }
    s.wait_running_on("slow", &["vm1", "vm2"]);
    s.wait_running_on("c1", &["vm1"]);
    s.wait_running_on("c2", &["vm2"]);
    let dig = |client: &str, args: &[&str]| -> String {
        let mut argv = vec!["exec", client, "dig", "@127.0.0.11"];
        argv.extend_from_slice(args);
        let out = s.shoal("vm1", &argv);
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join(" ")
    };
    let slots = running_slots(&s, "slow");
    let (gone_id, gone) = slots["2"].clone();
    let (_, kept) = slots["1"].clone();
    let both = {
        let mut v = [kept.clone(), gone.clone()];
        v.sort();
        v.join(" ")
    };
    for client in ["c1.1", "c2.1"] {
        wait_until(
            &format!("tasks.slow gives both tasks in {client}"),
            Duration::from_secs(20),
            || (dig(client, &["tasks.slow", "+short"]) == both).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
        let want = format!("slow.2.{gone_id}.app.");
        assert_eq!(dig(client, &["-x", &gone, "+short"]), want);
        assert_eq!(dig(client, &[&format!("slow.2.{gone_id}"), "+short"]), gone);
    }

    s.ok("vm1", &["service", "scale", "-d", "slow=1"]);
    for client in ["c1.1", "c2.1"] {
        wait_until(
            &format!("tasks.slow without the removed task in {client}"),
            Duration::from_millis(1500),
            || (dig(client, &["tasks.slow", "+short"]) == kept).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}: {}", dig(client, &["tasks.slow", "+short"])));
        assert_eq!(dig(client, &["slow", "+short"]), kept);
        let status = dig(client, &["-x", &gone, "+comments"]);
        assert!(status.contains("status: NXDOMAIN"), "{status}");
        // Nor does its container name answer any more.
        let status = dig(client, &[&format!("slow.2.{gone_id}.app"), "+comments"]);
        assert!(status.contains("status: NXDOMAIN"), "{status}");
    }
    // All the while the removed task runs, and is reachable (its endpoint stays).
    let state = s.ok(
        "vm1",
        &[
            "inspect",
            "--format",
            "{{.DesiredState}} {{.Status.State}}",
            &gone_id,
        ],
    );
    assert_eq!(state.trim(), "remove running");
    let ping = s.shoal(
        "vm1",
        &["exec", "c1.1", "ping", "-c", "1", "-W", "2", &gone],
    );
    assert!(ping.status.success(), "{ping:?}");
}

/// `swarm leave` stops the node's tasks and takes its overlay with it; the swarm moves the
/// work elsewhere.
#[test]
fn leave_takes_tasks_and_overlay_along() {
    let s = Swarm::lab("lvnet", 2);
    s.form(&[("vm2", "worker")]);
    s.ok("vm1", &["network", "create", "app"]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "w",
            "--network",
            "app",
            "--constraint",
            "node.role == worker",
            "demo",
            "sleep",
            "600",
        ],
    );
    let (id, pid) = wait_until("w running on vm2", Duration::from_secs(30), || {
        let tasks =
            s.inspect_running_tasks("w", "{{.Status.State}} {{.Status.ContainerStatus.PID}}");
        let (id, out) = tasks.into_iter().next()?;
        let (state, pid) = out.split_once(' ')?;
        (state == "running")
            .then(|| (id.clone(), pid.parse::<i32>().ok()))?
            .1
            .map(|p| (id, p))
    })
    .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    s.ok("vm2", &["swarm", "leave"]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "task {id} still runs after leave"
    );
    let left = std::fs::read_dir(s.lab.data_root("vm2").join("netns"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "overlay namespaces left behind");
    s.wait_node("vm1", "vm2", "Down", "", Duration::from_secs(20));
}

/// On a jumbo-frame underlay (MTU 9000) tasks get 8950, and full-size packets cross nodes.
#[test]
fn jumbo_underlay_gives_tasks_underlay_minus_50() {
    let s = Swarm::lab_with_mtu("jumbo", 2, 9000);
    s.form(&[("vm2", "worker")]);
    s.ok("vm1", &["network", "create", "big"]);
    for (name, node) in [("p", "vm1"), ("q", "vm2")] {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                "-d",
                "--name",
                name,
                "--network",
                "big",
                "--constraint",
                &format!("node.hostname == {node}"),
                "demo",
                "sleep",
                "600",
            ],
        );
    }
    let q_ip = running_addr(&s, "q");
    wait_until("p running", Duration::from_secs(30), || {
        s.shoal("vm1", &["exec", "p.1", "true"])
            .status
            .success()
            .then_some(())
    })
    .unwrap();
    let link = s.ok(
        "vm1",
        &["exec", "p.1", "ip", "-o", "link", "show", "dev", "eth0"],
    );
    assert!(link.contains(" mtu 8950 "), "{link}");
    // 8950 - 28 bytes of IP and ICMP headers, with don't-fragment.
    wait_until(
        "a full-size ping across nodes",
        Duration::from_secs(10),
        || {
            s.shoal(
                "vm1",
                &[
                    "exec", "p.1", "ping", "-c1", "-W1", "-M", "do", "-s", "8922", &q_ip,
                ],
            )
            .status
            .success()
            .then_some(())
        },
    )
    .unwrap();
}

/// The running task of `svc` other than `not`: (id, node, address, running since as Unix
/// seconds), once there is one.
fn running_task(s: &Swarm, svc: &str, not: &str) -> Option<(String, String, String, f64)> {
    let rows = s.running_ps(svc, "{{.ID}} {{.Node}}");
    let (id, node) = rows
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(id, _)| *id != not)?;
    let out = s.ok(
        "vm1",
        &[
            "inspect",
            "--format",
            "{{.Status.State}} {{.Status.Timestamp}} {{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}",
            id,
        ],
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    if f.len() != 3 || f[0] != "running" {
        return None;
    }
    let since = unix_time(f[1]).unwrap_or_else(|| panic!("bad timestamp in {out:?}"));
    let ip = f[2].split('/').next()?.to_string();
    Some((id.to_string(), node.to_string(), ip, since))
}

/// Seconds since the Unix epoch of a UTC timestamp as shoal prints it, e.g.
/// `2026-11-26T15:11:53.86315498Z`.
fn unix_time(ts: &str) -> Option<f64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    Some(secs as f64 + format!("0.{frac}").parse::<f64>().ok()?)
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

#[test]
fn unix_time_parses_shoal_timestamps() {
    assert_eq!(unix_time("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(unix_time("2000-03-01T00:00:01.5Z"), Some(951_868_801.5));
    assert_eq!(unix_time("2026-11-26T15:11:53Z"), Some(1_795_705_913.0));
    assert_eq!(unix_time("2026-11-26 15:11:53"), None);
}

/// A command's stdout inside network `net_id`'s namespace on `node`, as that node's daemon
/// made it: the namespace is a file under the node's data root (NodeOverlay::network_netns),
/// bind-mounted in the daemon's own mount namespace, so that is entered first. Err when
/// the namespace is not there or the command fails.
fn in_network_ns(s: &Swarm, node: &str, net_id: &str, cmd: &[&str]) -> Result<String, String> {
    let data = s.lab.data_root(node);
    let pid_file = data.parent().expect("node dir").join("shoald.pid");
    let pid =
        std::fs::read_to_string(&pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let netns = data.join("netns").join(net_id);
    let out = std::process::Command::new("nsenter")
        .args(["-t", pid.trim(), "-m", "--", "nsenter"])
        .arg(format!("--net={}", netns.display()))
        .arg("--")
        .args(cmd)
        .output()
        .map_err(|e| format!("running nsenter: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} in {} on {node}: {}",
            netns.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `bridge fdb show` and `ip neigh show` lines in network `net_id`'s namespace on `node`.
fn overlay_entries(s: &Swarm, node: &str, net_id: &str) -> Result<Vec<String>, String> {
    let fdb = in_network_ns(s, node, net_id, &["bridge", "fdb", "show"])?;
    let neigh = in_network_ns(s, node, net_id, &["ip", "neigh", "show"])?;
    Ok(fdb
        .lines()
        .chain(neigh.lines())
        .map(str::to_string)
        .collect())
}

/// The MAC a task's address gets (Docker's scheme: 02:42 and the address bytes).
fn task_mac(ip: &str) -> String {
    let ip: std::net::Ipv4Addr = ip.parse().expect("task address");
    let [a, b, c, d] = ip.octets();
    format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The entry lines that point at a task (its MAC or its address as a whole word) or at a
/// node's VTEP (`dst <addr>`).
fn entries_for<'a>(lines: &'a [String], mac: &str, ip: &str, vtep: &str) -> Vec<&'a String> {
    let dst = format!("dst {vtep} ");
    lines
        .iter()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.contains(&mac) || words.first() == Some(&ip) || format!("{l} ").contains(&dst)
        })
        .collect()
}

/// After `node update --availability drain` moves a task, a task on a third node on the same
/// overlay reaches it at its new place within a second of the new task running.
#[test]
fn drained_task_is_reachable_at_its_new_place_within_a_second() {
    let s = Swarm::lab("drmv", 3);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);
    s.ok("vm1", &["network", "create", "app"]);
    let create = |name: &str, constraint: &str| {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                "-d",
                "--name",
                name,
                "--network",
                "app",
                "--constraint",
                constraint,
                "demo",
                "shoal-whoami",
                "--listen",
                "0.0.0.0:80",
            ],
        );
    };
    create("peer", "node.hostname == vm1");
    create("mover", "node.role == worker");
    let (old_id, old_node, old_ip, _) =
        wait_until("mover running", Duration::from_secs(30), || {
            running_task(&s, "mover", "")
        })
        .unwrap();
    let new_node = if old_node == "vm2" { "vm3" } else { "vm2" };
    // Each try gives up after 0.3 s: a SYN sent before the path exists is lost, and
    // waiting for TCP's 1 s retransmission would measure the retransmission timer, not
    // when the path came.
    let answers = |ip: &str, node: &str| {
        let out = s.shoal(
            "vm1",
            &[
                "exec",
                "peer.1",
                "curl",
                "-s",
                "-m",
                "0.3",
                &format!("http://{ip}/"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).contains(&format!("Node: {node}\n"))
    };
    wait_until("peer reaching mover", Duration::from_secs(10), || {
        answers(&old_ip, &old_node).then_some(())
    })
    .unwrap();

    s.ok(
        "vm1",
        &["node", "update", "--availability", "drain", &old_node],
    );
    let (_, node, ip, running_since) =
        wait_until("mover running again", Duration::from_secs(30), || {
            running_task(&s, "mover", &old_id)
        })
        .unwrap();
    assert_eq!(node, new_node, "the drained task went to the wrong node");
    // Polled from the peer; the clock is the same as the agent's that stamped Running.
    let mut misses = Vec::new();
    let reached_at = wait_until(
        "peer reaching mover at its new place",
        Duration::from_secs(10),
        || {
            let tried = now_unix();
            let ok = answers(&ip, new_node);
            if !ok {
                misses.push(format!("{:.3}", tried - running_since));
            }
            ok.then(now_unix)
        },
    )
    .unwrap();
    let took = reached_at - running_since;
    println!(
        "drain: peer on vm1 reached mover on {new_node} ({ip}) {took:.3} s after it ran; tries that missed began at {misses:?} s"
    );
    assert!(
        took <= 1.0,
        "peer reached the moved task {took:.3} s after it ran (> 1 s)"
    );
}

/// After a node leaves the swarm, every other node's FDB and neighbour entries for its
/// tasks and its VTEP are gone, and those of the nodes that stay are kept.
#[test]
fn leaving_node_takes_its_fdb_and_neighbour_entries_along() {
    let s = Swarm::lab("lvfdb", 3);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);
    s.ok("vm1", &["network", "create", "app"]);
    let net_id = s
        .ok("vm1", &["network", "inspect", "--format", "{{.Id}}", "app"])
        .trim()
        .to_string();
    for (name, node) in [("x", "vm1"), ("y", "vm2"), ("z", "vm3")] {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                "-d",
                "--name",
                name,
                "--network",
                "app",
                "--constraint",
                &format!("node.hostname == {node}"),
                "demo",
                "shoal-whoami",
                "--listen",
                "0.0.0.0:80",
            ],
        );
    }
    let ip = |svc: &str| running_addr(&s, svc);
    let (x, y, z) = (ip("x"), ip("y"), ip("z"));
    // Traffic between the tasks, so the bridges have learned their MACs too.
    for (from, to) in [("x.1", &y), ("z.1", &y), ("x.1", &z)] {
        wait_until(
            &format!("{from} reaching {to}"),
            Duration::from_secs(10),
            || {
                s.shoal(
                    "vm1",
                    &[
                        "exec",
                        from,
                        "curl",
                        "-s",
                        "-m",
                        "1",
                        &format!("http://{to}/"),
                    ],
                )
                .status
                .success()
                .then_some(())
            },
        )
        .unwrap();
    }
    let (vm1, vm2, vm3) = (s.addr("vm1"), s.addr("vm2"), s.addr("vm3"));
    // (node, the entries of the staying peer it must keep)
    let stayers = [
        ("vm1", (task_mac(&z), z.clone(), vm3)),
        ("vm3", (task_mac(&x), x.clone(), vm1)),
    ];
    let leaver = (task_mac(&y), y.clone(), vm2);
    for (node, _) in &stayers {
        let lines = wait_until(
            &format!("{node} programmed with vm2's task"),
            Duration::from_secs(10),
            || {
                let lines = overlay_entries(&s, node, &net_id).ok()?;
                // A unicast FDB entry, the VTEP's flood entry and the neighbour entry.
                (entries_for(&lines, &leaver.0, &leaver.1, &leaver.2).len() >= 3).then_some(lines)
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}: {:?}", overlay_entries(&s, node, &net_id)));
        let before = entries_for(&lines, &leaver.0, &leaver.1, &leaver.2);
        assert!(
            before
                .iter()
                .any(|l| l.starts_with(&format!("{} ", leaver.1))),
            "no neighbour entry for {} on {node}: {before:?}",
            leaver.1
        );
    }

    s.ok("vm2", &["swarm", "leave"]);
    let left = std::time::Instant::now();
    for (node, keep) in &stayers {
        wait_until(
            &format!("vm2's entries gone from {node}"),
            Duration::from_secs(20),
            || {
                let lines = overlay_entries(&s, node, &net_id).ok()?;
                entries_for(&lines, &leaver.0, &leaver.1, &leaver.2)
                    .is_empty()
                    .then_some(())
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}: {:?}\n{}",
                overlay_entries(&s, node, &net_id),
                s.log_tail(node)
            )
        });
        // The namespace was read, not missing: the staying peer's entries are all there.
        let lines = overlay_entries(&s, node, &net_id).unwrap();
        let kept = entries_for(&lines, &keep.0, &keep.1, &keep.2);
        assert!(
            kept.len() >= 3,
            "{node} lost the entries of the peer that stays: {lines:#?}"
        );
    }
    println!(
        "leave: vm2's FDB and neighbour entries gone from vm1 and vm3 {:.3} s after `swarm leave` returned",
        left.elapsed().as_secs_f64()
    );
}

/// A node without the overlay's fast path (`--no-overlay-fastpath`: bridge and
/// kernel VXLAN device only) and nodes with it are one cluster: tasks on either
/// kind reach each other by address and service name, and the routing mesh
/// answers through each kind of node for a task on the other, with the client's
/// address; the fast-path node carried its side of that traffic.
#[test]
fn nodes_with_and_without_the_fast_path_interoperate() {
    let s = Swarm::lab_with_node_args("mixfp", 3, "vm3", &["--no-overlay-fastpath"]);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);
    s.ok("vm1", &["network", "create", "mixed"]);
    for (name, node, port) in [("a", "vm1", "8081:80"), ("b", "vm3", "8082:80")] {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                "-d",
                "--name",
                name,
                "--network",
                "mixed",
                "--publish",
                port,
                "--constraint",
                &format!("node.hostname == {node}"),
                "demo",
                "shoal-whoami",
                "--listen",
                "0.0.0.0:80",
            ],
        );
    }
    s.wait_running_on("a", &["vm1"]);
    s.wait_running_on("b", &["vm3"]);
    // Each task's address on `mixed` (it is on ingress too).
    let mixed = s.ok(
        "vm1",
        &["network", "inspect", "--format", "{{.Id}}", "mixed"],
    );
    let addr_on_mixed = |svc: &str| -> String {
        let format = "{{range .NetworksAttachments}}{{.Network.ID}}={{index .Addresses 0}} {{end}}";
        let (_, out) = s
            .inspect_running_tasks(svc, format)
            .into_iter()
            .next()
            .expect("a task");
        out.split_whitespace()
            .find_map(|a| a.strip_prefix(&format!("{}=", mixed.trim())))
            .and_then(|cidr| cidr.split('/').next())
            .unwrap_or_else(|| panic!("{svc} has no address on mixed: {out}"))
            .to_string()
    };
    let (a_ip, b_ip) = (addr_on_mixed("a"), addr_on_mixed("b"));
    let from = |task: &str, url: &str| -> Option<String> {
        let out = s.shoal("vm1", &["exec", task, "curl", "-sS", "-m", "2", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for (task, url, want) in [
        ("a.1", format!("http://{b_ip}/"), "b.1"),
        ("a.1", "http://b/".to_string(), "b.1"),
        ("b.1", format!("http://{a_ip}/"), "a.1"),
        ("b.1", "http://a/".to_string(), "a.1"),
    ] {
        let body = wait_until(&format!("{task} -> {url}"), Duration::from_secs(10), || {
            from(task, &url)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));
        assert_eq!(field(&body, "Task"), Some(want), "{body}");
    }
    // The mesh: through vm2 (fast path) to b on vm3 (kernel path), and through
    // vm3 to a on vm1; the backend sees the client's own address.
    for (node, port, want) in [
        ("vm2", 8082, "b.1"),
        ("vm3", 8081, "a.1"),
        ("vm1", 8082, "b.1"),
    ] {
        let url = format!("http://{}:{port}/", s.addr(node));
        let body = s.client_get_until(&url);
        assert_eq!(field(&body, "Task"), Some(want), "{body}");
        let client = field(&body, "Client").unwrap_or_default();
        assert!(
            client.starts_with("10.77.0.2:"),
            "{url}: backend saw {client}"
        );
    }
    let overlay = |node: &str| {
        s.ok(
            "vm1",
            &[
                "debug",
                "lb",
                node,
                "--format",
                "{{.Overlay.Enabled}} {{.Overlay.Encapsulated}} {{.Overlay.Decapsulated}}",
            ],
        )
    };
    assert!(overlay("vm3").starts_with("false "), "{}", overlay("vm3"));
    let vm1: Vec<String> = overlay("vm1")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(vm1[0], "true");
    assert!(
        vm1[1].parse::<u64>().unwrap_or(0) > 0 && vm1[2].parse::<u64>().unwrap_or(0) > 0,
        "vm1 talked to vm3 over its fast path: {vm1:?}"
    );
}

/// `service update --network-add/--network-rm` as docker: the tasks roll onto the new
/// network set; the service answers by name and alias on an added network and is gone
/// from a removed one; `service inspect` shows the attachments and VIPs that follow.
#[test]
fn network_add_and_rm_move_a_service_between_networks() {
    let s = Swarm::lab("netadd", 1);
    s.form(&[]);
    s.ok("vm1", &["network", "create", "net1"]);
    s.ok("vm1", &["network", "create", "net2"]);
    let id = |net: &str| {
        s.ok("vm1", &["network", "inspect", "--format", "{{.Id}}", net])
            .trim()
            .to_string()
    };
    let (net1, net2) = (id("net1"), id("net2"));
    let create = |args: &[&str]| {
        let mut argv = vec!["service", "create", "-d"];
        argv.extend_from_slice(args);
        s.ok("vm1", &argv);
    };
    create(&[
        "--name",
        "web",
        "--network",
        "net1",
        "demo",
        "shoal-whoami",
        "--listen",
        "0.0.0.0:80",
    ]);
    create(&["--name", "c1", "--network", "net1", "demo", "sleep", "600"]);
    create(&["--name", "c2", "--network", "net2", "demo", "sleep", "600"]);
    for svc in ["web", "c1", "c2"] {
        s.wait_running(svc, 1);
    }
    let status = |client: &str, name: &str| -> String {
        let out = s.shoal(
            "vm1",
            &[
                "exec",
                &format!("{client}.1"),
                "dig",
                "@127.0.0.11",
                name,
                "+noall",
                "+comments",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("status: NOERROR") {
            "NOERROR".into()
        } else if text.contains("status: NXDOMAIN") {
            "NXDOMAIN".into()
        } else {
            text.into_owned()
        }
    };
    let reaches = |client: &str, name: &str| -> bool {
        let out = s.shoal(
            "vm1",
            &[
                "exec",
                &format!("{client}.1"),
                "curl",
                "-s",
                "-m",
                "2",
                &format!("http://{name}/"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).contains("Task: web.")
    };
    let inspect = |format: &str| s.ok("vm1", &["service", "inspect", "--format", format, "web"]);
    wait_until("web resolves on net1", Duration::from_secs(20), || {
        (status("c1", "web") == "NOERROR").then_some(())
    })
    .unwrap();
    assert_eq!(status("c2", "web"), "NXDOMAIN");

    // docker-cli's refusals.
    assert_eq!(
        s.fails(
            "vm1",
            &["service", "update", "-d", "--network-add", "net1", "web"]
        )
        .trim(),
        "service is already attached to network net1"
    );
    assert_eq!(
        s.fails(
            "vm1",
            &["service", "update", "-d", "--network-add", "nope", "web"]
        )
        .trim(),
        "Error response from daemon: network nope not found"
    );
    assert_eq!(
        s.fails(
            "vm1",
            &["service", "update", "-d", "--network-rm", "nope", "web"]
        )
        .trim(),
        "Error response from daemon: network nope not found"
    );
    assert_eq!(
        s.fails(
            "vm1",
            &["service", "update", "-d", "--network-add", "alias=x", "web"]
        )
        .lines()
        .next()
        .unwrap_or(""),
        "invalid argument \"alias=x\" for \"--network-add\" flag: network name/id is not specified"
    );
    // Removing a network the service is not on is no error (docker-cli ignores it).
    s.ok(
        "vm1",
        &["service", "update", "-d", "--network-rm", "net2", "web"],
    );

    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--network-add",
            "name=net2,alias=API",
            "web",
        ],
    );
    let mut want = [
        format!("{{\"Target\":\"{net1}\"}}"),
        format!("{{\"Target\":\"{net2}\",\"Aliases\":[\"api\"]}}"),
    ];
    want.sort();
    assert_eq!(
        inspect("{{json .Spec.TaskTemplate.Networks}}").trim(),
        format!("[{}]", want.join(","))
    );
    wait_until(
        "web reached on net2 by name and alias",
        Duration::from_secs(40),
        || (reaches("c2", "web") && reaches("c2", "api")).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tail("vm1")));
    // Still there on net1; the alias is net2's only.
    assert!(reaches("c1", "web"));
    assert_eq!(status("c1", "api"), "NXDOMAIN");
    let vip_nets = || {
        let mut v: Vec<String> = inspect("{{range .Endpoint.VirtualIPs}}{{.NetworkID}} {{end}}")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let mut both = vec![net1.clone(), net2.clone()];
    both.sort();
    assert_eq!(vip_nets(), both);

    s.ok(
        "vm1",
        &["service", "update", "-d", "--network-rm", "net1", "web"],
    );
    assert_eq!(
        inspect("{{json .Spec.TaskTemplate.Networks}}").trim(),
        format!("[{{\"Target\":\"{net2}\",\"Aliases\":[\"api\"]}}]")
    );
    wait_until("web gone from net1", Duration::from_secs(40), || {
        (status("c1", "web") == "NXDOMAIN").then_some(())
    })
    .unwrap();
    wait_until("net1's VIP freed", Duration::from_secs(20), || {
        (vip_nets() == [net2.clone()]).then_some(())
    })
    .unwrap();
    wait_until(
        "web's running task only on net2",
        Duration::from_secs(40),
        || {
            let format = "{{.Status.State}} {{range .NetworksAttachments}}{{.Network.ID}} {{end}}";
            let tasks = s.inspect_running_tasks("web", format);
            let (_, out) = tasks.first()?;
            (out.as_str() == format!("running {net2}")).then_some(())
        },
    )
    .unwrap();
    assert!(reaches("c2", "api"));
}

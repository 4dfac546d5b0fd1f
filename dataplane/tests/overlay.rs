//! Overlay networks end to end as root: "nodes" are network namespaces on one underlay bridge, tasks on VXLAN networks between them reach exactly whom they should.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_dataplane::lb::{pin_dir, remove_pins, LoadBalancer, Settings, Timeouts};
use shoal_dataplane::net::{
    format_mac, mac_for_ip, netns_delete, task_netns_create, task_netns_delete, underlay_mtu,
    ApplyReport, Ipv4Net, LocalEndpoint, NodeOverlay, OverlaySpec, PortHook, RemoteEndpoint,
    VXLAN_PORT,
};

/// Scratch space for namespace files of the tests (bind mounts, so on /run, not in a tempdir).
const TEST_ROOT: &str = "/run/shoal-overlay-test";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the overlay tests build network namespaces and VXLAN devices and must run as root"
    );
}

/// An underlay: a switch namespace with a bridge, and one namespace per host with
/// `eth0` (host i gets 10.79.0.(i+1)/24) plugged into it. Dropping it removes every
/// namespace and file the test made, also while panicking.
struct Underlay {
    tag: String,
    dir: PathBuf,
    hosts: Vec<String>,
    /// Names under /run/netns made with `ip netns add`.
    named: Mutex<Vec<String>>,
    tasks: Mutex<Vec<PathBuf>>,
}

impl Underlay {
    fn new(hosts: &[&str], mtu: u32) -> Underlay {
        require_root();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "sov{:x}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let underlay = Underlay {
            dir: Path::new(TEST_ROOT).join(&tag),
            tag,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            named: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        };
        let mtu_s = mtu.to_string();
        let sw = underlay.add_named("sw");
        ip(&[
            "-n", &sw, "link", "add", "br0", "mtu", &mtu_s, "type", "bridge",
        ]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for host in hosts {
            let ns = underlay.add_named(host);
            let port = format!("p-{host}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "mtu", &mtu_s, "type", "veth", "peer", "name",
                &port, "mtu", &mtu_s, "netns", &sw,
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            let cidr = format!("{}/24", underlay.ip(host));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        underlay
    }

    fn add_named(&self, role: &str) -> String {
        let name = format!("{}-{role}", self.tag);
        ip(&["netns", "add", &name]);
        self.named.lock().unwrap().push(name.clone());
        name
    }

    fn host_netns(&self, host: &str) -> PathBuf {
        Path::new("/run/netns").join(format!("{}-{host}", self.tag))
    }

    fn ip(&self, host: &str) -> Ipv4Addr {
        let i = self
            .hosts
            .iter()
            .position(|h| h == host)
            .expect("known host");
        Ipv4Addr::new(10, 79, 0, u8::try_from(i + 1).unwrap())
    }

    /// The overlay of a host: VXLAN sockets in its namespace, network namespaces in its own directory.
    fn node(&self, host: &str) -> NodeOverlay {
        NodeOverlay {
            underlay_ip: self.ip(host),
            underlay_ifname: "eth0".into(),
            vxlan_port: VXLAN_PORT,
            host_netns: Some(self.host_netns(host)),
            netns_dir: self.dir.join(host),
            port_hook: None,
            uplinks: true,
        }
    }

    /// A fresh task namespace.
    fn task(&self, name: &str) -> PathBuf {
        let path = self.dir.join("tasks").join(name);
        self.tasks.lock().unwrap().push(path.clone());
        task_netns_create(&path).expect("creating a task namespace");
        path
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        for host in &self.hosts {
            let dir = self.dir.join(host);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if let Err(e) = netns_delete(&entry.path()) {
                        eprintln!("cleanup: {e}");
                    }
                }
            }
        }
        for task in self.tasks.lock().unwrap().iter() {
            if let Err(e) = task_netns_delete(task) {
                eprintln!("cleanup: {e}");
            }
        }
        for name in self.named.lock().unwrap().iter().rev() {
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cleanup {}: {e}", self.dir.display());
        }
        // Shared with concurrent tests: goes only once empty.
        let _ = std::fs::remove_dir(TEST_ROOT);
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `argv` in the network namespace at `netns`.
fn in_ns(netns: &Path, argv: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(argv)
        .output()
        .expect("running nsenter")
}

fn in_ns_ok(netns: &Path, argv: &[&str]) -> String {
    let out = in_ns(netns, argv);
    assert!(
        out.status.success(),
        "{argv:?} in {}: {}",
        netns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One echo request, one second to answer.
fn ping(from: &Path, to: Ipv4Addr) -> bool {
    in_ns(from, &["ping", "-c1", "-W1", "-q", &to.to_string()])
        .status
        .success()
}

/// One echo request of `payload` bytes that must not be fragmented.
fn ping_size(from: &Path, to: Ipv4Addr, payload: u32) -> bool {
    let size = payload.to_string();
    in_ns(
        from,
        &[
            "ping",
            "-c1",
            "-W1",
            "-q",
            "-M",
            "do",
            "-s",
            &size,
            &to.to_string(),
        ],
    )
    .status
    .success()
}

/// Makes a VXLAN tunnel of the namespace's own (VNI 77, UDP 4790) from `local`
/// to `remote` over its link `dev`, with `addr`/24 on it: what a task running
/// its own overlay (Docker in Docker, kind) has.
fn own_tunnel(netns: &Path, dev: &str, local: Ipv4Addr, remote: Ipv4Addr, addr: &str) {
    let (local, remote) = (local.to_string(), remote.to_string());
    in_ns_ok(
        netns,
        &[
            "ip", "link", "add", "tun77", "mtu", "1300", "type", "vxlan", "id", "77", "dstport",
            "4790", "local", &local, "remote", &remote, "dev", dev,
        ],
    );
    in_ns_ok(
        netns,
        &["ip", "addr", "add", &format!("{addr}/24"), "dev", "tun77"],
    );
    in_ns_ok(netns, &["ip", "link", "set", "tun77", "up"]);
}

/// Sends 1 MB over one TCP connection from `client` to a one-shot server on
/// `server_ip`:7777 in `server`, which answers with the byte count it got:
/// that count (or the error). Bounded: the server waits 20 s at most, the
/// client retries its connect for 5 s and gives a reply 15 s.
fn tcp_megabyte(server: &Path, server_ip: &str, client: &Path) -> Result<String, String> {
    const SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777))
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(15)
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
c.sendall(str(n).encode())
c.close()
"#;
    const CLIENT: &str = r#"
import socket, sys, time
deadline = time.time() + 5
while True:
    try:
        c = socket.create_connection((sys.argv[1], 7777), timeout=1)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
c.settimeout(15)
c.sendall(b"x" * 1000000)
c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode())
"#;
    let mut srv = Command::new("nsenter")
        .arg(format!("--net={}", server.display()))
        .args(["python3", "-c", SERVER, server_ip])
        .spawn()
        .expect("starting the server");
    let out = in_ns(
        client,
        &["timeout", "25", "python3", "-c", CLIENT, server_ip],
    );
    let _ = srv.kill();
    let _ = srv.wait();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn link_mtu(netns: &Path, link: &str) -> u32 {
    let out = in_ns_ok(netns, &["ip", "-o", "link", "show", link]);
    let after = out.split(" mtu ").nth(1).expect("mtu in ip link output");
    after.split_whitespace().next().unwrap().parse().unwrap()
}

fn spec(id: &str, vni: u32, subnet: &str) -> OverlaySpec {
    let subnet: Ipv4Net = subnet.parse().unwrap();
    OverlaySpec {
        network_id: id.into(),
        vni,
        subnet,
        gateway: Ipv4Addr::from(u32::from(subnet.addr()) + 1),
        mtu: None,
    }
}

fn endpoint(task_id: &str, netns: &Path, ip: [u8; 4]) -> LocalEndpoint {
    let ip = Ipv4Addr::from(ip);
    LocalEndpoint {
        task_id: task_id.into(),
        netns: netns.to_path_buf(),
        ip,
        mac: mac_for_ip(ip),
        ifname: "eth0".into(),
        default_route: true,
    }
}

fn remote(ep: &LocalEndpoint, node: Ipv4Addr) -> RemoteEndpoint {
    RemoteEndpoint {
        ip: ep.ip,
        mac: ep.mac,
        node_addr: node,
    }
}

/// Two nodes, one task each, applied with each other as remote.
struct TwoNodes {
    u: Underlay,
    net: OverlaySpec,
    a: NodeOverlay,
    b: NodeOverlay,
    ta: PathBuf,
    tb: PathBuf,
    ea: LocalEndpoint,
    eb: LocalEndpoint,
}

async fn two_nodes(mtu: u32) -> TwoNodes {
    let u = Underlay::new(&["a", "b"], mtu);
    let net = spec("net1", 4100, "10.0.9.0/24");
    let (a, b) = (u.node("a"), u.node("b"));
    let ta = u.task("ta");
    let tb = u.task("tb");
    let ea = endpoint("task-a", &ta, [10, 0, 9, 2]);
    let eb = endpoint("task-b", &tb, [10, 0, 9, 3]);
    let report = a
        .apply(&net, std::slice::from_ref(&ea), &[remote(&eb, u.ip("b"))])
        .await
        .unwrap();
    println!("first apply on a: {:?}", report.elapsed);
    assert!(report.created);
    assert_eq!(report.attached, vec!["task-a"]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    // The fast path's uplink: made once, its two ends where they belong, and
    // the task's port named by its index in the network's namespace.
    let uplink = report.uplink.clone().expect("an uplink");
    assert!(report.uplink_created);
    assert_eq!(
        (uplink.node_name.as_str(), uplink.net_name.as_str()),
        ("sup-1004", "sux-1004")
    );
    let host_links = in_ns_ok(
        &u.host_netns("a"),
        &["ip", "-o", "link", "show", "sup-1004"],
    );
    assert!(
        host_links.starts_with(&format!("{}: sup-1004@", uplink.node_index)),
        "{host_links}"
    );
    assert!(
        host_links.contains(&format!("mtu {mtu} ")),
        "uplink MTU: {host_links}"
    );
    let net_links = in_ns_ok(&a.network_netns("net1"), &["ip", "-o", "link", "show"]);
    assert!(
        net_links.contains(&format!("{}: sux-1004@", uplink.net_index)),
        "{net_links}"
    );
    let up_line = net_links
        .lines()
        .find(|l| l.contains("sux-1004@"))
        .unwrap_or_default();
    assert!(
        !up_line.contains(" master "),
        "the uplink is on no bridge: {up_line}"
    );
    assert_eq!(report.ports.len(), 1);
    assert_eq!(report.ports[0].ip, ea.ip);
    assert!(
        net_links.contains(&format!("{}: sv", report.ports[0].index)),
        "{net_links}"
    );
    let again = a
        .apply(&net, std::slice::from_ref(&ea), &[remote(&eb, u.ip("b"))])
        .await
        .unwrap();
    assert_eq!(again.uplink, Some(uplink));
    assert!(!again.uplink_created);
    let report = b
        .apply(&net, std::slice::from_ref(&eb), &[remote(&ea, u.ip("a"))])
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    TwoNodes {
        u,
        net,
        a,
        b,
        ta,
        tb,
        ea,
        eb,
    }
}

/// Tasks on two nodes reach each other over VXLAN, full-size frames cross
/// unfragmented, and the task MTU is the underlay's minus 50 (1500 and 9000).
#[tokio::test]
async fn tasks_on_two_nodes_talk_with_underlay_mtu_minus_50() {
    for mtu in [1500, 9000] {
        let t = two_nodes(mtu).await;
        assert_eq!(t.a.underlay_mtu().await.unwrap(), mtu);
        // The free function reads the caller's namespace (here: lo of the test's).
        let lo: u32 = std::fs::read_to_string("/sys/class/net/lo/mtu")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(underlay_mtu("lo").unwrap(), lo);
        assert_eq!(link_mtu(&t.ta, "eth0"), mtu - 50);
        assert_eq!(link_mtu(&t.tb, "eth0"), mtu - 50);
        assert!(ping(&t.ta, t.eb.ip), "a -> b at MTU {mtu}");
        assert!(ping(&t.tb, t.ea.ip), "b -> a at MTU {mtu}");
        assert!(ping(&t.ta, t.net.gateway), "a -> its gateway");
        assert!(
            ping_size(&t.ta, t.eb.ip, mtu - 50 - 28),
            "a full-size packet a -> b at MTU {mtu}"
        );
        let routes = in_ns_ok(&t.ta, &["ip", "route", "show", "default"]);
        assert!(routes.contains("default via 10.0.9.1 dev eth0"), "{routes}");
        let mac = in_ns_ok(&t.ta, &["ip", "-o", "link", "show", "eth0"]);
        assert!(mac.contains("link/ether 02:42:0a:00:09:02"), "{mac}");

        let netns = t.a.network_netns("net1");
        let vxlan = in_ns_ok(&netns, &["ip", "-d", "link", "show", "svx-1004"]);
        for want in [
            "vxlan id 4100",
            "local 10.79.0.1",
            "dstport 4789",
            "nolearning",
            "proxy",
            "noudpcsum",
            &format!("mtu {}", mtu - 50),
            "master sbr-1004",
        ] {
            assert!(vxlan.contains(want), "{want:?} missing in {vxlan}");
        }
        // The network's bridge filters nothing: no netfilter hooks on its frames.
        for table in ["iptables", "ip6tables", "arptables"] {
            let knob = format!("net.bridge.bridge-nf-call-{table}");
            let value = in_ns_ok(&netns, &["sysctl", "-n", &knob]);
            assert_eq!(value.trim(), "0", "{knob} in the network's namespace");
        }
        let sockets = in_ns_ok(&t.u.host_netns("a"), &["ss", "-Hun", "-l", "sport = :4789"]);
        assert!(
            !sockets.trim().is_empty(),
            "VXLAN socket in the node's namespace"
        );

        let again =
            t.a.apply(
                &t.net,
                std::slice::from_ref(&t.ea),
                &[remote(&t.eb, t.u.ip("b"))],
            )
            .await
            .unwrap();
        println!("MTU {mtu}: idempotent re-apply took {:?}", again.elapsed);
        assert!(!again.created);
        assert!(again.attached.is_empty() && again.detached.is_empty());
        assert_eq!(again.fdb_added + again.fdb_removed, 0);
        assert_eq!(again.neighbours_set + again.neighbours_removed, 0);
    }
}

fn fdb_show(node: &NodeOverlay, network: &str) -> String {
    in_ns_ok(
        &node.network_netns(network),
        &["bridge", "fdb", "show", "dev", "svx-1004"],
    )
}

fn neigh_show(node: &NodeOverlay, network: &str) -> String {
    in_ns_ok(
        &node.network_netns(network),
        &["ip", "neigh", "show", "dev", "svx-1004"],
    )
}

/// Entries of a remote task that left cluster state are gone after one apply
/// (well under a second), traffic to it stops, and comes back when it returns.
#[tokio::test]
async fn stale_remote_entries_are_removed_and_restored() {
    let t = two_nodes(1500).await;
    let fdb = fdb_show(&t.a, "net1");
    for mac in ["02:42:0a:00:09:03", "00:00:00:00:00:00"] {
        assert!(
            fdb.lines().any(|l| l.starts_with(mac)
                && l.contains("dst 10.79.0.2")
                && l.contains("self permanent")),
            "{mac} missing: {fdb}"
        );
    }
    assert!(neigh_show(&t.a, "net1").contains("10.0.9.3 lladdr 02:42:0a:00:09:03"));
    assert!(ping(&t.ta, t.eb.ip));

    let started = Instant::now();
    let report =
        t.a.apply(&t.net, std::slice::from_ref(&t.ea), &[])
            .await
            .unwrap();
    let took = started.elapsed();
    println!("apply removing a remote task took {took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(report.fdb_removed, 2);
    assert_eq!(report.neighbours_removed, 1);
    let fdb = fdb_show(&t.a, "net1");
    assert!(!fdb.contains("dst 10.79.0.2"), "{fdb}");
    assert!(neigh_show(&t.a, "net1").trim().is_empty());
    assert!(!ping(&t.ta, t.eb.ip), "a still reaches b without entries");

    let started = Instant::now();
    let report =
        t.a.apply(
            &t.net,
            std::slice::from_ref(&t.ea),
            &[remote(&t.eb, t.u.ip("b"))],
        )
        .await
        .unwrap();
    println!("apply adding it back took {:?}", started.elapsed());
    assert_eq!(report.fdb_added, 2);
    assert!(ping(&t.ta, t.eb.ip), "a reaches b again");
    let status = t.a.status("net1").await.unwrap().expect("status");
    assert_eq!(status.bridge.as_deref(), Some("sbr-1004"));
    assert_eq!(status.vxlan.as_deref(), Some("svx-1004"));
    assert_eq!(status.fdb.len(), 2);
    assert_eq!(status.neighbours.len(), 1);
    assert_eq!(status.ports.len(), 1);
}

/// A local task that stops loses its interface at the next apply; its neighbour on
/// the same node keeps working, and the detach is quick.
#[tokio::test]
async fn stopped_local_task_is_detached() {
    let t = two_nodes(1500).await;
    let tc = t.u.task("tc");
    let ec = endpoint("task-c", &tc, [10, 0, 9, 4]);
    let remote_b = [remote(&t.eb, t.u.ip("b"))];
    let report =
        t.a.apply(&t.net, &[t.ea.clone(), ec.clone()], &remote_b)
            .await
            .unwrap();
    assert_eq!(report.attached, vec!["task-c"]);
    t.b.apply(
        &t.net,
        std::slice::from_ref(&t.eb),
        &[remote(&t.ea, t.u.ip("a")), remote(&ec, t.u.ip("a"))],
    )
    .await
    .unwrap();
    assert!(ping(&tc, t.ea.ip), "c -> a on one node");
    assert!(ping(&tc, t.eb.ip), "c -> b across nodes");

    let report =
        t.a.apply(&t.net, std::slice::from_ref(&t.ea), &remote_b)
            .await
            .unwrap();
    println!("apply detaching a local task took {:?}", report.elapsed);
    assert_eq!(report.detached.len(), 1);
    let links = in_ns_ok(&tc, &["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    assert!(ping(&t.ta, t.eb.ip), "a -> b still");
    let status = t.a.status("net1").await.unwrap().unwrap();
    assert_eq!(status.ports.len(), 1);
}

/// Tasks on different networks of the same nodes cannot reach each other, neither
/// across nodes nor on one node, even when the networks' subnets overlap.
#[tokio::test]
async fn networks_are_isolated() {
    let u = Underlay::new(&["a", "b"], 1500);
    let (a, b) = (u.node("a"), u.node("b"));
    let nets = [
        spec("red", 4100, "10.0.9.0/24"),
        spec("blue", 4101, "10.0.10.0/24"),
        // Same subnet as red: only the VNI keeps them apart.
        spec("green", 4102, "10.0.9.0/24"),
    ];
    let addrs: [([u8; 4], [u8; 4]); 3] = [
        ([10, 0, 9, 2], [10, 0, 9, 3]),
        ([10, 0, 10, 2], [10, 0, 10, 3]),
        ([10, 0, 9, 4], [10, 0, 9, 5]),
    ];
    let mut tasks = Vec::new();
    for (net, (ip_a, ip_b)) in nets.iter().zip(addrs) {
        let ta = u.task(&format!("{}-a", net.network_id));
        let tb = u.task(&format!("{}-b", net.network_id));
        let ea = endpoint(&format!("{}-a", net.network_id), &ta, ip_a);
        let eb = endpoint(&format!("{}-b", net.network_id), &tb, ip_b);
        a.apply(net, std::slice::from_ref(&ea), &[remote(&eb, u.ip("b"))])
            .await
            .unwrap();
        b.apply(net, std::slice::from_ref(&eb), &[remote(&ea, u.ip("a"))])
            .await
            .unwrap();
        tasks.push((ta, tb, ea, eb));
    }
    for (ta, _, _, eb) in &tasks {
        assert!(ping(ta, eb.ip), "within a network");
    }
    let [(red_a, _, _, red_b), (_, _, blue_a, blue_b), (green_a, _, green_a_ep, green_b)] =
        &tasks[..]
    else {
        unreachable!()
    };
    assert!(!ping(red_a, blue_b.ip), "red -> blue across nodes");
    assert!(!ping(red_a, blue_a.ip), "red -> blue on one node");
    assert!(
        !ping(red_a, green_b.ip),
        "red -> green (same subnet) across nodes"
    );
    assert!(
        !ping(red_a, green_a_ep.ip),
        "red -> green (same subnet) on one node"
    );
    assert!(!ping(green_a, red_b.ip), "green -> red across nodes");
    let mut ids = a.networks().unwrap();
    ids.sort();
    assert_eq!(ids, vec!["blue", "green", "red"]);
}

/// When a network's last local task goes, so do its bridge, VXLAN device,
/// namespace, the task's interface and the node's VXLAN socket.
#[tokio::test]
async fn last_local_endpoint_takes_the_devices_along() {
    let t = two_nodes(1500).await;
    let netns = t.a.network_netns("net1");
    assert!(netns.exists());
    let report =
        t.a.apply(&t.net, &[], &[remote(&t.eb, t.u.ip("b"))])
            .await
            .unwrap();
    println!("apply removing the network took {:?}", report.elapsed);
    assert!(report.removed);
    assert!(!netns.exists(), "network namespace file left");
    assert!(t.a.status("net1").await.unwrap().is_none());
    assert!(t.a.networks().unwrap().is_empty());
    let links = in_ns_ok(&t.ta, &["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth0"), "task interface left: {links}");
    let host_links = in_ns_ok(&t.u.host_netns("a"), &["ip", "-o", "link", "show"]);
    assert!(
        !host_links.contains("sbr-") && !host_links.contains("svx-"),
        "{host_links}"
    );
    assert!(!host_links.contains("sup-"), "uplink left: {host_links}");
    let sockets = in_ns_ok(&t.u.host_netns("a"), &["ss", "-Hun", "-l", "sport = :4789"]);
    assert!(sockets.trim().is_empty(), "VXLAN socket left: {sockets}");
    // Again: nothing to do. And remove() on b reports what it found.
    let again = t.a.apply(&t.net, &[], &[]).await.unwrap();
    assert!(!again.removed);
    assert!(t.b.remove("net1").await.unwrap());
    assert!(!t.b.remove("net1").await.unwrap());
}

/// RFC 7348 on the wire: a VXLAN device made by hand with iproute2 on a foreign
/// host of the underlay, given only the VNI and FDB/neighbour entries, exchanges
/// traffic with a task on a Shoal network both ways.
#[tokio::test]
async fn hand_made_vxlan_device_talks_to_a_task() {
    hand_made_vxlan(false).await;
}

/// The same with the load balancer's overlay fast path on node a (as shoald
/// runs it): the foreign device's frames are decapsulated by eBPF on a's
/// underlay straight into the task, and the task's frames to another address
/// that a's fast path knows as a remote endpoint (here: the foreign host) are
/// encapsulated by eBPF at its port; the kernel device on the other side
/// understands both.
#[tokio::test]
async fn hand_made_vxlan_device_talks_to_a_task_through_the_fast_path() {
    hand_made_vxlan(true).await;
}

/// The load balancer of host `host`, loaded and attached in its namespace (as
/// shoald does in its own), its pins removed when dropped.
struct HostLb {
    lb: std::sync::Arc<Mutex<LoadBalancer>>,
    ns: PathBuf,
    data_root: PathBuf,
}

impl HostLb {
    fn load(u: &Underlay, host: &str) -> HostLb {
        let ns = u.host_netns(host);
        let data_root = u.dir.join(format!("lb-{host}"));
        let settings = Settings {
            pin_dir: pin_dir(&data_root),
            maglev_size: 251,
            seed: 1,
            timeouts: Timeouts::default(),
            snat: false,
            overlay: true,
            dsr: false,
        };
        let addr = u.ip(host);
        let lb = Self::in_host(&ns, move || {
            let mut lb = LoadBalancer::load(settings).expect("loading the load balancer");
            lb.attach_node("eth0", addr).expect("attaching it");
            lb
        });
        HostLb {
            lb: std::sync::Arc::new(Mutex::new(lb)),
            ns,
            data_root,
        }
    }

    /// Runs `f` on a thread inside the host's namespace.
    fn in_host<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(ns).expect("the host namespace");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("host thread")
        })
    }

    /// What the agent does after an apply of `net` on the host.
    fn sync(
        &self,
        node: &NodeOverlay,
        net: &OverlaySpec,
        report: &ApplyReport,
        remotes: &[RemoteEndpoint],
    ) {
        let uplink = report.uplink.clone().expect("an uplink");
        let netns = node.network_netns(&net.network_id);
        Self::in_host(&self.ns, || {
            self.lb
                .lock()
                .unwrap()
                .sync_overlay(
                    &net.network_id,
                    net.vni,
                    false,
                    &netns,
                    &uplink,
                    &report.ports,
                    remotes,
                    &[],
                    VXLAN_PORT,
                )
                .expect("syncing the fast path")
        });
    }

    fn hook(&self) -> PortHook {
        let lb = self.lb.clone();
        PortHook(std::sync::Arc::new(move |netns, port| {
            lb.lock()
                .unwrap()
                .attach_task_port(netns, port)
                .map_err(|e| e.to_string())
        }))
    }
}

impl Drop for HostLb {
    fn drop(&mut self) {
        remove_pins(&self.data_root);
    }
}

/// The foreign host's VXLAN device `vx0` in namespace `f` (VNI 4100, UDP
/// 4789, MAC `mac`, from `vtep`), with the FDB and neighbour entries that
/// lead to the task (`task_mac`, 10.0.9.2) on node `node_a`; with outer UDP
/// checksums when `udpcsum` (the kernel's default), else without (as RFC 7348
/// recommends, and Docker and Shoal send).
fn foreign_device(f: &str, mac: &str, vtep: &str, node_a: &str, task_mac: &str, udpcsum: bool) {
    let mut args = vec![
        "-n",
        f,
        "link",
        "add",
        "vx0",
        "address",
        mac,
        "mtu",
        "1450",
        "type",
        "vxlan",
        "id",
        "4100",
        "dstport",
        "4789",
        "local",
        vtep,
        "nolearning",
    ];
    args.push(if udpcsum { "udpcsum" } else { "noudpcsum" });
    ip(&args);
    ip(&["-n", f, "addr", "add", "10.0.9.100/24", "dev", "vx0"]);
    ip(&["-n", f, "link", "set", "vx0", "up"]);
    let bridge = |args: &[&str]| {
        let out = Command::new("bridge")
            .args(["-n", f])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bridge {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    bridge(&[
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        node_a,
    ]);
    bridge(&["fdb", "add", task_mac, "dev", "vx0", "dst", node_a]);
    ip(&[
        "-n",
        f,
        "neigh",
        "add",
        "10.0.9.2",
        "lladdr",
        task_mac,
        "dev",
        "vx0",
        "nud",
        "permanent",
    ]);
}

async fn hand_made_vxlan(fast_path: bool) {
    let u = Underlay::new(&["a", "foreign"], 1500);
    let net = spec("net1", 4100, "10.0.9.0/24");
    let mut a = u.node("a");
    let lb = fast_path.then(|| HostLb::load(&u, "a"));
    if let Some(lb) = &lb {
        a.port_hook = Some(lb.hook());
    }
    let ta = u.task("ta");
    let ea = endpoint("task-a", &ta, [10, 0, 9, 2]);
    let foreign_ip = Ipv4Addr::new(10, 0, 9, 100);
    let foreign_mac = mac_for_ip(foreign_ip);
    let foreign_mac_s = format_mac(&foreign_mac);
    let task_mac = format_mac(&ea.mac);
    let f = format!("{}-foreign", u.tag);
    let vtep = u.ip("foreign").to_string();
    let node_a = u.ip("a").to_string();
    foreign_device(&f, &foreign_mac_s, &vtep, &node_a, &task_mac, false);
    let foreign = RemoteEndpoint {
        ip: foreign_ip,
        mac: foreign_mac,
        node_addr: u.ip("foreign"),
    };
    let report = a
        .apply(&net, std::slice::from_ref(&ea), &[foreign])
        .await
        .unwrap();
    if let Some(lb) = &lb {
        lb.sync(&a, &net, &report, &[foreign]);
    }
    assert!(ping(&ta, foreign_ip), "task -> hand-made VXLAN host");
    assert!(
        ping(&u.host_netns("foreign"), ea.ip),
        "hand-made VXLAN host -> task"
    );
    if let Some(lb) = &lb {
        // Both ways went through the fast path, not the kernel device of a.
        let fast = lb.lb.lock().unwrap().fast_path_report();
        println!("fast path: {fast:?}");
        assert!(fast.tx >= 2 && fast.rx >= 2, "{fast:?}");
        assert_eq!((fast.endpoints, fast.networks), (2, 1), "{fast:?}");
    }

    // A peer that sends outer UDP checksums (`udpcsum`): its frames, whose
    // checksum no NIC checked here, are the kernel's to check; they still
    // reach the task, through a's VXLAN device.
    let rx_before = lb
        .as_ref()
        .map(|lb| lb.lb.lock().unwrap().fast_path_report().rx);
    ip(&["-n", &f, "link", "del", "vx0"]);
    foreign_device(&f, &foreign_mac_s, &vtep, &node_a, &task_mac, true);
    assert!(
        ping(&u.host_netns("foreign"), ea.ip),
        "hand-made VXLAN host with UDP checksums -> task"
    );
    assert!(ping(&ta, foreign_ip), "task -> the same host");
    if let Some(lb) = &lb {
        let fast = lb.lb.lock().unwrap().fast_path_report();
        assert_eq!(
            Some(fast.rx),
            rx_before,
            "not decapsulated by eBPF: {fast:?}"
        );
    }

    // The task runs a tunnel of its own over the overlay: its TCP segments
    // leave the task already encapsulated, with offloads, which the fast path
    // cannot encapsulate again; they take the kernel's path, whole.
    own_tunnel(&ta, "eth0", ea.ip, foreign_ip, "192.168.77.1");
    own_tunnel(
        &u.host_netns("foreign"),
        "vx0",
        foreign_ip,
        ea.ip,
        "192.168.77.2",
    );
    assert_eq!(
        tcp_megabyte(&u.host_netns("foreign"), "192.168.77.2", &ta).as_deref(),
        Ok("1000000"),
        "a megabyte from the task through its own tunnel"
    );
    assert_eq!(
        tcp_megabyte(&ta, "192.168.77.1", &u.host_netns("foreign")).as_deref(),
        Ok("1000000"),
        "a megabyte to the task through its own tunnel"
    );
}

/// A task that moves from node b to node c (same IP and MAC) is reachable from
/// node a as soon as the applies for the change return, well within a second.
#[tokio::test]
async fn moved_task_is_reachable_within_a_second() {
    let u = Underlay::new(&["a", "b", "c"], 1500);
    let net = spec("net1", 4100, "10.0.9.0/24");
    let (a, b, c) = (u.node("a"), u.node("b"), u.node("c"));
    let ta = u.task("ta");
    let tx_b = u.task("x-on-b");
    let ea = endpoint("task-a", &ta, [10, 0, 9, 2]);
    let ex_b = endpoint("task-x", &tx_b, [10, 0, 9, 3]);
    a.apply(&net, std::slice::from_ref(&ea), &[remote(&ex_b, u.ip("b"))])
        .await
        .unwrap();
    b.apply(&net, std::slice::from_ref(&ex_b), &[remote(&ea, u.ip("a"))])
        .await
        .unwrap();
    assert!(ping(&ta, ex_b.ip));

    let tx_c = u.task("x-on-c");
    let ex_c = endpoint("task-x", &tx_c, [10, 0, 9, 3]);
    let started = Instant::now();
    b.apply(&net, &[], &[remote(&ea, u.ip("a"))]).await.unwrap();
    c.apply(&net, std::slice::from_ref(&ex_c), &[remote(&ea, u.ip("a"))])
        .await
        .unwrap();
    a.apply(&net, std::slice::from_ref(&ea), &[remote(&ex_c, u.ip("c"))])
        .await
        .unwrap();
    let applied = started.elapsed();
    assert!(ping(&ta, ex_c.ip), "a -> x after its move");
    println!(
        "move: applies on three nodes took {applied:?}, reachable after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// How long apply takes for many remote endpoints (printed): first, unchanged,
/// and with a tenth of them moved to other VTEPs.
#[tokio::test]
async fn apply_time_for_many_remote_endpoints() {
    let u = Underlay::new(&["a"], 1500);
    let a = u.node("a");
    let ta = u.task("ta");
    let net = spec("net1", 4100, "10.0.0.0/16");
    let ea = endpoint("task-a", &ta, [10, 0, 0, 2]);
    for count in [100usize, 1000] {
        let remote_at = |shift: usize| -> Vec<RemoteEndpoint> {
            (0..count)
                .map(|i| {
                    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 1, 0)) + i as u32);
                    // Ten VTEPs, each keeping nine in ten of its tasks when a tenth move.
                    let moved = usize::from(i % 10 == 0) * shift;
                    let vtep = (i / 10 + moved) % 10;
                    RemoteEndpoint {
                        ip,
                        mac: mac_for_ip(ip),
                        node_addr: Ipv4Addr::new(10, 79, 0, 100 + vtep as u8),
                    }
                })
                .collect()
        };
        let first = a
            .apply(&net, std::slice::from_ref(&ea), &remote_at(0))
            .await
            .unwrap();
        let same = a
            .apply(&net, std::slice::from_ref(&ea), &remote_at(0))
            .await
            .unwrap();
        let moved = a
            .apply(&net, std::slice::from_ref(&ea), &remote_at(1))
            .await
            .unwrap();
        println!(
            "{count} remote endpoints: first apply {:?} (+{} fdb, +{} neigh), unchanged {:?}, 10% moved {:?} (+{} -{} fdb)",
            first.elapsed,
            first.fdb_added,
            first.neighbours_set,
            same.elapsed,
            moved.elapsed,
            moved.fdb_added,
            moved.fdb_removed
        );
        assert_eq!(same.fdb_added + same.fdb_removed, 0);
        assert_eq!(moved.fdb_added, count / 10);
        assert_eq!(moved.fdb_removed, count / 10);
        if count == 100 {
            assert!(first.elapsed < Duration::from_secs(1));
        }
        let status = a.status("net1").await.unwrap().unwrap();
        assert_eq!(status.neighbours.len(), count);
        assert_eq!(status.fdb.len(), count + 10);
        assert!(a.remove("net1").await.unwrap());
    }
}

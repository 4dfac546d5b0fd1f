//! The namespace lab, end to end as root: hosts reach each other, daemons stop and start, and nothing outlives the lab or touches the root namespace.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use shoal_dataplane::lab::{run, LabCommand, STATE_ROOT};
use shoal_dataplane::{unique_lab_name, wait_until, Lab, LabSpec};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests build network namespaces and must run as root"
    );
}

/// A stand-in for shoald: listens on the socket given after -H, and starts two
/// sleeps, so stop can be checked to kill what the daemon started: a plain child
/// (pid in DATA_ROOT/child.pid) and one that escaped like a task does, into a new
/// session and network namespace, orphaned, without the daemon's environment
/// (pid in DATA_ROOT/escaped.pid).
fn standin_daemon(dir: &Path) -> PathBuf {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = format!(
        r#"#!/bin/sh
exec {python} -c '
import os, socket, subprocess, sys
a = sys.argv
print("standin argv:", " ".join(a[1:]), flush=True)
sock = a[a.index("-H") + 1][len("unix://"):]
data = a[a.index("--data-root") + 1]
child = subprocess.Popen(["sleep", "300"])
open(os.path.join(data, "child.pid"), "w").write(str(child.pid))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(os.path.join(data, "escaped.pid"), "w").write(str(os.getpid()))
        os.execvpe("unshare", ["unshare", "-n", "sleep", "300"], dict(PATH="/usr/bin:/bin"))
    os._exit(0)
s = socket.socket(socket.AF_UNIX)
s.bind(sock)
s.listen(16)
while True:
    s.accept()[0].close()
' "$@"
"#
    );
    write_script(dir, "standin-shoald", &script)
}

fn write_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "`{cmd}` failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The root namespace's links, addresses and routes (names and values, not counters).
fn root_namespace() -> Vec<String> {
    let mut lines: Vec<String> = sh("ip -o link")
        .lines()
        .map(|l| l.split(':').take(2).collect::<Vec<_>>().join(":"))
        .collect();
    lines.extend(
        sh("ip -o addr")
            .lines()
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" ")),
    );
    lines.extend(sh("ip route; ip -6 route").lines().map(str::to_string));
    lines
}

fn lab_namespaces(lab: &str) -> Vec<String> {
    sh("ip netns list")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("shoal-{lab}-")))
        .map(str::to_string)
        .collect()
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !matches!(
            s.rsplit(')').next().unwrap().trim_start().chars().next(),
            Some('Z')
        )
    })
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn ok_stdout(lab: &Lab, host: &str, argv: &[&str]) -> String {
    let out = lab.exec(host, argv).unwrap();
    assert!(
        out.status.success(),
        "{argv:?} in {host} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A two-node lab carries traffic on its underlay with the configured MTU; stop kills
/// the daemon and its children, start brings it back on the same data root; down
/// leaves no namespace, no state, and the root namespace as it was.
#[test]
fn two_node_lab_lifecycle() {
    require_root();
    let root_before = root_namespace();
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = LabSpec::new(&unique_lab_name("life"), 2);
    spec.mtu = 9000;
    spec.shoald = Some(standin_daemon(tmp.path()));
    let name = spec.name.clone();
    // A descriptor the caller inherited, as `flock LOCK shoal lab up` passes its lock:
    // the daemons must not keep it (they outlive the caller; a later `flock LOCK shoal
    // lab down` would wait on them for good).
    let inherited_path = tmp.path().join("inherited-lock");
    let inherited = std::fs::File::create(&inherited_path).unwrap();
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&inherited),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let lab = Lab::up(spec).unwrap();
    drop(inherited);

    assert_eq!(lab.nodes(), ["vm1", "vm2"]);
    let node_dir = lab.socket("vm1").parent().unwrap().to_path_buf();
    let daemon = read_pid(&node_dir.join("shoald.pid"));
    let held: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{daemon}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .collect();
    assert!(
        !held.contains(&inherited_path),
        "the daemon holds its starter's descriptor: {held:?}"
    );
    assert_eq!(lab.node_addr("vm1"), Ipv4Addr::new(10, 77, 0, 11));
    assert_eq!(lab.node_addr("vm2"), Ipv4Addr::new(10, 77, 0, 12));
    assert_eq!(lab.node_addr("client"), Ipv4Addr::new(10, 77, 0, 2));
    for node in lab.nodes() {
        UnixStream::connect(lab.socket(node)).expect("daemon socket accepts");
    }
    let log = std::fs::read_to_string(lab.log_path("vm1")).unwrap();
    assert!(
        log.contains("--metrics-addr 10.77.0.11:9323") && log.contains("--hostname vm1"),
        "{log}"
    );

    // Underlay traffic: client to a node, node to node.
    ok_stdout(&lab, "client", &["ping", "-c1", "-W1", "10.77.0.11"]);
    ok_stdout(&lab, "vm1", &["ping", "-c1", "-W1", "10.77.0.12"]);

    // MTU on the node's eth0 and on the switch bridge; /sys shows the node's links.
    let eth0 = sh(&format!("ip -n shoal-{name}-vm1 link show eth0"));
    assert!(eth0.contains("mtu 9000"), "{eth0}");
    let bridge = sh(&format!("ip -n shoal-{name}-sw link show br0"));
    assert!(bridge.contains("mtu 9000"), "{bridge}");
    // A switch, not a firewall: no netfilter hooks on the frames it forwards.
    let brnf = sh(&format!(
        "ip netns exec shoal-{name}-sw sysctl -n net.bridge.bridge-nf-call-iptables"
    ));
    assert_eq!(brnf.trim(), "0");
    let sys_mtu = ok_stdout(&lab, "vm1", &["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(sys_mtu.trim(), "9000");
    // Unlike plain `ip netns exec`, cgroupfs stays visible under /sys.
    assert_eq!(
        ok_stdout(&lab, "vm1", &["ls", "/sys/fs/cgroup"]),
        sh("ls /sys/fs/cgroup")
    );

    // SHOAL_HOST points at the node's own daemon; the client has none.
    let host = ok_stdout(&lab, "vm2", &["sh", "-c", "echo $SHOAL_HOST"]);
    assert_eq!(
        host.trim(),
        format!("unix://{}", lab.socket("vm2").display())
    );
    let client_host = ok_stdout(&lab, "client", &["sh", "-c", "echo ${SHOAL_HOST:-none}"]);
    assert_eq!(client_host.trim(), "none");

    // A second lab with the same name is refused, and the first one is untouched.
    let mut again = LabSpec::new(&name, 1);
    again.start_daemons = false;
    let err = Lab::up(again).unwrap_err();
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    ok_stdout(&lab, "client", &["ping", "-c1", "-W1", "10.77.0.12"]);

    // Stop: the daemon and what it started are gone; the other node keeps running.
    let child = read_pid(&lab.data_root("vm1").join("child.pid"));
    let escaped = wait_until("the escaped child", Duration::from_secs(5), || {
        let pid = std::fs::read_to_string(lab.data_root("vm1").join("escaped.pid")).ok()?;
        let pid: i32 = pid.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // Once unshare has exec'd sleep, the child is in its new namespace.
        cmdline.starts_with(b"sleep").then_some(pid)
    })
    .unwrap();
    assert!(pid_alive(daemon) && pid_alive(child) && pid_alive(escaped));
    lab.stop("vm1").unwrap();
    assert!(!pid_alive(daemon), "daemon {daemon} survived stop");
    assert!(!pid_alive(child), "daemon child {child} survived stop");
    assert!(!pid_alive(escaped), "escaped child {escaped} survived stop");
    assert!(UnixStream::connect(lab.socket("vm1")).is_err());
    UnixStream::connect(lab.socket("vm2")).expect("vm2 unaffected");

    // Start: a new daemon on the same data root.
    std::fs::write(lab.data_root("vm1").join("kept"), "yes").unwrap();
    lab.start("vm1").unwrap();
    UnixStream::connect(lab.socket("vm1")).expect("restarted daemon accepts");
    let restarted = read_pid(&node_dir.join("shoald.pid"));
    assert_ne!(restarted, daemon);
    assert!(lab.data_root("vm1").join("kept").exists());
    let restarted_child = wait_until(
        "the restarted daemon's child",
        Duration::from_secs(5),
        || {
            let pid = std::fs::read_to_string(lab.data_root("vm1").join("child.pid")).ok()?;
            let pid: i32 = pid.trim().parse().ok()?;
            (pid != child).then_some(pid)
        },
    )
    .unwrap();

    // Down: everything goes.
    let state_dir = Path::new(STATE_ROOT).join(&name);
    assert!(state_dir.exists());
    assert_eq!(lab_namespaces(&name).len(), 4);
    lab.down().unwrap();
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    assert!(!state_dir.exists());
    assert!(!pid_alive(restarted) && !pid_alive(restarted_child));
    assert_eq!(root_namespace(), root_before, "root namespace changed");
}

/// A lab dropped while its test panics is torn down all the same.
#[test]
fn dropped_lab_is_torn_down_on_panic() {
    require_root();
    let mut spec = LabSpec::new(&unique_lab_name("drop"), 1);
    spec.start_daemons = false;
    let name = spec.name.clone();
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::up(spec).unwrap();
        assert_eq!(lab_namespaces(lab.name()).len(), 3);
        panic!("test body failed");
    });
    assert!(result.is_err());
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    assert!(!Path::new(STATE_ROOT).join(&name).exists());
}

/// A daemon that dies at start fails `up` with its log, and leaves nothing behind.
#[test]
fn failed_daemon_fails_up_and_cleans_up() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let broken = write_script(
        tmp.path(),
        "broken-shoald",
        "#!/bin/sh\necho 'cannot open data root: boom' >&2\nexit 3\n",
    );
    let mut spec = LabSpec::new(&unique_lab_name("fail"), 2);
    spec.shoald = Some(broken);
    let name = spec.name.clone();
    let err = Lab::up(spec).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("boom") && msg.contains("exited"), "{msg}");
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    assert!(!Path::new(STATE_ROOT).join(&name).exists());
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    lab: LabCommand,
}

fn cli(args: &[&str]) -> i32 {
    let cli = Cli::try_parse_from(std::iter::once("lab").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    run(cli.lab).unwrap_or_else(|e| panic!("{args:?}: {e:#}"))
}

/// The command line: named nodes, custom underlay, exec's exit code, ls, and a down
/// that can be repeated.
#[test]
fn command_line() {
    require_root();
    let name = unique_lab_name("cli");
    let up = [
        "up",
        "--name",
        &name,
        "--no-daemons",
        "--underlay",
        "10.78.1.0/24",
        "--mtu",
        "1400",
        "mgr",
        "wrk",
    ];
    assert_eq!(cli(&up), 0);
    let guard = scopeguard(&name);
    assert_eq!(
        cli(&[
            "exec",
            "--name",
            &name,
            "wrk",
            "--",
            "ping",
            "-q",
            "-c1",
            "-W1",
            "10.78.1.11"
        ]),
        0
    );
    assert_eq!(
        cli(&["exec", "--name", &name, "client", "--", "sh", "-c", "exit 7"]),
        7
    );
    let addr = sh(&format!("ip -n shoal-{name}-mgr -o addr show eth0"));
    assert!(addr.contains("10.78.1.11/24"), "{addr}");
    assert!(sh(&format!("ip -n shoal-{name}-mgr link show eth0")).contains("mtu 1400"));
    assert_eq!(cli(&["ls", "--name", &name]), 0);
    assert_eq!(cli(&["down", "--name", &name]), 0);
    assert_eq!(cli(&["down", "--name", &name]), 0);
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    drop(guard);
}

/// Removes the CLI test's lab even if an assertion fails first.
fn scopeguard(name: &str) -> impl Drop {
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = run(LabCommand::Down {
                name: Some(self.0.clone()),
                all: false,
            });
        }
    }
    Down(name.to_string())
}

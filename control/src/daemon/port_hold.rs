//! Holding the ports the node's load balancer serves.
//!
//! A published port is answered by eBPF at tc ingress, before the kernel's socket
//! layer sees the packet. If the node's own kernel picked that port as the source
//! port of one of the node's outgoing connections (a `curl` from the node, shoald's
//! own connections), the replies to it would arrive at `<node address>:<port>` and
//! be taken by the load balancer. So, as docker-proxy and kube-proxy do, shoald
//! keeps a socket bound to `0.0.0.0:<port>` (in its own network namespace, the
//! node's) for every port and protocol the load balancer serves on this node:
//! TCP bound and never listening (no connection can be accepted on it), UDP bound
//! (nothing reads it: the load balancer takes the datagrams first).
//!
//! Why a bound socket is enough: the kernel's connect() autobind
//! (`__inet_hash_connect`) skips every port whose bind bucket was made by bind()
//! (`fastreuse >= 0`), whatever the socket's state, and UDP's autobind
//! (`udp_lib_get_port` with port 0) skips ports a socket is bound to. Neither
//! socket sets SO_REUSEADDR, so no other socket can bind the port either (not even
//! one asking SO_REUSEADDR, which would then let it listen). Checked on this
//! machine's kernel (6.18) by `connect_autobind_skips_a_held_port` below. We do not
//! use `net.ipv4.ip_local_reserved_ports`: it is one namespace-wide setting that
//! other software also owns, and it covers only the ephemeral pick, not an
//! explicit bind by another program.
//!
//! A port that cannot be bound (another program of the node uses it, or a
//! connection of the node's in TIME_WAIT still has it) is logged once and left to
//! the load balancer, which serves it all the same; it is tried again quietly every
//! [`RETRY_EVERY`], so a port that frees up is held from then on.
//!
//! Each held port is a file descriptor of the daemon's, which needs its descriptors
//! for the API, the swarm port, tasks and the load balancer: at most a quarter of the
//! open-file limit ([`budget`]) is spent on holding ports. Ports beyond it (a service
//! publishing a large range) are logged once and served without holding, as a port
//! something else uses is.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use shoal_dataplane::lb::{Frontend, Proto, ServiceSpec};

/// A port the node serves, and the protocol.
pub(crate) type PortKey = (Proto, u16);

/// How often a port that could not be bound is tried again.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(30);

/// The ports and protocols the load balancer serves on this node (its node-port
/// frontends: ingress-mode ports, and host-mode ports of the node's own tasks),
/// each with the name of a service publishing it (for the logs).
pub(crate) fn wanted(specs: &[ServiceSpec]) -> BTreeMap<PortKey, String> {
    let mut out = BTreeMap::new();
    for s in specs {
        if let Frontend::NodePort { proto, port } = s.frontend {
            out.entry((proto, port)).or_insert_with(|| s.name.clone());
        }
    }
    out
}

enum State {
    /// The socket is only kept, never used: closing it releases the port.
    Held { _socket: OwnedFd },
    /// Could not be bound, or beyond the budget; tried again after [`RETRY_EVERY`]
    /// from `at`.
    Failed { at: Instant },
}

/// How many ports may be held: a quarter of the daemon's open-file limit (its soft
/// one, which shoald raises to the hard one at start), read anew at every change.
pub(crate) fn budget() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 4).unwrap_or(usize::MAX)
}

struct Slot {
    service: String,
    state: State,
}

/// The sockets holding this node's served ports; dropping it releases them all.
pub(crate) struct PortHolder {
    slots: BTreeMap<PortKey, Slot>,
    retry_every: Duration,
    /// bind() attempts so far (tests check that an unchanged set costs none).
    attempts: u64,
    /// Most ports held at once; None: [`budget`], read at each change.
    budget: Option<usize>,
    /// The budget ran out and this was logged (again once all fit).
    over_budget: bool,
}

impl Default for PortHolder {
    fn default() -> Self {
        PortHolder::new(RETRY_EVERY)
    }
}

impl PortHolder {
    pub(crate) fn new(retry_every: Duration) -> PortHolder {
        PortHolder {
            slots: BTreeMap::new(),
            retry_every,
            attempts: 0,
            budget: None,
            over_budget: false,
        }
    }

    /// A holder that holds at most `budget` ports (tests).
    #[cfg(test)]
    fn with_budget(retry_every: Duration, budget: usize) -> PortHolder {
        PortHolder {
            budget: Some(budget),
            ..PortHolder::new(retry_every)
        }
    }

    /// Holds every port of `wanted` and releases the others. Cheap when nothing
    /// changed: no system call unless a port comes, goes, or is due for a retry.
    pub(crate) fn reconcile(&mut self, wanted: &BTreeMap<PortKey, String>) {
        let now = Instant::now();
        let retry_every = self.retry_every;
        let due = |slot: &Slot| matches!(slot.state, State::Failed { at } if now.duration_since(at) >= retry_every);
        let unchanged = self.slots.len() == wanted.len()
            && self.slots.keys().eq(wanted.keys())
            && !self.slots.values().any(due);
        if unchanged {
            return;
        }
        self.slots.retain(|&(proto, port), slot| {
            let keep = wanted.contains_key(&(proto, port));
            if !keep && matches!(slot.state, State::Held { .. }) {
                tracing::debug!(port, proto = %proto, service = %slot.service, "released a published port");
            }
            keep
        });
        let budget = self.budget.unwrap_or_else(budget);
        let mut held = self
            .slots
            .values()
            .filter(|s| matches!(s.state, State::Held { .. }))
            .count();
        let mut skipped = 0usize;
        for (&(proto, port), service) in wanted {
            let fits = held < budget;
            match self.slots.get_mut(&(proto, port)) {
                Some(slot) => {
                    slot.service.clone_from(service);
                    if !due(slot) {
                        continue;
                    }
                    if !fits {
                        slot.state = State::Failed { at: now };
                        skipped += 1;
                        continue;
                    }
                    self.attempts += 1;
                    match hold(proto, port) {
                        Ok(fd) => {
                            tracing::info!(port, proto = %proto, service = %service, "published port now held: the node's own connections no longer pick it");
                            slot.state = State::Held { _socket: fd };
                            held += 1;
                        }
                        Err(_) => slot.state = State::Failed { at: now },
                    }
                }
                None if !fits => {
                    skipped += 1;
                    self.slots.insert(
                        (proto, port),
                        Slot {
                            service: service.clone(),
                            state: State::Failed { at: now },
                        },
                    );
                }
                None => {
                    self.attempts += 1;
                    let state = match hold(proto, port) {
                        Ok(fd) => {
                            held += 1;
                            tracing::debug!(port, proto = %proto, service = %service, "holding a published port");
                            State::Held { _socket: fd }
                        }
                        Err(e) => {
                            tracing::warn!(
                                port,
                                proto = %proto,
                                service = %service,
                                error = %e,
                                "cannot hold published port {port}/{} of service {service}: something else on this node uses it; the load balancer serves it anyway, but a connection of this node's own that uses the port as its source port would have its replies taken by the load balancer",
                                proto
                            );
                            State::Failed { at: now }
                        }
                    };
                    self.slots.insert(
                        (proto, port),
                        Slot {
                            service: service.clone(),
                            state,
                        },
                    );
                }
            }
        }
        if skipped > 0 && !self.over_budget {
            tracing::warn!(
                held,
                budget,
                "holding {held} published ports, a quarter of the open-file limit: {skipped} more are served by the load balancer without being held (a connection of this node's own that picks one of them as its source port would have its replies taken by the load balancer)"
            );
        }
        if skipped > 0 {
            self.over_budget = true;
        } else if wanted.len() <= budget {
            self.over_budget = false;
        }
    }

    /// Releases every port (`swarm leave`, the worker stopping).
    pub(crate) fn release_all(&mut self) {
        self.slots.clear();
    }

    /// The ports held now.
    #[cfg(test)]
    fn held(&self) -> Vec<PortKey> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Held { .. }))
            .map(|(k, _)| *k)
            .collect()
    }

    /// The ports wanted but not held.
    #[cfg(test)]
    fn failed(&self) -> Vec<PortKey> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Failed { .. }))
            .map(|(k, _)| *k)
            .collect()
    }
}

/// A socket bound to `0.0.0.0:port`, without SO_REUSEADDR, never listening;
/// close-on-exec, so tasks never inherit it.
fn hold(proto: Proto, port: u16) -> Result<OwnedFd, Errno> {
    let ty = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, port))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_dataplane::lb::BackendSpec;
    use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};

    fn spec(name: &str, frontend: Frontend) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            frontend,
            backends: Vec::<BackendSpec>::new(),
        }
    }

    fn node_port(proto: Proto, port: u16) -> Frontend {
        Frontend::NodePort { proto, port }
    }

    fn want(keys: &[(Proto, u16, &str)]) -> BTreeMap<PortKey, String> {
        keys.iter()
            .map(|&(p, n, s)| ((p, n), s.to_string()))
            .collect()
    }

    /// Node ports count, per protocol; VIPs do not (they are not the node's
    /// addresses); a port two specs share is one, named after the first.
    #[test]
    fn wanted_is_the_node_ports_of_the_specs() {
        let specs = [
            spec("web", node_port(Proto::Tcp, 8080)),
            spec("web", node_port(Proto::Udp, 8080)),
            spec("web", Frontend::Vip(Ipv4Addr::new(10, 0, 0, 2))),
            spec("agent", node_port(Proto::Tcp, 32768)),
            spec("other", node_port(Proto::Tcp, 8080)),
        ];
        assert_eq!(
            wanted(&specs),
            want(&[
                (Proto::Tcp, 8080, "web"),
                (Proto::Tcp, 32768, "agent"),
                (Proto::Udp, 8080, "web"),
            ])
        );
        assert!(wanted(&[spec("v", Frontend::Vip(Ipv4Addr::new(10, 0, 0, 3)))]).is_empty());
        assert!(wanted(&[]).is_empty());
    }

    /// A port no socket uses now (the kernel's pick, released).
    fn free_port() -> u16 {
        let t = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = t.local_addr().unwrap().port();
        // Free for UDP too, or try another.
        match UdpSocket::bind(("0.0.0.0", port)) {
            Ok(_) => port,
            Err(_) => free_port(),
        }
    }

    /// Held ports cannot be bound by anyone else (TCP even with SO_REUSEADDR, as
    /// std's listener sets it), and are free again once no longer wanted; an
    /// unchanged set makes no system call.
    #[test]
    fn holds_and_releases_ports() {
        let port = free_port();
        let mut h = PortHolder::default();
        let both = want(&[(Proto::Tcp, port, "web"), (Proto::Udp, port, "web")]);
        h.reconcile(&both);
        assert_eq!(h.held(), [(Proto::Tcp, port), (Proto::Udp, port)]);
        assert!(h.failed().is_empty());
        let e = TcpListener::bind(("0.0.0.0", port)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        let e = TcpListener::bind(("127.0.0.1", port)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        let e = UdpSocket::bind(("0.0.0.0", port)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        // Bound, not listening: nothing accepts a connection.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

        let attempts = h.attempts;
        h.reconcile(&both);
        assert_eq!(h.attempts, attempts, "an unchanged set binds nothing");

        h.reconcile(&want(&[(Proto::Udp, port, "web")]));
        assert_eq!(h.held(), [(Proto::Udp, port)]);
        drop(TcpListener::bind(("0.0.0.0", port)).expect("TCP released"));
        h.release_all();
        assert!(h.held().is_empty());
        drop(UdpSocket::bind(("0.0.0.0", port)).expect("UDP released"));
    }

    /// A port another socket already has is reported, not fatal; it is tried
    /// again only after the retry interval, and held once it is free.
    #[test]
    fn a_taken_port_is_reported_and_retried_later() {
        let port = free_port();
        let other = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        let wanted = want(&[(Proto::Udp, port, "dns")]);
        let mut h = PortHolder::new(Duration::from_millis(200));
        h.reconcile(&wanted);
        assert!(h.held().is_empty());
        assert_eq!(h.failed(), [(Proto::Udp, port)]);
        let attempts = h.attempts;
        h.reconcile(&wanted);
        assert_eq!(h.attempts, attempts, "no retry before the interval");

        drop(other);
        std::thread::sleep(Duration::from_millis(250));
        h.reconcile(&wanted);
        assert_eq!(h.held(), [(Proto::Udp, port)]);
        assert!(h.failed().is_empty());
    }

    /// Beyond the budget, ports are served without being held (no socket, no
    /// descriptor), and held once there is room again.
    #[test]
    fn holds_no_more_than_the_budget() {
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let mut ports = ports;
        ports.sort_unstable();
        ports.dedup();
        let mut h = PortHolder::with_budget(Duration::from_millis(100), 2);
        let all: Vec<(Proto, u16, &str)> = ports.iter().map(|&p| (Proto::Udp, p, "big")).collect();
        h.reconcile(&want(&all));
        assert_eq!(h.held().len(), 2);
        assert_eq!(h.failed().len(), ports.len() - 2);
        assert!(h.over_budget);
        // Two leave: the others are held at their retry.
        h.reconcile(&want(&all[2..]));
        std::thread::sleep(Duration::from_millis(150));
        h.reconcile(&want(&all[2..]));
        assert_eq!(h.held().len(), ports.len() - 2);
        assert!(h.failed().is_empty());
        assert!(!h.over_budget);
    }

    /// The budget is a quarter of the open-file limit.
    #[test]
    fn the_budget_is_a_quarter_of_the_open_file_limit() {
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(budget() as u64, soft / 4);
    }

    /// The kernel fact this module rests on: connect()'s autobind never picks a
    /// port a bound, non-listening socket without SO_REUSEADDR holds, for TCP and
    /// UDP. In a network namespace of its own (one thread's), whose ephemeral
    /// range is narrowed to two ports. Needs root.
    #[test]
    fn connect_autobind_skips_a_held_port() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test makes a network namespace: run it as root"
        );
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            // A child forked from this thread is in its namespace.
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("ip");
            assert!(up.success());
            std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40001")
                .expect("narrowing the ephemeral range");
            let server = TcpListener::bind("127.0.0.1:5000").unwrap();
            let mut h = PortHolder::default();
            h.reconcile(&want(&[
                (Proto::Tcp, 40000, "web"),
                (Proto::Udp, 40000, "web"),
            ]));
            assert_eq!(h.held().len(), 2);

            let first = TcpStream::connect("127.0.0.1:5000").unwrap();
            assert_eq!(first.local_addr().unwrap().port(), 40001);
            // The only other port of the range is held: no second connection.
            assert!(TcpStream::connect("127.0.0.1:5000").is_err());
            let u1 = UdpSocket::bind("0.0.0.0:0").unwrap();
            assert_eq!(u1.local_addr().unwrap().port(), 40001);
            assert!(UdpSocket::bind("0.0.0.0:0").is_err());

            h.release_all();
            let second = TcpStream::connect("127.0.0.1:5000").unwrap();
            assert_eq!(second.local_addr().unwrap().port(), 40000);
            let u2 = UdpSocket::bind("0.0.0.0:0").unwrap();
            assert_eq!(u2.local_addr().unwrap().port(), 40000);
            drop(server);
        })
        .join()
        .unwrap();
    }
}

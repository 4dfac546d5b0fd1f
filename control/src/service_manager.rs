//! Telling a service manager (systemd's `Type=notify`) how the daemon is doing: `READY=1`
//! once the API answers, `STOPPING=1` when it stops. The protocol is one datagram per
//! message to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket); outside a service manager there is none and nothing is sent.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where the service manager listens, if it does.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Option<OsString>,
}

impl Notifier {
    /// Takes `$NOTIFY_SOCKET` out of the environment, so that nothing the daemon starts
    /// (`ip`, task supervisors) inherits it and speaks for the daemon. Call it before any
    /// other thread exists: changing the environment is not thread-safe.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        if socket.is_some() {
            std::env::remove_var("NOTIFY_SOCKET");
        }
        Notifier { socket }
    }

    /// A notifier for the socket at `socket` (a path, or `@name`).
    pub fn to(socket: impl Into<OsString>) -> Notifier {
        Notifier {
            socket: Some(socket.into()),
        }
    }

    /// Sends `state` (such as `READY=1`); Ok(false) when there is no service manager.
    pub fn notify(&self, state: &str) -> io::Result<bool> {
        let Some(socket) = &self.socket else {
            return Ok(false);
        };
        let bytes = socket.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(socket)?,
        };
        UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        assert!(Notifier::to(&path).notify("READY=1").unwrap());
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn states_reach_an_abstract_socket() {
        let name = format!("shoal-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        assert!(Notifier::to(format!("@{name}"))
            .notify("STOPPING=1")
            .unwrap());
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn without_a_service_manager_nothing_is_sent() {
        let n = Notifier { socket: None };
        assert!(!n.notify("READY=1").unwrap());
    }

    #[test]
    fn a_socket_nobody_listens_on_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::to(dir.path().join("gone"));
        assert!(n.notify("READY=1").is_err());
    }
}

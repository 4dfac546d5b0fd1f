//! Running Shoal on a real host under systemd: `scripts/install.sh` (what `make install`
//! runs) puts the binaries and a unit that systemd accepts in place, and shoald speaks
//! systemd's notify protocol, so `systemctl start shoald` returns once `shoal` works.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const SHOALD: &str = env!("CARGO_BIN_EXE_shoald");

fn install(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh");
    Command::new(script)
        .args(args)
        .output()
        .expect("scripts/install.sh")
}

#[test]
fn install_puts_binaries_and_a_unit_systemd_accepts() {
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path().to_str().unwrap();
    let from = Path::new(SHOALD).parent().unwrap().to_str().unwrap();
    let out = install(&["--from", from, "--prefix", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for b in ["shoal", "shoald"] {
        let meta = std::fs::metadata(prefix.path().join("bin").join(b)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{b}");
    }
    let unit = prefix.path().join("lib/systemd/system/shoald.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("ExecStart={p}/bin/shoald")),
        "{text}"
    );
    for line in ["Type=notify", "KillMode=process", "Restart=always"] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    // systemd's own parser: unknown keys, bad values and a missing ExecStart binary are
    // all reported (as warnings, on stderr).
    let verify = Command::new("systemd-analyze")
        .args(["verify", unit.to_str().unwrap()])
        .output()
        .expect("systemd-analyze (Debian's systemd package; make test installs it)");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );

    let out = install(&["--uninstall", "--prefix", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!unit.exists() && !prefix.path().join("bin/shoald").exists());

    let out = install(&["--from", "/nonexistent", "--prefix", p]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found: build first"));
}

#[test]
fn shoald_tells_systemd_when_it_is_ready_and_when_it_stops() {
    require_root();
    let mut spec = LabSpec::new(&unique_lab_name("notify"), 1);
    spec.start_daemons = false;
    let lab = Lab::up(spec).expect("lab up");
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sock = dir.path().join("shoal.sock");
    let host = format!("unix://{}", sock.display());
    let data_root = dir.path().join("data");
    let mut cmd = lab
        .command(
            "vm1",
            &[
                SHOALD,
                "--data-root",
                data_root.to_str().unwrap(),
                "-H",
                &host,
            ],
        )
        .unwrap();
    cmd.env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("shoald.log")).unwrap(),
        ));
    let mut daemon = cmd.spawn().expect("shoald");
    let log = || std::fs::read_to_string(dir.path().join("shoald.log")).unwrap_or_default();

    let mut buf = [0u8; 256];
    let n = listener
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 ({e}):\n{}", log()));
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means the API answers now, with no retry.
    let info = Command::new(SHOAL)
        .args(["-H", &host, "info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), "inactive");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let n = listener
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no STOPPING=1 ({e}):\n{}", log()));
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", log());
    lab.down().unwrap();
}

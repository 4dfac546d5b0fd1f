//! Progress of a root CA rotation after `swarm ca --rotate` (docker-cli's
//! `cli/command/swarm/progress/root_rotation.go`): the desired root's digest, how many
//! nodes hold a certificate from the desired issuer, and how many trust the desired root.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::progress::Screen;
use super::{call, unexpected};
use crate::api::{ApiError, ApiReply, ApiRequest};

const POLL: Duration = Duration::from_millis(200);
const CERTS: &str = "  rotated TLS certificates";
const ROOTS: &str = "  rotated CA certificates";
/// One space: `ROOTS` is one character shorter than `CERTS`, so the bars line up.
const CERTS_ACTION: &str = "";
const ROOTS_ACTION: &str = " ";
const DIGEST: &str = "desired root digest";

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// The lines docker draws before the first poll.
pub(crate) fn start<W: Write>(screen: &mut Screen<W>) {
    screen.progress_units(DIGEST, "", 0, 0, None);
    screen.progress_units(CERTS, CERTS_ACTION, 0, 0, None);
    screen.progress_units(ROOTS, ROOTS_ACTION, 0, 0, None);
}

/// One poll (docker's `updateProgress`): `tls_info` is the swarm's `TLSInfo`, `nodes` the
/// nodes' JSON. Returns whether the rotation has converged: no rotation under way, every
/// node's certificate from the desired issuer and every node trusting the desired root.
pub(crate) fn update<W: Write>(
    screen: &mut Screen<W>,
    tls_info: &Value,
    nodes: &[Value],
    in_progress: bool,
) -> bool {
    let root = s(tls_info, &["TrustRoot"]);
    let digest = format!("sha256:{:x}", Sha256::digest(root.as_bytes()));
    screen.progress_units(DIGEST, &digest, 0, 0, None);
    let (mut certs, mut roots) = (0i64, 0i64);
    for n in nodes {
        let info = &n["Description"]["TLSInfo"];
        if s(info, &["CertIssuerPublicKey"]) == s(tls_info, &["CertIssuerPublicKey"])
            && s(info, &["CertIssuerSubject"]) == s(tls_info, &["CertIssuerSubject"])
        {
            certs += 1;
        }
        if s(info, &["TrustRoot"]) == root {
            roots += 1;
        }
    }
    let total = nodes.len() as i64;
    screen.progress_units(CERTS, CERTS_ACTION, certs, total, Some("nodes"));
    if certs == total && !in_progress {
        screen.progress_units(ROOTS, ROOTS_ACTION, roots, total, Some("nodes"));
        return roots == total;
    }
    // Certificates still to renew: no root counts as rotated yet.
    screen.progress_units(ROOTS, ROOTS_ACTION, 0, total, Some("nodes"));
    false
}

/// Wait until the rotation converges, drawing docker's progress on stdout (nothing with
/// `quiet`). Ctrl-C ends the wait; the rotation goes on.
pub async fn wait(host: &str, quiet: bool) -> Result<(), ApiError> {
    let mut screen = Screen::stdout(quiet);
    start(&mut screen);
    screen.flush();
    let mut done = false;
    loop {
        let (tls_info, in_progress) = match call(host, ApiRequest::TrustRoot).await? {
            ApiReply::TrustRoot {
                tls_info,
                rotation_in_progress,
                ..
            } => (tls_info, rotation_in_progress),
            other => return Err(unexpected(other)),
        };
        // As docker's: one more inspection after converging, then done.
        if done {
            return Ok(());
        }
        let nodes = match call(host, ApiRequest::NodeList).await? {
            ApiReply::Nodes { nodes, .. } => nodes,
            other => return Err(unexpected(other)),
        };
        done = update(&mut screen, &tls_info, &nodes, in_progress);
        screen.flush();
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => {
                if !done {
                    screen.message("", "Operation continuing in background.");
                    screen.message("", "Use `shoal swarm ca` and `shoal node ls` to check progress.");
                }
                screen.flush();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(root: &str, issuer: &str) -> Value {
        json!({"Description": {"TLSInfo": {
            "TrustRoot": root, "CertIssuerSubject": "subj", "CertIssuerPublicKey": issuer}}})
    }

    fn swarm(root: &str, issuer: &str) -> Value {
        json!({"TrustRoot": root, "CertIssuerSubject": "subj", "CertIssuerPublicKey": issuer})
    }

    /// docker's lines: on a pipe the digest lines and the first, empty, bar lines; on a
    /// terminal the bars in place with `n/m nodes`, roots at 0 until the rotation is over.
    #[test]
    fn progress_is_drawn_as_docker_draws_it() {
        let mut pipe = Screen::new(Vec::new(), false, 200);
        start(&mut pipe);
        let nodes = [node("OLD", "new"), node("OLD", "old")];
        assert!(!update(&mut pipe, &swarm("OLD", "new"), &nodes, true));
        let nodes = [node("NEW", "new"), node("NEW", "new")];
        assert!(update(&mut pipe, &swarm("NEW", "new"), &nodes, false));
        let out = String::from_utf8(pipe.into_inner()).unwrap();
        let old = format!("{:x}", Sha256::digest(b"OLD"));
        let new = format!("{:x}", Sha256::digest(b"NEW"));
        assert_eq!(
            out,
            format!(
                "desired root digest: \n  rotated TLS certificates: \n  rotated CA certificates:  \n\
                 desired root digest: sha256:{old}\ndesired root digest: sha256:{new}\n"
            )
        );

        let mut tty = Screen::new(Vec::new(), true, 80);
        start(&mut tty);
        let nodes = [node("OLD", "new"), node("OLD", "old")];
        update(&mut tty, &swarm("OLD", "new"), &nodes, true);
        let out = String::from_utf8(tty.into_inner()).unwrap();
        assert!(
            out.contains("  rotated TLS certificates:  1/2 nodes\r"),
            "{out:?}"
        );
        assert!(
            out.contains("  rotated CA certificates:   0/2 nodes\r"),
            "{out:?}"
        );
        let mut wide = Screen::new(Vec::new(), true, 200);
        update(
            &mut wide,
            &swarm("NEW", "new"),
            &[node("NEW", "new")],
            false,
        );
        let out = String::from_utf8(wide.into_inner()).unwrap();
        assert!(
            out.contains(&format!("[{}>] 1/1 nodes\r", "=".repeat(50))),
            "{out:?}"
        );
    }

    /// Certificates all rotated but the swarm still rotating (or some node trusting the
    /// old root) is not the end.
    #[test]
    fn convergence_needs_certificates_roots_and_the_end_of_the_rotation() {
        let mut sink = Screen::new(std::io::sink(), false, 200);
        let rotated = [node("NEW", "new"), node("NEW", "new")];
        assert!(!update(&mut sink, &swarm("NEW", "new"), &rotated, true));
        let lagging = [node("NEW", "new"), node("OLD", "new")];
        assert!(!update(&mut sink, &swarm("NEW", "new"), &lagging, false));
        assert!(update(&mut sink, &swarm("NEW", "new"), &rotated, false));
    }
}

//! `ports:` entries to swarm port configs, as docker's nat.ParsePortSpec.

// With swarmopts.ConvertPortToPortConfig. Short forms `"8080:80"`, `"80"`, `"8080:80/udp"`,
// `"127.0.0.1:8080:80"`, `"8080-8081:80-81"`; the long form is read in the loader.

use std::net::IpAddr;

use shoal_spec::{PortConfig, Protocol, PublishMode};

/// One short-syntax spec to port configs (one per container port; a published range for a
/// single container port gives one config per published port). A host IP is ignored with
/// docker's warning, pushed to `warnings`.
pub(crate) fn parse_short(
    spec: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<PortConfig>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let (ip, host, container) = match n {
        1 => ("".to_string(), "", parts[0]),
        2 => ("".to_string(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (container, proto) = match container.split_once('/') {
        Some((port, proto)) if !proto.is_empty() => (port, proto.to_ascii_lowercase()),
        Some((port, _)) => (port, "tcp".to_string()),
        None => (container, "tcp".to_string()),
    };
    if container.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    let protocol = match proto.as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Err(format!("invalid proto: {proto}")),
    };
    let mut ip = ip;
    if let Some(inner) = ip.strip_prefix('[') {
        ip = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("invalid IP address {ip}"))?
            .to_string();
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (start, end) =
        port_range(container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let (host_start, host_end) = if host.is_empty() {
        (0, 0)
    } else {
        let range = port_range(host).map_err(|_| format!("invalid hostPort: {host}"))?;
        if end - start != range.1 - range.0 && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
        range
    };
    // nat.ParsePortSpec's mappings: one per container port, with its host port (a range only
    // for a single container port).
    let count = end - start;
    let mappings: Vec<(u16, String)> = (0..=count)
        .map(|i| {
            let host_port = if host.is_empty() {
                String::new()
            } else if count == 0 && host_start != host_end {
                format!("{host_start}-{host_end}")
            } else {
                (host_start + i).to_string()
            };
            (start + i, host_port)
        })
        .collect();
    let proto_name = protocol.as_str();
    let mut out = Vec::new();
    for (target, host_port) in mappings {
        if !ip.is_empty() && !ip.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified()) {
            let joined = if ip.contains(':') {
                format!("[{ip}]:{host_port}")
            } else {
                format!("{ip}:{host_port}")
            };
            warnings.push(format!(
                "ignoring IP-address ({joined}:{target}/{proto_name}) service will listen on '0.0.0.0'"
            ));
        }
        let (first, last) = if host_port.is_empty() {
            (0, 0)
        } else {
            port_range(&host_port).map_err(|_| {
                format!("invalid hostport binding ({host_port}) for port ({target})")
            })?
        };
        for published in first..=last {
            out.push(PortConfig {
                protocol,
                target_port: target,
                published_port: (published != 0).then_some(published),
                publish_mode: PublishMode::Ingress,
                ..Default::default()
            });
        }
    }
    Ok(out)
}

/// `"80"` or `"80-81"`.
fn port_range(s: &str) -> Result<(u16, u16), String> {
    if s.is_empty() {
        return Err("empty string specified for ports".to_string());
    }
    let (start, end) = s.split_once('-').unwrap_or((s, s));
    let start: u16 = start.parse().map_err(|e| format!("{e}"))?;
    let end: u16 = end.parse().map_err(|e| format!("{e}"))?;
    if end < start {
        return Err(format!("invalid port range: {s}"));
    }
    Ok((start, end))
}

pub(crate) fn protocol(s: &str) -> Result<Protocol, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(format!("invalid proto: {s}")),
    }
}

pub(crate) fn publish_mode(s: &str) -> Result<PublishMode, String> {
    match s {
        "ingress" => Ok(PublishMode::Ingress),
        "host" => Ok(PublishMode::Host),
        _ => Err(format!(
            "invalid publish mode {s:?}: must be \"ingress\" or \"host\""
        )),
    }
}

/// docker's `PortConfig.Compare`: published port, target port, protocol, publish mode.
pub(crate) fn sort(ports: &mut [PortConfig]) {
    let proto = Protocol::as_str;
    let mode = |m: PublishMode| match m {
        PublishMode::Ingress => "ingress",
        PublishMode::Host => "host",
    };
    ports.sort_by(|a, b| {
        (
            a.published_port.unwrap_or(0),
            a.target_port,
            proto(a.protocol),
            mode(a.publish_mode),
        )
            .cmp(&(
                b.published_port.unwrap_or(0),
                b.target_port,
                proto(b.protocol),
                mode(b.publish_mode),
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(spec: &str) -> Vec<(u16, Option<u16>, Protocol)> {
        parse_short(spec, &mut Vec::new())
            .unwrap()
            .into_iter()
            .map(|p| (p.target_port, p.published_port, p.protocol))
            .collect()
    }

    #[test]
    fn short_syntax() {
        use Protocol::*;
        assert_eq!(ports("8080:80"), [(80, Some(8080), Tcp)]);
        assert_eq!(ports("80"), [(80, None, Tcp)]);
        assert_eq!(ports("8080:80/udp"), [(80, Some(8080), Udp)]);
        assert_eq!(ports("53:53/UDP"), [(53, Some(53), Udp)]);
        assert_eq!(
            ports("8080-8081:80-81"),
            [(80, Some(8080), Tcp), (81, Some(8081), Tcp)]
        );
        assert_eq!(ports("3001-3002"), [(3001, None, Tcp), (3002, None, Tcp)]);
        assert_eq!(
            ports("9090-9091:8080"),
            [(8080, Some(9090), Tcp), (8080, Some(9091), Tcp)]
        );
        assert_eq!(ports(":80"), [(80, None, Tcp)]);
    }

    #[test]
    fn host_ip_is_ignored_with_a_warning() {
        let mut warnings = Vec::new();
        let p = parse_short("127.0.0.1:8080:80", &mut warnings).unwrap();
        assert_eq!(p[0].published_port, Some(8080));
        assert_eq!(
            warnings,
            ["ignoring IP-address (127.0.0.1:8080:80/tcp) service will listen on '0.0.0.0'"]
        );
        let mut warnings = Vec::new();
        parse_short("0.0.0.0:8080:80", &mut warnings).unwrap();
        parse_short("[::1]:8080:80", &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn bad_specs() {
        for (spec, err) in [
            ("80:x", "invalid containerPort: x"),
            ("x:80", "invalid hostPort: x"),
            ("8080:80/xyz", "invalid proto: xyz"),
            (
                "8080-8082:80-81",
                "invalid ranges specified for container and host Ports: 80-81 and 8080-8082",
            ),
            ("8080:", "no port specified: 8080:<empty>"),
            ("70000", "invalid containerPort: 70000"),
            ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ] {
            assert_eq!(
                parse_short(spec, &mut Vec::new()),
                Err(err.to_string()),
                "{spec}"
            );
        }
    }
}

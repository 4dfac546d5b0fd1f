//! Flags that build or change a service spec, shared by `service create` and `service update`
//! (docker's cli/command/service/opts.go), with docker's parsing of ports, mounts, sizes.

use shoal_spec::{
    ContainerSpec, EndpointMode, EndpointSpec, FailureAction, HealthConfig, Limit, Mount,
    NetworkAttachmentConfig, Placement, PlacementPreference, PortConfig, Protocol, PublishMode,
    ResourceRequirements, RestartCondition, RestartPolicy, ServiceSpec, SpreadOver, UpdateConfig,
    UpdateOrder,
};

/// docker's duration flags (pflag's DurationVar, opts.DurationOpt): Go's
/// time.ParseDuration ("10s", "1h2m3.5s", "300ms", "1.5h"; "5" has no unit), refused in
/// pflag's words. A negative value parses, as in docker, where the daemon refuses it.
pub fn duration_flag(flag: &str, value: &str) -> Result<i64, String> {
    shoal_compose::parse_duration(value)
        .map_err(|e| format!("invalid argument \"{value}\" for \"{flag}\" flag: {e}"))
}

/// docker's PositiveDurationOpt (the `--health-*` durations): Go's time.ParseDuration,
/// not below zero, refused in pflag's words.
pub fn positive_duration(flag: &str, value: &str) -> Result<i64, String> {
    let refused = |e: &str| format!("invalid argument \"{value}\" for \"{flag}\" flag: {e}");
    match shoal_compose::parse_duration(value) {
        Ok(ns) if ns < 0 => Err(refused("duration cannot be negative")),
        Ok(ns) => Ok(ns),
        Err(e) => Err(refused(&e)),
    }
}

/// docker's `--limit-memory`/`--reserve-memory` (opts.MemBytes: go-units' RAMInBytes):
/// a number Go's ParseFloat reads, then an optional binary suffix (`k`, `m`, `g`, `t`,
/// `p`, each with an optional `b` or `ib`, in any case, or `b` alone), in go-units'
/// words when refused. A size that is no finite i64 (Go would wrap it) is refused too.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let invalid_size = || format!("invalid size: '{s}'");
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid_size());
    };
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size = go_parse_float(num)?;
    if size < 0.0 {
        return Err(invalid_size());
    }
    let bad_suffix = |sfx: &str| format!("invalid suffix: '{sfx}'");
    let mul: f64 = if sfx.is_empty() {
        1.0
    } else if sfx.len() > 3 {
        return Err(bad_suffix(sfx));
    } else {
        let sfx = sfx.to_lowercase();
        let b = sfx.as_bytes();
        if b[0] == b'b' {
            if b.len() > 1 {
                return Err(bad_suffix(&sfx));
            }
            1.0
        } else {
            let mul = match b[0] {
                b'k' => 1u64 << 10,
                b'm' => 1 << 20,
                b'g' => 1 << 30,
                b't' => 1 << 40,
                b'p' => 1 << 50,
                _ => return Err(bad_suffix(&sfx)),
            };
            if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &sfx[1..] != "ib") {
                return Err(bad_suffix(&sfx));
            }
            mul as f64
        }
    };
    let total = size * mul;
    // Go's int64() of NaN, an infinity or a value past i64 is garbage; refused here.
    if !total.is_finite() || total >= i64::MAX as f64 {
        return Err(invalid_size());
    }
    Ok(total as i64)
}

/// Go's strconv.ParseFloat of a decimal number, with its errors.
fn go_parse_float(num: &str) -> Result<f64, String> {
    let quoted = crate::cli::usage::go_quote(num);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {quoted}: invalid syntax"))?;
    let named_infinity = num
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    if v.is_infinite() && !named_infinity {
        return Err(format!(
            "strconv.ParseFloat: parsing {quoted}: value out of range"
        ));
    }
    Ok(v)
}

/// docker's `--limit-cpu`/`--reserve-cpu` (opts.NanoCPUs: ParseCPUs): the value read as
/// Go's big.Rat reads it (a decimal number with an optional `e` exponent and `_` between
/// digits, or a fraction `a/b` of integers, which may have Go's base prefixes) times 10^9,
/// which must be whole, in docker's words when refused. A count of NanoCPUs past an i64
/// (which docker would wrap) is refused too. A negative count parses, as in docker, and
/// the daemon refuses it.
pub fn nano_cpus(s: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {s} as a rational number");
    let too_precise = || "value is too precise".to_string();
    let too_large = || "value is too large".to_string();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let signed = |n: i128| -> Result<i64, String> {
        let n = if negative { -n } else { n };
        i64::try_from(n).map_err(|_| too_large())
    };
    if let Some((a, b)) = rest.split_once('/') {
        let (num, den) = (go_int_base0(a), go_int_base0(b));
        let (Some(num), Some(den)) = (num, den) else {
            return Err(not_rational());
        };
        if den == 0 {
            return Err(not_rational());
        }
        let scaled = num.checked_mul(1_000_000_000).ok_or_else(too_large)?;
        if scaled % den != 0 {
            return Err(too_precise());
        }
        return signed(scaled / den);
    }
    let lower = rest.to_ascii_lowercase();
    if ["0x", "0b", "0o"].iter().any(|p| lower.starts_with(p)) {
        let n = go_int_base0(rest).ok_or_else(not_rational)?;
        return signed(n.checked_mul(1_000_000_000).ok_or_else(too_large)?);
    }
    let (digits, exp) = go_decimal(rest).ok_or_else(not_rational)?;
    // The value is digits × 10^exp; without its leading and trailing zeros, D × 10^p.
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Ok(0);
    }
    let p = exp + (significant.len() - trimmed.len()) as i128;
    let q = p + 9;
    if q < 0 {
        return Err(too_precise());
    }
    if trimmed.len() as i128 + q > 19 {
        return Err(too_large());
    }
    let d: i128 = trimmed.parse().map_err(|_| not_rational())?;
    let q = u32::try_from(q).map_err(|_| too_large())?;
    signed(d * 10i128.pow(q))
}

/// A decimal number as big.Rat reads one (sign already taken): digits with an optional
/// `.`, `_` only between two digits, then an optional `e`/`E` exponent.
/// Returns the digits (without `.` and `_`) and the power of ten they are to be scaled by.
fn go_decimal(s: &str) -> Option<(String, i128)> {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut digits = String::new();
    let mut frac_len: i128 = 0;
    let mut seen_dot = false;
    let chars: Vec<char> = mantissa.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let digit_at = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(char::is_ascii_digit)
        };
        match c {
            '0'..='9' => {
                digits.push(c);
                if seen_dot {
                    frac_len += 1;
                }
            }
            '_' if digit_at(i.checked_sub(1)) && digit_at(Some(i + 1)) => {}
            '.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if digits.is_empty() {
        return None;
    }
    let exp: i128 = match exponent {
        None => 0,
        Some(e) => {
            let (neg, body) = match e.as_bytes().first() {
                Some(b'-') => (true, &e[1..]),
                Some(b'+') => (false, &e[1..]),
                _ => (false, e),
            };
            let clean = go_digits(body)?;
            let clean = clean.trim_start_matches('0');
            // Past 10^30 the value is out of reach either way.
            let v: i128 = if clean.is_empty() {
                0
            } else if clean.len() > 30 {
                10i128.pow(30)
            } else {
                clean.parse().ok()?
            };
            if neg {
                -v
            } else {
                v
            }
        }
    };
    Some((digits, exp - frac_len))
}

/// Decimal digits with `_` only between digits, as Go's scanners take them; the digits.
fn go_digits(s: &str) -> Option<String> {
    if s.is_empty() || s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    Some(s.replace('_', ""))
}

/// An unsigned integer as Go reads one in base 0 (`0x`, `0o`, `0b` prefixes, a leading
/// `0` for octal, `_` between digits), or None; large values saturate to None.
fn go_int_base0(s: &str) -> Option<i128> {
    let lower = s.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b.strip_prefix('_').unwrap_or(b))
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.strip_prefix('_').unwrap_or(b))
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b.strip_prefix('_').unwrap_or(b))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].strip_prefix('_').unwrap_or(&lower[1..]))
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let clean = body.replace('_', "");
    if !clean.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let v = u128::from_str_radix(&clean, radix).ok()?;
    i128::try_from(v).ok()
}

/// `-p 8080:80`, `-p 8080:80/udp`, `-p 80`, or `published=8080,target=80,protocol=udp,mode=host`.
pub fn port(s: &str) -> Result<Vec<PortConfig>, String> {
    if s.contains('=') {
        let mut p = PortConfig::default();
        let mut target = None;
        for kv in s.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("invalid field '{kv}' must be a key=value pair"))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "target" => {
                    target = Some(
                        v.parse::<u16>()
                            .map_err(|_| format!("invalid target port {v}"))?,
                    )
                }
                "published" => {
                    // 0 is docker's "none": the port is picked for the service.
                    let port: u16 = v
                        .parse()
                        .map_err(|_| format!("invalid published port {v}"))?;
                    p.published_port = (port != 0).then_some(port);
                }
                "protocol" => p.protocol = protocol(v)?,
                "mode" => {
                    // docker lower-cases the whole field.
                    let v = v.to_ascii_lowercase();
                    p.publish_mode = match v.as_str() {
                        "ingress" => PublishMode::Ingress,
                        "host" => PublishMode::Host,
                        _ => {
                            return Err(format!(
                            "invalid publish mode value ({v}): must be either 'ingress' or 'host'"
                        ))
                        }
                    }
                }
                "name" => p.name = v.to_string(),
                other => return Err(format!("invalid field key {other}")),
            }
        }
        p.target_port = target.ok_or("missing mandatory field \"target\"")?;
        return Ok(vec![p]);
    }
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, b)) => (a, protocol(b)?),
        None => (s, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [t] => (None, *t),
        [p, t] => (Some(*p), *t),
        _ => return Err(format!("invalid port format: {s}")),
    };
    let range = |r: &str| -> Result<(u16, u16), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u16 = a.parse().map_err(|_| format!("invalid port format: {s}"))?;
        let b: u16 = b.parse().map_err(|_| format!("invalid port format: {s}"))?;
        if a == 0 || b < a {
            return Err(format!("invalid port format: {s}"));
        }
        Ok((a, b))
    };
    let (t0, t1) = range(target)?;
    let pub_range = published.map(range).transpose()?;
    if let Some((p0, p1)) = pub_range {
        if p1 - p0 != t1 - t0 {
            return Err(format!(
                "invalid port format: {s}: published and target ranges differ in size"
            ));
        }
    }
    Ok((0..=(t1 - t0))
        .map(|i| PortConfig {
            name: String::new(),
            protocol: proto,
            target_port: t0 + i,
            published_port: pub_range.map(|(p0, _)| p0 + i),
            publish_mode: PublishMode::Ingress,
        })
        .collect())
}

fn protocol(s: &str) -> Result<Protocol, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(format!("invalid protocol: {s}")),
    }
}

/// `--mount type=volume,source=x,target=/y,readonly`, as docker-cli's MountOpt reads it
/// (a CSV record of fields, keys in any case), for the fields Shoal's mounts have.
pub fn mount(s: &str) -> Result<Mount, String> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Default::default()
    };
    for field in csv_record(s)? {
        let Some((k, v)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => m.read_only = true,
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = k.to_lowercase();
        match key.as_str() {
            "type" => m.kind = v.to_lowercase(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => {
                m.read_only = crate::cli::pflag::parse_go_bool(v)
                    .map_err(|_| format!("invalid value for {key}: {v}"))?
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.kind.is_empty() {
        return Err("type is required".into());
    }
    if m.target.is_empty() {
        return Err("target is required".into());
    }
    // A type swarm's API lacks is the daemon's to refuse ([`Mount::invalid_type`]); those
    // it has and Shoal's executor cannot mount are refused here.
    if Mount::TYPES.contains(&m.kind.as_str()) && !matches!(m.kind.as_str(), "volume" | "bind") {
        return Err(format!("unsupported mount type {}", m.kind));
    }
    Ok(m)
}

/// One record of Go's encoding/csv (its defaults: `,` between fields, `"` quoting, `""`
/// a quote inside a quoted field), as docker-cli reads `--network` and `--mount`.
pub fn csv_record(s: &str) -> Result<Vec<String>, String> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    if s.is_empty() {
        return Err("EOF".into());
    }
    let b: Vec<char> = s.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if b.get(i) == Some(&'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 1
                        ))
                    }
                    Some('"') if b.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        match b.get(i) {
                            None | Some(',') => break,
                            Some(_) => {
                                return Err(format!(
                                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                                    i + 1
                                ))
                            }
                        }
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(c) = b.get(i).filter(|c| **c != ',') {
                if *c == '"' {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        i + 1
                    ));
                }
                field.push(*c);
                i += 1;
            }
        }
        fields.push(field);
        if b.get(i) == Some(&',') {
            i += 1;
            continue;
        }
        return Ok(fields);
    }
}

/// docker-cli's NetworkOpt: `NET`, or the long syntax
/// `name=NET[,alias=A...][,driver-opt=k=v...]` (told apart as docker does: a `word=word`
/// anywhere in the value). As in docker each field is lower-cased whole (aliases too);
/// `ip`, `ip6`, `mac-address`, `link-local-ip` and `gw-priority` are checked, then left
/// out, as docker's service commands leave them out. Returns the attachment (target as
/// given) and its driver options.
pub fn network(value: &str) -> Result<(NetworkAttachmentConfig, Vec<(String, String)>), String> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let v = value.as_bytes();
    let long =
        (1..v.len().saturating_sub(1)).any(|i| v[i] == b'=' && word(v[i - 1]) && word(v[i + 1]));
    if !long {
        return Ok((
            NetworkAttachmentConfig {
                target: value.to_string(),
                aliases: vec![],
            },
            vec![],
        ));
    }
    let mut net = NetworkAttachmentConfig {
        target: String::new(),
        aliases: vec![],
    };
    let mut driver_opts = Vec::new();
    let ip = |v: &str| {
        v.parse::<std::net::IpAddr>()
            .map(|_| ())
            .map_err(|_| format!("ParseAddr({v:?}): unable to parse IP"))
    };
    for field in csv_record(value)? {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.trim(), v.trim()),
            _ => return Err(format!("invalid field {field}")),
        };
        match key {
            "name" => net.target = val.to_string(),
            "alias" => net.aliases.push(val.to_string()),
            "ip" | "ip6" | "link-local-ip" => ip(val)?,
            "mac-address" => {}
            "driver-opt" => match val.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    driver_opts.push((k.trim().to_string(), v.trim().to_string()))
                }
                _ => return Err("invalid key value pair format in driver options".into()),
            },
            "gw-priority" => {
                if let Err(e) = val.parse::<i64>() {
                    let why = match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => "value out of range",
                        _ => "invalid syntax",
                    };
                    return Err(format!("invalid gw-priority ({val}): {why}"));
                }
            }
            other => return Err(format!("invalid field key {other}")),
        }
    }
    if net.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok((net, driver_opts))
}

/// docker-cli's kvfile.Parse of an env file's bytes: leading white space dropped, `#`
/// comments and blank lines skipped, `KEY=VALUE` kept as written (trailing space and
/// quotes included), `KEY` alone given `lookup(KEY)`'s value or left out; a UTF-8 BOM
/// is dropped. Errors in docker's words.
pub fn parse_env_file(
    name: &str,
    data: &[u8],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let invalid = |e: String| format!("invalid env file ({name}): {e}");
    let mut out = Vec::new();
    // bufio.ScanLines: lines end at \n, a \r before it dropped; no empty last line.
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if data.ends_with(b"\n") || data.is_empty() {
        lines.pop();
    }
    for (i, raw) in lines.into_iter().enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut line = std::str::from_utf8(raw).map_err(|_| {
            let bytes: Vec<String> = raw.iter().map(u8::to_string).collect();
            invalid(format!(
                "invalid utf8 bytes at line {}: [{}]",
                i + 1,
                bytes.join(" ")
            ))
        })?;
        if i == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(invalid(format!("no variable name on line '{line}'")));
        }
        if key.contains([' ', '\t']) {
            return Err(invalid(format!("variable '{key}' contains whitespaces")));
        }
        if has_value {
            out.push(line.to_string());
        } else if let Some(v) = lookup(key) {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

/// docker-cli's makeEnv over ReadKVEnvStrings: the env files' variables in order, then
/// the `--env` ones; a later value of a variable replaces (and moves past) an earlier
/// one, an exact repeat changes nothing.
pub fn make_env(
    files: &[String],
    env: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut all = Vec::new();
    for f in files {
        let data = std::fs::read(f).map_err(|e| format!("open {f}: {}", go_io_error(&e)))?;
        all.extend(parse_env_file(f, &data, lookup)?);
    }
    all.extend(env.iter().cloned());
    let mut current: Vec<String> = Vec::new();
    for e in all {
        if current.contains(&e) {
            continue;
        }
        let key = e.split('=').next().unwrap_or("");
        let prefix = format!("{key}=");
        current.retain(|c| !c.starts_with(&prefix));
        current.push(e);
    }
    Ok(current)
}

/// An I/O error as Go's syscall errors read ("no such file or directory").
fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ if e.raw_os_error() == Some(21) => "is a directory".into(),
        _ => {
            let s = e.to_string();
            match s.split_once(" (os error") {
                Some((msg, _)) => msg.to_lowercase(),
                None => s,
            }
        }
    }
}

/// docker's ValidateExtraHost then convertExtraHostsToSwarmHosts: `host:ip` (or
/// `host=ip`, an IPv6 address maybe in brackets) as swarmkit's `ip host`.
pub fn extra_host(s: &str) -> Result<String, String> {
    let (host, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .filter(|(host, _)| !host.is_empty() && !host.contains(':'))
        .ok_or_else(|| format!("bad format for add-host: {s:?}"))?;
    let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        Some(inner) if ip.len() > 2 => inner,
        _ => ip,
    };
    if ip != "host-gateway" && ip.trim().parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address in add-host: {ip:?}"));
    }
    Ok(format!("{ip} {host}"))
}

/// docker's ValidateIPAddress: the address in its canonical form.
pub fn ip_address(s: &str) -> Result<String, String> {
    s.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("IP address is not correctly formatted: {s}"))
}

/// docker's ValidateDNSSearch: `.` (no search), or a domain (a trailing dot dropped).
pub fn dns_search(s: &str) -> Result<String, String> {
    let v = s.trim_matches(' ');
    if v == "." {
        return Ok(v.to_string());
    }
    let invalid = || format!("{v} is not a valid domain");
    if !v.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Err(invalid());
    }
    let domain = v.trim_end_matches([' ', '\t', '\n', '\r']);
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() >= 255 || !domain.split('.').all(label_ok) {
        return Err(invalid());
    }
    Ok(domain.to_string())
}

/// Go's strconv.ParseInt(s, 10, 64) with its error text.
fn go_parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {s:?}: {why}")
    })
}

/// go-units' ParseUlimit: `name=soft[:hard]` (hard defaults to soft).
pub fn ulimit(s: &str) -> Result<shoal_spec::Ulimit, String> {
    let (name, limits) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    shoal_executor::check_ulimit(name, 0, 0)?;
    let values: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match values.as_slice() {
        [soft] => {
            let soft = go_parse_int(soft)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = go_parse_int(hard)?;
            (go_parse_int(soft)?, hard)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    shoal_executor::check_ulimit(name, soft, hard)?;
    Ok(shoal_spec::Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--secret` / `--config` values, as docker-cli's SecretOpt and ConfigOpt read them:
/// `name`, or `source=name[,target=t][,uid=n][,gid=n][,mode=0440]` (keys in any case,
/// `src` for `source`); the target defaults to the source, the file to root's and 0444.
/// Returns the source name and the file target.
pub fn file_reference(kind: &str, s: &str) -> Result<(String, shoal_spec::FileTarget), String> {
    let fields: Vec<&str> = s.split(',').collect();
    if let [name] = fields.as_slice() {
        if !name.contains('=') {
            return Ok((name.to_string(), shoal_spec::FileTarget::new(name)));
        }
    }
    let mut source = String::new();
    let mut file = shoal_spec::FileTarget::new("");
    for field in fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k, v),
            _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
        };
        match key.to_lowercase().as_str() {
            "source" | "src" => source = val.to_string(),
            "target" => file.name = val.to_string(),
            "uid" => file.uid = val.to_string(),
            "gid" => file.gid = val.to_string(),
            "mode" => {
                file.mode =
                    go_parse_uint32(val).map_err(|e| format!("invalid mode specified: {e}"))?
            }
            _ => return Err(format!("invalid field in {kind} request: {key}")),
        }
    }
    if source.is_empty() {
        return Err("source is required".into());
    }
    if file.name.is_empty() {
        file.name = source.clone();
    }
    Ok((source, file))
}

/// Go's `strconv.ParseUint(s, 0, 32)`: `0x`, `0o`, `0b` or a leading `0` (octal) set the
/// base; its errors as Go words them.
fn go_parse_uint32(s: &str) -> Result<u32, String> {
    let digits = s.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let (base, rest) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    match u64::from_str_radix(rest, base) {
        Ok(v) if v <= u64::from(u32::MAX) => Ok(v as u32),
        Ok(_) => Err(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        )),
        Err(_) => Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax")),
    }
}

// The flags below are strings that docker's CLI sends as given and its daemon converts
// (moby's daemon/cluster/convert), exactly, "" meaning the default. A value it does not
// know is refused there: see [`SpecFlags::daemon_refusal`].

/// `--restart-condition`, as moby's restartPolicyToGRPC reads it.
pub fn restart_condition(s: &str) -> Option<RestartCondition> {
    match s {
        "none" => Some(RestartCondition::None),
        "on-failure" => Some(RestartCondition::OnFailure),
        "any" | "" => Some(RestartCondition::Any),
        _ => None,
    }
}

/// `--update-failure-action`/`--rollback-failure-action`, as moby's updateConfigToGRPC.
pub fn failure_action(s: &str) -> Option<FailureAction> {
    match s {
        "pause" | "" => Some(FailureAction::Pause),
        "continue" => Some(FailureAction::Continue),
        "rollback" => Some(FailureAction::Rollback),
        _ => None,
    }
}

/// `--update-order`/`--rollback-order`, as moby's updateConfigToGRPC.
pub fn order(s: &str) -> Option<UpdateOrder> {
    match s {
        "stop-first" | "" => Some(UpdateOrder::StopFirst),
        "start-first" => Some(UpdateOrder::StartFirst),
        _ => None,
    }
}

/// `--endpoint-mode`, as moby's ServiceSpecToGRPC reads it.
pub fn endpoint_mode(s: &str) -> Option<EndpointMode> {
    match s {
        "vip" | "" => Some(EndpointMode::Vip),
        "dnsrr" => Some(EndpointMode::Dnsrr),
        _ => None,
    }
}

/// The update/rollback flags, as given (None = not given).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct UpdateFlags {
    /// Maximum number of tasks updated simultaneously (0 to update all at once)
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h)
    #[arg(long)]
    pub update_delay: Option<String>,
    /// Action on update failure ("pause", "continue", "rollback")
    #[arg(long)]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Failure rate to tolerate during an update
    #[arg(long, value_parser = finite_ratio, value_name = "float")]
    pub update_max_failure_ratio: Option<f32>,
    /// Update order ("start-first", "stop-first")
    #[arg(long)]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once)
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h)
    #[arg(long)]
    pub rollback_delay: Option<String>,
    /// Action on rollback failure ("pause", "continue")
    #[arg(long)]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long)]
    pub rollback_monitor: Option<String>,
    /// Failure rate to tolerate during a rollback
    #[arg(long, value_parser = finite_ratio, value_name = "float")]
    pub rollback_max_failure_ratio: Option<f32>,
    /// Rollback order ("start-first", "stop-first")
    #[arg(long)]
    pub rollback_order: Option<String>,
}

impl UpdateFlags {
    pub fn apply(&self, spec: &mut ServiceSpec) -> Result<(), String> {
        let set = |c: &mut Option<UpdateConfig>,
                   kind: &str,
                   p: &Option<u64>,
                   d: &Option<String>,
                   f: &Option<String>,
                   m: &Option<String>,
                   r: &Option<f32>,
                   o: &Option<String>|
         -> Result<(), String> {
            if p.is_none()
                && d.is_none()
                && f.is_none()
                && m.is_none()
                && r.is_none()
                && o.is_none()
            {
                return Ok(());
            }
            let cfg = c.get_or_insert_with(UpdateConfig::default);
            if let Some(p) = p {
                cfg.parallelism = *p;
            }
            if let Some(d) = d {
                cfg.delay = duration_flag(&format!("--{kind}-delay"), d)?;
            }
            if let Some(f) = f.as_deref().and_then(failure_action) {
                cfg.failure_action = f;
            }
            if let Some(m) = m {
                cfg.monitor = duration_flag(&format!("--{kind}-monitor"), m)?;
            }
            if let Some(r) = r {
                cfg.max_failure_ratio = *r;
            }
            if let Some(o) = o.as_deref().and_then(order) {
                cfg.order = o;
            }
            Ok(())
        };
        set(
            &mut spec.update_config,
            "update",
            &self.update_parallelism,
            &self.update_delay,
            &self.update_failure_action,
            &self.update_monitor,
            &self.update_max_failure_ratio,
            &self.update_order,
        )?;
        set(
            &mut spec.rollback_config,
            "rollback",
            &self.rollback_parallelism,
            &self.rollback_delay,
            &self.rollback_failure_action,
            &self.rollback_monitor,
            &self.rollback_max_failure_ratio,
            &self.rollback_order,
        )?;
        Ok(())
    }
}

/// Flags common to create and update that set single values.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct SpecFlags {
    /// Number of tasks
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Maximum number of tasks per node (default 0 = unlimited)
    #[arg(long)]
    pub replicas_max_per_node: Option<u64>,
    /// Container hostname
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "command")]
    pub entrypoint: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h)
    #[arg(long)]
    pub stop_grace_period: Option<String>,
    /// Signal to stop the container
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub read_only: Option<bool>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tty: Option<bool>,
    /// Restart when condition is met ("none", "on-failure", "any")
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h)
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long)]
    pub restart_window: Option<String>,
    /// Limit CPUs
    #[arg(long, value_name = "decimal", value_parser = nano_cpus, allow_hyphen_values = true)]
    pub limit_cpu: Option<i64>,
    /// Limit Memory
    #[arg(long, value_name = "bytes", value_parser = ram_in_bytes, allow_hyphen_values = true)]
    pub limit_memory: Option<i64>,
    /// Limit maximum number of processes (default 0 = unlimited)
    #[arg(long)]
    pub limit_pids: Option<i64>,
    /// Reserve CPUs
    #[arg(long, value_name = "decimal", value_parser = nano_cpus, allow_hyphen_values = true)]
    pub reserve_cpu: Option<i64>,
    /// Reserve Memory
    #[arg(long, value_name = "bytes", value_parser = ram_in_bytes, allow_hyphen_values = true)]
    pub reserve_memory: Option<i64>,
    /// Command to run to check health
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "int")]
    pub health_retries: Option<u64>,
    /// Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long)]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long)]
    pub endpoint_mode: Option<String>,
    // Accepted: Shoal runs no images, so it resolves none.
    /// Do not query the registry to resolve image digest and supported platforms
    #[arg(long)]
    pub no_resolve_image: bool,
    /// Service container isolation mode
    #[arg(long)]
    pub isolation: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, allow_negative_numbers = true)]
    pub oom_score_adj: Option<i64>,
    #[command(flatten)]
    pub update: UpdateFlags,
}

impl SpecFlags {
    /// `--isolation`: swarm keeps `process` and `hyperv` (in any case) and makes every
    /// other value `default`, which is what a Linux task runs with and what `service
    /// inspect` shows. The two others docker's Linux engine refuses when it starts the
    /// task (`invalid isolation 'hyperv' on linux`); Shoal, which has nowhere to keep them,
    /// refuses them at once with the same words.
    pub fn check_isolation(&self) -> Result<(), String> {
        match &self.isolation {
            Some(i) if matches!(i.to_lowercase().as_str(), "process" | "hyperv") => {
                Err(format!("invalid isolation '{i}' on linux"))
            }
            _ => Ok(()),
        }
    }

    pub fn apply(&self, spec: &mut ServiceSpec) -> Result<(), String> {
        let tt = &mut spec.task_template;
        let cs: &mut ContainerSpec = &mut tt.container_spec;
        if let Some(r) = self.replicas {
            if spec.mode.is_global() {
                return Err("replicas can only be used with replicated mode".into());
            }
            spec.mode = shoal_spec::ServiceMode::replicated(r);
        }
        if let Some(m) = self.replicas_max_per_node {
            tt.placement
                .get_or_insert_with(Placement::default)
                .max_replicas = m;
        }
        if let Some(h) = &self.hostname {
            cs.hostname = h.clone();
        }
        if let Some(e) = &self.entrypoint {
            cs.command = e.split_whitespace().map(str::to_string).collect();
        }
        if let Some(w) = &self.workdir {
            cs.dir = w.clone();
        }
        if let Some(u) = &self.user {
            cs.user = u.clone();
        }
        if let Some(o) = self.oom_score_adj {
            cs.oom_score_adj = o;
        }
        if let Some(g) = &self.stop_grace_period {
            cs.stop_grace_period = Some(duration_flag("--stop-grace-period", g)?);
        }
        if let Some(s) = &self.stop_signal {
            cs.stop_signal = s.clone();
        }
        if self.init {
            cs.init = Some(true);
        }
        if let Some(r) = self.read_only {
            cs.read_only = r;
        }
        if let Some(t) = self.tty {
            cs.tty = t;
        }
        if self.restart_condition.is_some()
            || self.restart_delay.is_some()
            || self.restart_max_attempts.is_some()
            || self.restart_window.is_some()
        {
            let rp = tt.restart_policy.get_or_insert_with(RestartPolicy::default);
            if let Some(c) = self
                .restart_condition
                .as_deref()
                .and_then(restart_condition)
            {
                rp.condition = Some(c);
            }
            if let Some(d) = &self.restart_delay {
                rp.delay = Some(duration_flag("--restart-delay", d)?);
            }
            if let Some(m) = self.restart_max_attempts {
                rp.max_attempts = Some(m);
            }
            if let Some(w) = &self.restart_window {
                rp.window = Some(duration_flag("--restart-window", w)?);
            }
        }
        if let Some(c) = self.limit_cpu {
            res(&mut tt.resources)
                .limits
                .get_or_insert_with(Limit::default)
                .nano_cpus = c;
        }
        if let Some(m) = self.limit_memory {
            res(&mut tt.resources)
                .limits
                .get_or_insert_with(Limit::default)
                .memory_bytes = m;
        }
        if let Some(p) = self.limit_pids {
            res(&mut tt.resources)
                .limits
                .get_or_insert_with(Limit::default)
                .pids = p;
        }
        if let Some(c) = self.reserve_cpu {
            res(&mut tt.resources)
                .reservations
                .get_or_insert_with(Limit::default)
                .nano_cpus = c;
        }
        if let Some(m) = self.reserve_memory {
            res(&mut tt.resources)
                .reservations
                .get_or_insert_with(Limit::default)
                .memory_bytes = m;
        }
        let cs = &mut tt.container_spec;
        let health_settings = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if self.no_healthcheck && health_settings {
            return Err("--no-healthcheck conflicts with --health-* options".into());
        }
        if self.no_healthcheck {
            cs.healthcheck = Some(HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            });
        } else if health_settings {
            let h = cs.healthcheck.get_or_insert_with(HealthConfig::default);
            // docker's updateHealthcheck: settings given to a disabled check enable it.
            if h.test.first().map(String::as_str) == Some("NONE") {
                h.test.clear();
            }
            if let Some(c) = &self.health_cmd {
                h.test = vec!["CMD-SHELL".into(), c.clone()];
            }
            if let Some(i) = &self.health_interval {
                h.interval = positive_duration("--health-interval", i)?;
            }
            if let Some(t) = &self.health_timeout {
                h.timeout = positive_duration("--health-timeout", t)?;
            }
            if let Some(r) = self.health_retries {
                h.retries = r;
            }
            if let Some(s) = &self.health_start_period {
                h.start_period = positive_duration("--health-start-period", s)?;
            }
            if let Some(s) = &self.health_start_interval {
                h.start_interval = positive_duration("--health-start-interval", s)?;
            }
        }
        if let Some(mode) = self.endpoint_mode.as_deref().and_then(endpoint_mode) {
            spec.endpoint_spec
                .get_or_insert_with(EndpointSpec::default)
                .mode = mode;
        }
        self.update.apply(spec)
    }

    /// What docker's daemon refuses of what its CLI sent as given, in moby's words and the
    /// order it converts a spec in (mounts, restart policy, update and rollback configs,
    /// endpoint): the flags' values it does not know (left out by [`Self::apply`]) and
    /// the spec's mount types. Asked just before the spec is sent, after everything the
    /// CLI itself checks, as docker's CLI would have sent it by then.
    pub fn daemon_refusal(&self, spec: &ServiceSpec) -> Option<String> {
        let cs = &spec.task_template.container_spec;
        if let Some(e) = cs.mounts.iter().find_map(|m| Mount::invalid_type(&m.kind)) {
            return Some(e);
        }
        if let Some(c) = self
            .restart_condition
            .as_deref()
            .filter(|c| restart_condition(c).is_none())
        {
            return Some(format!("invalid RestartCondition: {c:?}"));
        }
        let u = &self.update;
        for (action, ord) in [
            (&u.update_failure_action, &u.update_order),
            (&u.rollback_failure_action, &u.rollback_order),
        ] {
            if let Some(a) = action.as_deref().filter(|a| failure_action(a).is_none()) {
                return Some(format!("unrecognized update failure action {a}"));
            }
            if let Some(o) = ord.as_deref().filter(|o| order(o).is_none()) {
                return Some(format!("unrecognized update order {o}"));
            }
        }
        if let Some(m) = self
            .endpoint_mode
            .as_deref()
            .filter(|m| endpoint_mode(m).is_none())
        {
            return Some(format!("invalid resolution mode: {m:?}"));
        }
        None
    }
}

fn res(r: &mut Option<ResourceRequirements>) -> &mut ResourceRequirements {
    r.get_or_insert_with(ResourceRequirements::default)
}

/// `--placement-pref spread=node.labels.zone`, as docker-cli's placementPrefOpts reads it.
pub fn spread(s: &str) -> Result<PlacementPreference, String> {
    match s.split_once('=') {
        Some(("spread", d)) => Ok(PlacementPreference {
            spread: SpreadOver {
                spread_descriptor: d.to_string(),
            },
        }),
        Some((strategy, _)) if !strategy.is_empty() => Err(format!(
            "unsupported placement preference {strategy} (only spread is supported)"
        )),
        _ => Err("placement preference must be of the format \"<strategy>=<arg>\"".into()),
    }
}

/// A failure ratio must be a number JSON can carry (docker's client fails to encode NaN
/// and infinities); its range (0 to 1) is the daemon's to check, as swarmkit's is.
fn finite_ratio(v: &str) -> Result<f32, String> {
    let r: f32 = v.parse().map_err(|e| format!("{e}"))?;
    if !r.is_finite() {
        return Err("not a finite number".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NaN and infinities cannot travel as JSON: refused when parsed, not sent as null.
    #[test]
    fn failure_ratios_are_finite() {
        for bad in ["NaN", "inf", "-inf"] {
            assert_eq!(finite_ratio(bad).unwrap_err(), "not a finite number");
        }
        assert!(finite_ratio("x").is_err());
        assert_eq!(finite_ratio("0.25").unwrap(), 0.25);
        assert_eq!(finite_ratio("2").unwrap(), 2.0, "the range is the daemon's");
    }

    #[test]
    fn ports_parse_like_docker() {
        let p = port("8080:80").unwrap();
        assert_eq!(
            (p[0].published_port, p[0].target_port, p[0].protocol),
            (Some(8080), 80, Protocol::Tcp)
        );
        assert_eq!(port("53:53/udp").unwrap()[0].protocol, Protocol::Udp);
        assert_eq!(port("8080-8081:80-81").unwrap().len(), 2);
        let l = port("published=8080,target=80,mode=host").unwrap();
        assert_eq!(l[0].publish_mode, PublishMode::Host);
        assert!(port("80:x").is_err());
        assert!(port("a:b:c:d").is_err());
    }

    /// `--publish mode=host,...` as docker parses it: any field order, protocol and mode
    /// in any case, ingress unless asked; a bad mode is refused with docker's text.
    #[test]
    fn host_mode_ports_parse_like_docker() {
        let p = port("mode=host,published=8081,target=80,protocol=udp").unwrap();
        assert_eq!(
            p,
            [PortConfig {
                name: String::new(),
                protocol: Protocol::Udp,
                target_port: 80,
                published_port: Some(8081),
                publish_mode: PublishMode::Host,
            }]
        );
        assert_eq!(
            port("target=80,published=8081,mode=HOST").unwrap()[0].publish_mode,
            PublishMode::Host
        );
        assert_eq!(
            port("target=80,published=8081").unwrap()[0].publish_mode,
            PublishMode::Ingress
        );
        assert_eq!(
            port("mode=foo,published=8081,target=80").unwrap_err(),
            "invalid publish mode value (foo): must be either 'ingress' or 'host'"
        );
        assert_eq!(
            port("mode=host,published=8081").unwrap_err(),
            "missing mandatory field \"target\""
        );
        // Without a published port (or with 0, docker's "none"), each task gets one.
        for spec in ["mode=host,target=80", "mode=host,published=0,target=80"] {
            let p = &port(spec).unwrap()[0];
            assert_eq!(
                (p.publish_mode, p.target_port, p.published_port),
                (PublishMode::Host, 80, None),
                "{spec}"
            );
        }
        assert_eq!(
            port("mode=host,published=65536,target=80").unwrap_err(),
            "invalid published port 65536"
        );
    }

    /// docker-cli's NetworkOpt: short and long syntax, its errors, fields lower-cased.
    #[test]
    fn networks_parse_like_docker_cli() {
        let (n, d) = network("my-net").unwrap();
        assert_eq!(
            (n.target.as_str(), n.aliases.len(), d.len()),
            ("my-net", 0, 0)
        );
        // No `word=word` in it: the short syntax, whatever else it holds.
        assert_eq!(network("a-=-b").unwrap().0.target, "a-=-b");
        let (n, d) =
            network("name=Net1,alias=Web,alias=api,driver-opt=Com.X=Y,ip=10.0.0.9").unwrap();
        assert_eq!(n.target, "net1");
        assert_eq!(n.aliases, ["web", "api"]);
        assert_eq!(d, [("com.x".to_string(), "y".to_string())]);
        assert_eq!(
            network("\"name=a,b\",alias=x").unwrap().0.target,
            "a,b",
            "a quoted field may hold a comma"
        );
        assert_eq!(network("name=a,bogus").unwrap_err(), "invalid field bogus");
        assert_eq!(network("name=a,=x").unwrap_err(), "invalid field =x");
        assert_eq!(
            network("name=a,foo=1").unwrap_err(),
            "invalid field key foo"
        );
        assert_eq!(
            network("alias=a").unwrap_err(),
            "network name/id is not specified"
        );
        assert_eq!(
            network("name=a,driver-opt=x").unwrap_err(),
            "invalid key value pair format in driver options"
        );
        assert_eq!(
            network("name=a,ip=10.0.0.300").unwrap_err(),
            "ParseAddr(\"10.0.0.300\"): unable to parse IP"
        );
        assert_eq!(
            network("name=a,gw-priority=x").unwrap_err(),
            "invalid gw-priority (x): invalid syntax"
        );
        assert_eq!(
            network("name=a\"b").unwrap_err(),
            "parse error on line 1, column 7: bare \" in non-quoted-field"
        );
    }

    /// docker-cli's env files: comments, blank lines, leading space, BOM, `KEY` alone
    /// from the environment (left out when unset), its errors; `--env` after, a later
    /// value of a key replacing the earlier.
    #[test]
    fn env_files_read_like_docker_cli() {
        let lookup = |k: &str| (k == "FROM_CLI").then(|| "cli value".to_string());
        let data = b"\xef\xbb\xbf# comment\n\n  A=1\nB= spaced \r\nFROM_CLI\nUNSET\n\tC=\"q\"\nD";
        assert_eq!(
            parse_env_file("f", data, &lookup).unwrap(),
            ["A=1", "B= spaced ", "FROM_CLI=cli value", "C=\"q\""]
        );
        assert_eq!(
            parse_env_file("f", b"=x\n", &lookup).unwrap_err(),
            "invalid env file (f): no variable name on line '=x'"
        );
        assert_eq!(
            parse_env_file("f", b"MY VAR=1\n", &lookup).unwrap_err(),
            "invalid env file (f): variable 'MY VAR' contains whitespaces"
        );
        assert_eq!(
            parse_env_file("f", b"A=1\nB=\xff\n", &lookup).unwrap_err(),
            "invalid env file (f): invalid utf8 bytes at line 2: [66 61 255]"
        );
        let dir = std::env::temp_dir().join(format!("shoal-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("one.env");
        std::fs::write(&f, "A=1\nB=2\nA=3\n").unwrap();
        let f = f.to_str().unwrap().to_string();
        assert_eq!(
            make_env(
                std::slice::from_ref(&f),
                &["B=2".into(), "C=4".into(), "A=5".into()],
                &lookup
            )
            .unwrap(),
            ["B=2", "C=4", "A=5"]
        );
        let missing = dir.join("missing.env").to_str().unwrap().to_string();
        assert_eq!(
            make_env(std::slice::from_ref(&missing), &[], &lookup).unwrap_err(),
            format!("open {missing}: no such file or directory")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(ram_in_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(
            duration_flag("--update-delay", "1m30s").unwrap(),
            90_000_000_000
        );
        assert_eq!(nano_cpus("0.5").unwrap(), 500_000_000);
        assert!(ram_in_bytes("lots").is_err());
    }

    /// go-units' RAMInBytes, as docker-cli reads `--limit-memory`: its forms and words.
    #[test]
    fn memory_sizes_are_go_units() {
        for (ok, want) in [
            ("1024", 1024),
            ("1.5k", 1536),
            ("1kib", 1024),
            ("1KB", 1024),
            ("1 m", 1 << 20),
            ("2b", 2),
            ("1e3", 1000),
            ("4p", 4 << 50),
            ("1.9", 1),
        ] {
            assert_eq!(ram_in_bytes(ok), Ok(want), "{ok}");
        }
        for (bad, why) in [
            ("abc", "invalid size: 'abc'"),
            ("-1", "invalid size: '-1'"),
            ("1x", "invalid suffix: 'x'"),
            ("1X", "invalid suffix: 'x'"),
            ("1mbb", "invalid suffix: 'mbb'"),
            ("1MBBB", "invalid suffix: 'MBBB'"),
            ("1bb", "invalid suffix: 'bb'"),
            ("1mi", "invalid suffix: 'mi'"),
            (
                "1.2.3m",
                "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax",
            ),
            (" 5m", "strconv.ParseFloat: parsing \" 5\": invalid syntax"),
            (
                "1e400",
                "strconv.ParseFloat: parsing \"1e400\": value out of range",
            ),
            // What Go would wrap into garbage: refused.
            ("1e30", "invalid size: '1e30'"),
            (
                "10000000000000000000",
                "invalid size: '10000000000000000000'",
            ),
            ("inf b", "invalid size: 'inf b'"),
        ] {
            assert_eq!(ram_in_bytes(bad).unwrap_err(), why, "{bad}");
        }
    }

    /// docker-cli's ParseCPUs: big.Rat's forms, whole NanoCPUs, docker's words; counts
    /// past an i64 of NanoCPUs (which docker would wrap) are refused.
    #[test]
    fn cpu_counts_are_docker_s_rationals() {
        for (ok, want) in [
            ("0", 0),
            ("0.3", 300_000_000),
            ("1.5", 1_500_000_000),
            (".5", 500_000_000),
            ("5.", 5_000_000_000),
            ("1e-9", 1),
            ("1_000", 1_000_000_000_000),
            ("1/4", 250_000_000),
            ("010/2", 4_000_000_000),
            ("0x10", 16_000_000_000),
            ("+2", 2_000_000_000),
            ("-0.5", -500_000_000),
            ("9.2e9", 9_200_000_000_000_000_000),
            ("0.000000001000", 1),
        ] {
            assert_eq!(nano_cpus(ok), Ok(want), "{ok}");
        }
        for (bad, why) in [
            ("abc", "failed to parse abc as a rational number"),
            ("", "failed to parse  as a rational number"),
            (" 1", "failed to parse  1 as a rational number"),
            ("1/0", "failed to parse 1/0 as a rational number"),
            ("1/-2", "failed to parse 1/-2 as a rational number"),
            ("NaN", "failed to parse NaN as a rational number"),
            ("inf", "failed to parse inf as a rational number"),
            ("1_", "failed to parse 1_ as a rational number"),
            ("1_.5", "failed to parse 1_.5 as a rational number"),
            ("1__0", "failed to parse 1__0 as a rational number"),
            ("1e", "failed to parse 1e as a rational number"),
            ("1.5e-9", "value is too precise"),
            ("1/3", "value is too precise"),
            ("0.0000000001", "value is too precise"),
            ("1e10", "value is too large"),
            ("-1e10", "value is too large"),
            ("9.3e9", "value is too large"),
        ] {
            assert_eq!(nano_cpus(bad).unwrap_err(), why, "{bad:?}");
        }
    }

    /// `--secret` / `--config`: docker-cli's short and long syntax, defaults and errors.
    #[test]
    fn secret_and_config_options_as_docker_cli_reads_them() {
        let (name, f) = file_reference("secret", "db_pass").unwrap();
        assert_eq!(
            (name.as_str(), f),
            ("db_pass", shoal_spec::FileTarget::new("db_pass"))
        );
        let (name, f) =
            file_reference("secret", "SRC=db,target=pw,uid=1000,gid=1001,mode=0400").unwrap();
        assert_eq!(name, "db");
        assert_eq!(
            f,
            shoal_spec::FileTarget {
                name: "pw".into(),
                uid: "1000".into(),
                gid: "1001".into(),
                mode: 0o400,
            }
        );
        assert_eq!(
            file_reference("config", "source=c,mode=0x1ff")
                .unwrap()
                .1
                .mode,
            0o777
        );
        assert_eq!(
            file_reference("config", "source=c,mode=292")
                .unwrap()
                .1
                .mode,
            0o444
        );
        assert_eq!(file_reference("config", "source=c").unwrap().1.name, "c");
        assert_eq!(
            file_reference("secret", "target=x").unwrap_err(),
            "source is required"
        );
        assert_eq!(
            file_reference("secret", "source=x,foo=1").unwrap_err(),
            "invalid field in secret request: foo"
        );
        assert_eq!(
            file_reference("config", "source=x,bar").unwrap_err(),
            "invalid field 'bar' must be a key=value pair"
        );
        assert_eq!(
            file_reference("secret", "source=x,mode=rw").unwrap_err(),
            "invalid mode specified: strconv.ParseUint: parsing \"rw\": invalid syntax"
        );
    }
}

//! Image reference syntax check, as the distribution/reference parser docker runs on `image:`.

/// `Ok` for `nginx`, `nginx:1.25`, `registry.example.com:5000/team/app:1.0`,
/// `app@sha256:<hex>`; otherwise docker's message.
pub(crate) fn validate(image: &str) -> Result<(), String> {
    if image.len() == 64
        && image
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Ok(()); // an image ID
    }
    if let Some((algo, hex)) = image.split_once(':') {
        if is_digest(algo, hex) {
            return Ok(());
        }
    }
    // splitDockerDomain: the part after the registry must be lowercase, tag included.
    let (domain, remainder) = match image.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (Some(first), rest.to_string())
        }
        _ => (None, image.to_string()),
    };
    let remainder = if domain.is_none() && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder
    };
    if remainder.to_lowercase() != remainder {
        return Err(format!(
            "invalid reference format: repository name ({remainder}) must be lowercase"
        ));
    }
    if image.is_empty() {
        return Err("repository name must have at least one component".to_string());
    }
    if !matches_reference(image) {
        return Err(if matches_reference(&image.to_lowercase()) {
            "repository name must be lowercase".to_string()
        } else {
            "invalid reference format".to_string()
        });
    }
    Ok(())
}

/// name[:tag][@digest]
fn matches_reference(s: &str) -> bool {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if let Some(d) = digest {
        match d.split_once(':') {
            Some((algo, hex)) if is_digest(algo, hex) => {}
            _ => return false,
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        if !is_tag(tag) {
            return false;
        }
    }
    name.len() <= 255 && is_name(name)
}

fn is_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let all_paths = |ps: &[&str]| !ps.is_empty() && ps.iter().all(|p| is_path_component(p));
    all_paths(&parts) || (parts.len() > 1 && is_domain_and_port(parts[0]) && all_paths(&parts[1..]))
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

fn is_domain_and_port(s: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let ok = !v6.is_empty() && v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':');
        match (after.is_empty(), after.strip_prefix(':')) {
            (true, _) => (ok, None),
            (false, Some(port)) => (ok, Some(port)),
            (false, None) => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (is_domain_name(h), Some(p)),
            None => (is_domain_name(s), None),
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Dot-separated `[a-zA-Z0-9]` labels with inner `-`.
fn is_domain_name(h: &str) -> bool {
    !h.is_empty()
        && h.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn is_digest(algo: &str, hex: &str) -> bool {
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for ok in [
            "mysql:latest",
            "nginx",
            "docker-registry.dccn.nl:5000/demo_user_register:1.0",
            "localhost:5000/app",
            "localhost:5000",
            "team/app__x-y.z:v1.0-rc_1",
            "[::1]:5000/app:1",
            "busybox@sha256:38a203e1986cf79639cfb9b2e1d6e773de84002feea2d4eb006b52004ee8502d",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate("Nginx"),
            Err(
                "invalid reference format: repository name (library/Nginx) must be lowercase"
                    .into()
            )
        );
        assert_eq!(
            validate("nginx:Latest"),
            Err("invalid reference format: repository name (library/nginx:Latest) must be lowercase".into())
        );
        for bad in [
            "nginx:",
            "ng inx",
            "-nginx",
            "app:a/b",
            "app@sha256:xyz",
            "a//b",
            "reg:port/app",
        ] {
            assert_eq!(
                validate(bad),
                Err("invalid reference format".into()),
                "{bad}"
            );
        }
    }
}

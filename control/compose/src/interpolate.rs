//! `${VAR}` substitution in every string value, as docker's compose/template.

// Forms: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
// `${VAR?message}`, `$$` for a literal `$`. Values substituted into fields that docker types as
// numbers or booleans are cast (compose/interpolation).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::ComposeError;

type Env = BTreeMap<String, String>;

enum Cast {
    Int,
    Float,
    Bool,
}

/// docker's `interpolateTypeCastMapping`: `*` is any key, `[]` any list item.
const CASTS: &[(&[&str], Cast)] = &[
    (&["services", "*", "configs", "[]", "mode"], Cast::Int),
    (&["services", "*", "secrets", "[]", "mode"], Cast::Int),
    (&["services", "*", "healthcheck", "retries"], Cast::Int),
    (&["services", "*", "healthcheck", "disable"], Cast::Bool),
    (&["services", "*", "deploy", "replicas"], Cast::Int),
    (
        &["services", "*", "deploy", "update_config", "parallelism"],
        Cast::Int,
    ),
    (
        &[
            "services",
            "*",
            "deploy",
            "update_config",
            "max_failure_ratio",
        ],
        Cast::Float,
    ),
    (
        &["services", "*", "deploy", "rollback_config", "parallelism"],
        Cast::Int,
    ),
    (
        &[
            "services",
            "*",
            "deploy",
            "rollback_config",
            "max_failure_ratio",
        ],
        Cast::Float,
    ),
    (
        &["services", "*", "deploy", "restart_policy", "max_attempts"],
        Cast::Int,
    ),
    (
        &[
            "services",
            "*",
            "deploy",
            "placement",
            "max_replicas_per_node",
        ],
        Cast::Int,
    ),
    (&["services", "*", "ports", "[]", "target"], Cast::Int),
    (&["services", "*", "ports", "[]", "published"], Cast::Int),
    (&["services", "*", "ulimits", "*"], Cast::Int),
    (&["services", "*", "ulimits", "*", "hard"], Cast::Int),
    (&["services", "*", "ulimits", "*", "soft"], Cast::Int),
    (&["services", "*", "privileged"], Cast::Bool),
    (&["services", "*", "oom_score_adj"], Cast::Int),
    (&["services", "*", "read_only"], Cast::Bool),
    (&["services", "*", "stdin_open"], Cast::Bool),
    (&["services", "*", "tty"], Cast::Bool),
    (&["services", "*", "volumes", "[]", "read_only"], Cast::Bool),
    (
        &["services", "*", "volumes", "[]", "volume", "nocopy"],
        Cast::Bool,
    ),
    (&["networks", "*", "external"], Cast::Bool),
    (&["networks", "*", "internal"], Cast::Bool),
    (&["networks", "*", "attachable"], Cast::Bool),
    (&["volumes", "*", "external"], Cast::Bool),
    (&["secrets", "*", "external"], Cast::Bool),
    (&["configs", "*", "external"], Cast::Bool),
];

/// Substitute variables in every string value of one file, in place.
pub(crate) fn interpolate_file(
    file: &str,
    root: &mut Map<String, Value>,
    env: &Env,
) -> Result<(), ComposeError> {
    let mut walk = Walk {
        file,
        env,
        keys: Vec::new(),
        shown: Vec::new(),
    };
    for (key, value) in root.iter_mut() {
        walk.descend(key.clone(), key.clone(), value)?;
    }
    Ok(())
}

struct Walk<'a> {
    file: &'a str,
    env: &'a Env,
    /// Path for cast matching: keys, and `[]` for list items.
    keys: Vec<String>,
    /// Path for messages: `services.web.ports[0]`.
    shown: Vec<String>,
}

impl Walk<'_> {
    fn descend(
        &mut self,
        key: String,
        shown: String,
        value: &mut Value,
    ) -> Result<(), ComposeError> {
        self.keys.push(key);
        self.shown.push(shown);
        let result = self.visit(value);
        self.keys.pop();
        self.shown.pop();
        result
    }

    fn path(&self) -> String {
        self.shown.concat()
    }

    fn visit(&mut self, value: &mut Value) -> Result<(), ComposeError> {
        match value {
            Value::String(s) => {
                let replaced =
                    substitute(s, self.env).map_err(|template| ComposeError::Interpolation {
                        file: self.file.to_string(),
                        path: self.path(),
                        template,
                    })?;
                // Like docker, only a value that changed is cast.
                if replaced == *s {
                    return Ok(());
                }
                *value = match self.cast() {
                    None => Value::String(replaced),
                    Some(cast) => {
                        cast_value(cast, &replaced).map_err(|message| ComposeError::Cast {
                            file: self.file.to_string(),
                            path: self.path(),
                            message,
                        })?
                    }
                };
                Ok(())
            }
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.descend(k.clone(), format!(".{k}"), v)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    self.descend("[]".to_string(), format!("[{i}]"), v)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn cast(&self) -> Option<&'static Cast> {
        CASTS.iter().find_map(|(pattern, cast)| {
            let matches = pattern.len() == self.keys.len()
                && pattern
                    .iter()
                    .zip(&self.keys)
                    .all(|(p, k)| *p == "*" || *p == k);
            matches.then_some(cast)
        })
    }
}

fn cast_value(cast: &Cast, s: &str) -> Result<Value, String> {
    match cast {
        Cast::Int => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax")),
        Cast::Float => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        Cast::Bool => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "n" | "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("invalid boolean: {s}")),
        },
    }
}

/// Substitute one string. On failure returns the template text docker puts in its error: the
/// whole string for a malformed `$`, or `required variable X is missing a value: msg`.
pub(crate) fn substitute(template: &str, env: &Env) -> Result<String, String> {
    if !template.contains('$') {
        return Ok(template.to_string());
    }
    let is_start = |c: u8| c == b'_' || c.is_ascii_alphabetic();
    let is_name = |c: u8| c == b'_' || c.is_ascii_alphanumeric();
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while i < bytes.len() {
        let Some(offset) = template[i..].find('$') else {
            out.push_str(&template[i..]);
            break;
        };
        out.push_str(&template[i..i + offset]);
        i += offset + 1; // past '$'
        let invalid = || template.to_string();
        match bytes.get(i) {
            Some(b'$') => {
                out.push('$');
                i += 1;
            }
            Some(&c) if is_start(c) => {
                // $NAME, and (as docker's pattern allows) $NAME-default / $NAME:?msg up to a `}`.
                let start = i;
                i += 1;
                while i < bytes.len() && is_name(bytes[i]) {
                    i += 1;
                }
                i = modifier_end(bytes, i).unwrap_or(i);
                out.push_str(&resolve(&template[start..i], env)?);
            }
            Some(b'{') => {
                let start = i + 1;
                let mut j = start;
                if j >= bytes.len() || !is_start(bytes[j]) {
                    return Err(invalid());
                }
                while j < bytes.len() && is_name(bytes[j]) {
                    j += 1;
                }
                j = modifier_end(bytes, j).unwrap_or(j);
                if bytes.get(j) != Some(&b'}') {
                    return Err(invalid());
                }
                out.push_str(&resolve(&template[start..j], env)?);
                i = j + 1;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(out)
}

/// After a name: `(:?[-?][^}]*)?`; returns where it ends, if present.
fn modifier_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    if bytes.get(i) == Some(&b':') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'-' | b'?') => {
            i += 1;
            while i < bytes.len() && bytes[i] != b'}' {
                i += 1;
            }
            Some(i)
        }
        _ => None,
    }
}

/// One substitution (`NAME`, `NAME:-default`, ...), trying docker's functions in its order.
fn resolve(substitution: &str, env: &Env) -> Result<String, String> {
    let lookup = |name: &str| env.get(name).cloned();
    if let Some((name, default)) = substitution.split_once(":-") {
        return Ok(lookup(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string()));
    }
    if let Some((name, default)) = substitution.split_once('-') {
        return Ok(lookup(name).unwrap_or_else(|| default.to_string()));
    }
    if let Some((name, message)) = substitution.split_once(":?") {
        return lookup(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("required variable {name} is missing a value: {message}"));
    }
    if let Some((name, message)) = substitution.split_once('?') {
        return lookup(name)
            .ok_or_else(|| format!("required variable {name} is missing a value: {message}"));
    }
    Ok(lookup(substitution).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [("TAG", "1.2"), ("EMPTY", ""), ("HOST", "db")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms() {
        let s = |t: &str| substitute(t, &env());
        assert_eq!(s("nginx:${TAG}"), Ok("nginx:1.2".into()));
        assert_eq!(s("nginx:$TAG"), Ok("nginx:1.2".into()));
        assert_eq!(s("${MISSING:-latest}"), Ok("latest".into()));
        assert_eq!(s("${EMPTY:-x}"), Ok("x".into()));
        assert_eq!(s("${EMPTY-x}"), Ok("".into()));
        assert_eq!(s("${MISSING-x}"), Ok("x".into()));
        assert_eq!(s("${MISSING}"), Ok("".into()));
        assert_eq!(s("$$HOME costs $$5"), Ok("$HOME costs $5".into()));
        assert_eq!(s("${TAG:-a-b}"), Ok("1.2".into()));
        assert_eq!(s("$HOST.local"), Ok("db.local".into()));
        assert_eq!(
            s("${MISSING:?set it}"),
            Err("required variable MISSING is missing a value: set it".into())
        );
        assert_eq!(s("${EMPTY?x}"), Ok("".into()));
        for bad in ["${", "$", "a $1", "${}", "${1A}", "${A:+x}", "${A"] {
            assert_eq!(s(bad), Err(bad.to_string()), "{bad}");
        }
    }

    #[test]
    fn casts_only_typed_fields() {
        let mut root: Map<String, Value> = serde_json::from_str(
            r#"{"services":{"web":{"image":"x:${N}","deploy":{"replicas":"${N}"},
                "read_only":"${YES}"}}}"#,
        )
        .unwrap();
        let env: Env = [("N", "3"), ("YES", "on")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        interpolate_file("f.yml", &mut root, &env).unwrap();
        let web = &root["services"]["web"];
        assert_eq!(web["image"], "x:3");
        assert_eq!(web["deploy"]["replicas"], 3);
        assert_eq!(web["read_only"], true);

        let mut bad: Map<String, Value> =
            serde_json::from_str(r#"{"services":{"web":{"deploy":{"replicas":"${N}x"}}}}"#)
                .unwrap();
        let err = interpolate_file("f.yml", &mut bad, &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yml: error while interpolating services.web.deploy.replicas: failed to cast to expected type: strconv.Atoi: parsing \"3x\": invalid syntax"
        );
    }
}

//! Typed reads of a parsed compose tree, failing with docker's schema wording, file and path.

use serde_json::{Map, Number, Value};

use crate::ComposeError;

/// One value of a compose file and where it is.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub file: &'a str,
    pub value: &'a Value,
    path: &'a str,
}

/// A node's path is built on demand; children own their path strings through this holder.
pub(crate) struct Owned<'a> {
    pub file: &'a str,
    pub value: &'a Value,
    pub path: String,
}

impl<'a> Owned<'a> {
    pub fn node(&self) -> Node<'_> {
        Node {
            file: self.file,
            value: self.value,
            path: &self.path,
        }
    }
}

impl<'a> Node<'a> {
    pub fn root(file: &'a str, value: &'a Value) -> Self {
        Node {
            file,
            value,
            path: "",
        }
    }

    pub fn path(&self) -> String {
        if self.path.is_empty() {
            "(root)".to_string()
        } else {
            self.path.to_string()
        }
    }

    pub fn child(&self, key: &str, value: &'a Value) -> Owned<'a> {
        Owned {
            file: self.file,
            value,
            path: if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }

    pub fn item(&self, index: usize, value: &'a Value) -> Owned<'a> {
        Owned {
            file: self.file,
            value,
            path: format!("{}[{index}]", self.path),
        }
    }

    pub fn is_null(&self) -> bool {
        self.value.is_null()
    }

    /// A schema-style error: `<path> <message>`.
    pub fn schema(&self, message: impl Into<String>) -> ComposeError {
        ComposeError::Schema {
            file: self.file.to_string(),
            path: self.path(),
            message: message.into(),
        }
    }

    pub fn must_be(&self, what: &str) -> ComposeError {
        self.schema(format!("must be a {what}"))
    }

    /// A meaning error: `<path>: <message>`.
    pub fn invalid(&self, message: impl Into<String>) -> ComposeError {
        ComposeError::Invalid {
            file: self.file.to_string(),
            path: self.path(),
            message: message.into(),
        }
    }

    pub fn str(&self) -> Result<&'a str, ComposeError> {
        self.value.as_str().ok_or_else(|| self.must_be("string"))
    }

    pub fn string(&self) -> Result<String, ComposeError> {
        self.str().map(str::to_string)
    }

    pub fn bool(&self) -> Result<bool, ComposeError> {
        self.value.as_bool().ok_or_else(|| self.must_be("boolean"))
    }

    pub fn number(&self) -> Result<f64, ComposeError> {
        self.value.as_f64().ok_or_else(|| self.must_be("number"))
    }

    pub fn int(&self) -> Result<i64, ComposeError> {
        match self.value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(i),
                None if n.is_u64() => Err(self.invalid(format!("{n} is out of range"))),
                None => Err(self.must_be("integer")),
            },
            _ => Err(self.must_be("integer")),
        }
    }

    /// A non-negative integer (docker decodes these into unsigned fields).
    pub fn uint(&self) -> Result<u64, ComposeError> {
        match self.value {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Ok(u),
                (None, Some(i)) => Err(self.invalid(format!("{i} must not be negative"))),
                _ => Err(self.must_be("integer")),
            },
            _ => Err(self.must_be("integer")),
        }
    }

    /// A string, or a number written as Go's `fmt.Sprint` would (docker accepts both where the
    /// schema says `["string", "number"]`).
    pub fn scalar_string(&self) -> Option<String> {
        match self.value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(go_number(n)),
            _ => None,
        }
    }

    /// The entries of a mapping whose keys must be in `allowed`; `x-*` keys are skipped when
    /// `extensions` is set.
    pub fn mapping(
        &self,
        allowed: &[&str],
        extensions: bool,
    ) -> Result<Vec<(&'a str, Owned<'a>)>, ComposeError> {
        let map = self.object()?;
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            if extensions && key.starts_with("x-") {
                continue;
            }
            if !allowed.contains(&key.as_str()) {
                return Err(self.schema(format!("Additional property {key} is not allowed")));
            }
            out.push((key.as_str(), self.child(key, value)));
        }
        Ok(out)
    }

    /// The entries of a mapping of user-chosen names (services, networks, volumes, ...).
    pub fn named(&self) -> Result<Vec<(&'a str, Owned<'a>)>, ComposeError> {
        let map = self.object()?;
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            if !valid_name(key) {
                return Err(self.schema(format!("Additional property {key} is not allowed")));
            }
            out.push((key.as_str(), self.child(key, value)));
        }
        Ok(out)
    }

    pub fn object(&self) -> Result<&'a Map<String, Value>, ComposeError> {
        self.value
            .as_object()
            .ok_or_else(|| self.must_be("mapping"))
    }

    pub fn list(&self) -> Result<Vec<Owned<'a>>, ComposeError> {
        let items = self.value.as_array().ok_or_else(|| self.must_be("list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| self.item(i, v))
            .collect())
    }

    pub fn string_list(&self) -> Result<Vec<String>, ComposeError> {
        self.list()?
            .iter()
            .map(|item| item.node().string())
            .collect()
    }

    /// `"a"` or `["a", "b"]`.
    pub fn string_or_list(&self) -> Result<Vec<String>, ComposeError> {
        match self.value {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(_) => self.string_list(),
            _ => Err(self.must_be("string or list")),
        }
    }

    /// docker's `list_or_dict`: `{K: V}` (values string, number or null) or `["K=V", "K"]`.
    /// With `allow_nil` a missing value stays `None` (environment); otherwise it is `""`.
    pub fn list_or_dict(
        &self,
        allow_nil: bool,
    ) -> Result<Vec<(String, Option<String>)>, ComposeError> {
        let fill = |v: Option<String>| {
            if allow_nil {
                v
            } else {
                v.or(Some(String::new()))
            }
        };
        match self.value {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    let child = self.child(k, v);
                    let node = child.node();
                    match v {
                        Value::Null => Ok((k.clone(), fill(None))),
                        _ => match node.scalar_string() {
                            Some(s) => Ok((k.clone(), Some(s))),
                            None => Err(node.must_be("string, number or null")),
                        },
                    }
                })
                .collect(),
            Value::Array(_) => self
                .string_list()?
                .into_iter()
                .map(|entry| match entry.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                    None => Ok((entry, fill(None))),
                })
                .collect(),
            _ => Err(self.must_be("list or mapping")),
        }
    }

    /// A mapping of string-or-number values (`driver_opts`).
    pub fn string_map(&self) -> Result<Vec<(String, String)>, ComposeError> {
        self.object()?
            .iter()
            .map(|(k, v)| {
                let child = self.child(k, v);
                let node = child.node();
                node.scalar_string()
                    .map(|s| (k.clone(), s))
                    .ok_or_else(|| node.must_be("string or number"))
            })
            .collect()
    }
}

/// docker's pattern for service, network, volume, secret and config names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A number as Go's `fmt.Sprint` prints it: integers plainly, floats in `%g` shortest form with
/// an exponent only below 1e-4 or from 1e21 (so `1e3` prints `1000`).
pub(crate) fn go_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 {
        return "0".to_string();
    }
    // Shortest round-trip digits and the decimal exponent, e.g. "1.5e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_go_does() {
        let f = |x: f64| go_number(&Number::from_f64(x).unwrap());
        assert_eq!(f(1000.0), "1000");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(go_number(&Number::from(42)), "42");
    }
}

//! YAML text to a JSON tree (string keys, insertion order kept), as docker's ParseYAML.

use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

use crate::ComposeError;

/// Parse one compose file. Anchors, aliases and `<<` merge keys are resolved; the top level
/// must be a mapping.
pub(crate) fn parse(file: &str, text: &str) -> Result<Map<String, Value>, ComposeError> {
    let syntax = |e: serde_yaml::Error| {
        let location = e.location();
        ComposeError::Syntax {
            file: file.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: format!("yaml: {e}"),
        }
    };
    let mut doc: Yaml = serde_yaml::from_str(text).map_err(syntax)?;
    doc.apply_merge().map_err(syntax)?;
    match to_json(file, "", doc)? {
        Value::Object(map) => Ok(map),
        _ => Err(ComposeError::File {
            file: file.to_string(),
            message: "top-level object must be a mapping".to_string(),
        }),
    }
}

fn to_json(file: &str, path: &str, value: Yaml) -> Result<Value, ComposeError> {
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match Number::from_f64(f) {
                    Some(n) => Value::Number(n),
                    None => {
                        return Err(ComposeError::Invalid {
                            file: file.to_string(),
                            path: display(path),
                            message: format!("unsupported number {n}"),
                        })
                    }
                }
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| to_json(file, &format!("{path}[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Null => "null".to_string(),
                    _ => {
                        return Err(ComposeError::Invalid {
                            file: file.to_string(),
                            path: display(path),
                            message: "mapping keys must be strings".to_string(),
                        })
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let v = to_json(file, &child, v)?;
                map.insert(key, v);
            }
            Value::Object(map)
        }
        // Tags (`!!str`, `!custom`) carry no meaning in a compose file; keep the value.
        Yaml::Tagged(tagged) => to_json(file, path, tagged.value)?,
    })
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "(root)".to_string()
    } else {
        path.to_string()
    }
}

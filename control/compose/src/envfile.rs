//! `env_file:` contents, read as docker's kvfile reads them.

// `KEY=VALUE` lines taken as they are (no quotes, no interpolation), `#` comments and blank
// lines skipped, a bare `KEY` looked up in the environment.

use std::collections::BTreeMap;

/// The `KEY=VALUE` entries of one env file, in file order.
pub(crate) fn parse(
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for raw in text.lines() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        match value {
            Some(v) => out.push((key.to_string(), v.to_string())),
            None => {
                if let Some(v) = env.get(key) {
                    out.push((key.to_string(), v.clone()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let env: BTreeMap<String, String> = [("FROM_ENV".to_string(), "e".to_string())].into();
        let text = "\u{feff}# comment\n\n  A=1\nC=\"quoted\" \nFROM_ENV\nUNSET\nD=x=y\n";
        let pairs: Vec<(&str, &str)> = vec![
            ("A", "1"),
            ("C", "\"quoted\" "),
            ("FROM_ENV", "e"),
            ("D", "x=y"),
        ];
        let expected: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(parse(text, &env).unwrap(), expected);
        assert_eq!(
            parse("B =1\n", &env),
            Err("variable 'B ' contains whitespaces".to_string())
        );
        assert_eq!(
            parse("=1\n", &env),
            Err("no variable name on line '=1'".to_string())
        );
    }
}

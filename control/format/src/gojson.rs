//! JSON text exactly as Go's encoding/json writes it: compact or `MarshalIndent`, optional HTML escaping.

use std::fmt::Write;

use serde_json::{Number, Value as JsonValue};

use crate::value::{number_kind, Kind};

/// How to encode: `html` escapes `<`, `>`, `&` (Go's default); `sort_keys` orders object keys
/// as Go does for maps (otherwise the input order, as Go does for structs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    pub html: bool,
    pub sort_keys: bool,
}

/// Compact JSON, as `json.Marshal` / `Encoder.Encode` without the trailing newline.
pub(crate) fn compact(v: &JsonValue, style: Style) -> String {
    let mut out = String::new();
    write_value(&mut out, v, style, None, 0);
    out
}

/// `json.MarshalIndent(v, "", indent)`: `"Key": value`, empty `{}` and `[]` inline.
pub(crate) fn indented(v: &JsonValue, style: Style, indent: &str) -> String {
    let mut out = String::new();
    write_value(&mut out, v, style, Some(indent), 0);
    out
}

fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
    if let Some(indent) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn write_value(out: &mut String, v: &JsonValue, style: Style, indent: Option<&str>, depth: usize) {
    match v {
        JsonValue::Null => out.push_str("null"),
        JsonValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsonValue::Number(n) => write_number(out, n),
        JsonValue::String(s) => write_string(out, s, style.html),
        JsonValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_value(out, item, style, indent, depth + 1);
            }
            if !items.is_empty() {
                newline(out, indent, depth);
            }
            out.push(']');
        }
        JsonValue::Object(map) => {
            out.push('{');
            let mut entries: Vec<(&String, &JsonValue)> = map.iter().collect();
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_string(out, k, style.html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, style, indent, depth + 1);
            }
            if !entries.is_empty() {
                newline(out, indent, depth);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    match number_kind(n) {
        Kind::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Kind::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Kind::Float(f) => write_float(out, f),
        _ => out.push('0'),
    }
}

/// Go's float64 encoding: `%f` style in [1e-6, 1e21), exponent form outside, `e-07` cleaned to `e-7`.
fn write_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mant}e+{exp}");
            }
            _ => out.push_str(&s),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// A JSON string as Go's encoder writes it.
pub(crate) fn write_string(out: &mut String, s: &str, html: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' if html => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xF) as usize] as char);
            }
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xF) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const GO: Style = Style {
        html: true,
        sort_keys: false,
    };

    #[test]
    fn compact_keeps_order_and_escapes_like_go() {
        let v = json!({"Labels": {}, "Role": "manager", "Port": "*:8080->80/tcp & <x>", "N": [1, 2.5, null]});
        assert_eq!(
            compact(&v, GO),
            r#"{"Labels":{},"Role":"manager","Port":"*:8080-\u003e80/tcp \u0026 \u003cx\u003e","N":[1,2.5,null]}"#
        );
        let plain = Style {
            html: false,
            sort_keys: true,
        };
        assert_eq!(
            compact(&json!({"b": "<", "a": "\u{1}\u{2028}"}), plain),
            r#"{"a":"\u0001\u2028","b":"<"}"#
        );
    }

    #[test]
    fn floats_like_go() {
        let mut s = String::new();
        for f in [1e21, 1e-7, 2.0, 0.5, 123456789.0, -1.5e-9] {
            write_float(&mut s, f);
            s.push(' ');
        }
        assert_eq!(s, "1e+21 1e-7 2 0.5 123456789 -1.5e-9 ");
    }

    #[test]
    fn indent_like_marshal_indent() {
        let v = json!({"ID": "x", "Spec": {"Labels": {}, "Args": [], "Nets": [{"Target": "a"}]}});
        let want = "{\n    \"ID\": \"x\",\n    \"Spec\": {\n        \"Labels\": {},\n        \"Args\": [],\n        \"Nets\": [\n            {\n                \"Target\": \"a\"\n            }\n        ]\n    }\n}";
        assert_eq!(indented(&v, GO, "    "), want);
    }
}
